//! `morphable` core benchmarks.

use criterion::Criterion;

pub fn bench(_c: &mut Criterion) {}
