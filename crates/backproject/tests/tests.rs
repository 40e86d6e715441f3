//! Integration tests of `backproject` (one test binary per crate).
