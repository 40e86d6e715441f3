//! Integration tests of `backproject` (one test binary per crate).

mod common;

mod adjoint;
mod agreement;
mod errors;
mod export;
mod grid;
mod images;
mod plate;
mod point_target;
mod traits;
