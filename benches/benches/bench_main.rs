//! One criterion binary for every crate: `cargo bench -p radar-face-benches`; filter with
//! `cargo bench -p radar-face-benches -- morphable`.

use criterion::criterion_main;

mod benchmarks;

criterion_main! {
    benchmarks::morphable::benches,
    benchmarks::radar_sim::benches,
    benchmarks::backproject::benches,
    benchmarks::facenet::benches,
    benchmarks::abs_fit::benches,
}
