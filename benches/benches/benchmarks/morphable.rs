//! `morphable`: instance, model loading, built-in model construction.

use criterion::{Criterion, criterion_group};

fn instance(_c: &mut Criterion) {}

criterion_group!(benches, instance);
