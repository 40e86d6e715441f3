//! `morphable` built-in model benchmarks: generating the default model (template, shape
//! Gaussian process reduced to 50 components, 13 facial actions), and a coarse 4 mm variant.

use std::hint::black_box;

use criterion::Criterion;
use morphable::builtin::{BuiltinConfig, BuiltinModel, ValidBuiltinConfig};

pub fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("morphable/builtin");
    group.sample_size(10);
    let default = ValidBuiltinConfig::default();
    group.bench_function("build_default", |b| {
        b.iter(|| BuiltinModel::build(black_box(&default)).expect("default model builds"))
    });
    let coarse = BuiltinConfig {
        grid_spacing_mm: 4.0,
        inducing_spacing_mm: 8.0,
        n_shape: 20,
        ..Default::default()
    }
    .check()
    .expect("valid coarse configuration");
    group.bench_function("build_coarse_4mm", |b| {
        b.iter(|| BuiltinModel::build(black_box(&coarse)).expect("coarse model builds"))
    });
    group.finish();
}
