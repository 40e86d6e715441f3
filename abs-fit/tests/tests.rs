//! Integration tests of `abs-fit` (one test binary per crate).

mod evaluate;
mod fitting;
mod generate;
mod geometry;
mod identity;
mod iterative;
mod params;
mod physics;
mod physics_gradient;
mod reliability;
mod store;
mod training;
mod uncertainty;
