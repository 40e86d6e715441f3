//! Integration tests of `morphable` (one test binary per crate).
