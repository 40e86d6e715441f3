//! Integration tests of `abs-fit` (one test binary per crate).

mod fitting;
mod generate;
mod params;
mod store;
