//! Integration tests of `abs-fit` (one test binary per crate).

mod generate;
mod params;
mod store;
