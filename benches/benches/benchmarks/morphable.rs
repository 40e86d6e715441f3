//! `morphable` benchmarks: instance, model loading, built-in model construction.
//! Split by topic so that several people can add to it: `morphable_core`, `statismo`, `builtin`.

use criterion::criterion_group;

#[path = "morphable_builtin.rs"]
mod builtin;
#[path = "morphable_core.rs"]
mod core;
#[path = "morphable_statismo.rs"]
mod statismo;

criterion_group!(benches, core::bench, statismo::bench, builtin::bench);
