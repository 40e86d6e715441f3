//! One criterion binary for every crate: `cargo bench -p radar-face-benches`; filter with
//! `cargo bench -p radar-face-benches -- morphable`.

use criterion::criterion_main;

mod abs_fit;
mod backproject;
mod facenet;
mod morphable;
mod radar_sim;

criterion_main! {
    morphable::benches,
    radar_sim::benches,
    backproject::benches,
    facenet::benches,
    abs_fit::benches,
}
