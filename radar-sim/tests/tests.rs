//! Integration tests of `radar-sim` (one test binary per crate).

mod common;
mod facets;
mod geometry;
mod gradient;
mod materials;
mod npy;
mod phase;
mod simulate;
mod sweep;
