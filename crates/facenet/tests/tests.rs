//! Integration tests of `facenet` (one test binary per crate).
