//! Integration tests of `morphable` (one test binary per crate).

mod builtin;
mod core;
mod reliability;
mod statismo;
