//! `radar_sim` benchmarks.

use criterion::{Criterion, criterion_group};

fn placeholder(_c: &mut Criterion) {}

criterion_group!(benches, placeholder);
