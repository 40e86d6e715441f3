//! `morphable` benchmarks: instance, model loading, built-in model construction.
//! Split by topic under `morphable/`: `core`, `statismo`, `builtin`.

use criterion::criterion_group;

mod builtin;
mod core;
mod statismo;

criterion_group!(benches, core::bench, statismo::bench, builtin::bench);
