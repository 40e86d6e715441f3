//! Integration tests of `radar-sim` (one test binary per crate).
