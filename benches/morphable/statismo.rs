//! `morphable` statismo benchmarks: loading a Basel-Face-Model-2019-sized file.
//!
//! Setup (not timed) writes a random model of BFM 2019 face12 size (27 657 vertices, 55 040
//! triangles, 199 shape and 100 expression components: 99 MB of float32 basis) to a temporary
//! file once per storage layout; the benchmarks time `statismo::load` on it.

use std::hint::black_box;

use criterion::Criterion;
use morphable::statismo::{self, LoadOptions, SaveOptions, Storage};
use morphable::{PcaBlock, PcaModel};

const N_VERTICES: usize = 27_657;
const N_TRIANGLES: usize = 55_040;
const N_SHAPE: usize = 199;
const N_EXPRESSION: usize = 100;

/// Deterministic xorshift values in [−0.5, 0.5): the content does not matter, only the size.
fn noise(seed: u64) -> impl FnMut() -> f32 {
    let mut state = seed | 1;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
}

fn bfm2019_sized_model() -> PcaModel {
    let mut next = noise(0x9E37_79B9_7F4A_7C15);
    let mean: Vec<f32> = (0..3 * N_VERTICES).map(|_| next() * 150.0).collect();
    let mut block = |k: usize, mean: Vec<f32>| {
        let basis: Vec<f32> = (0..mean.len() * k).map(|_| next() * 0.01).collect();
        let variance = (0..k).map(|i| 1e4 / (1.0 + i as f64)).collect();
        PcaBlock::new(mean, basis, variance, 1.0).expect("benchmark block")
    };
    let shape = block(N_SHAPE, mean);
    let expression = block(N_EXPRESSION, vec![0.0; 3 * N_VERTICES]);
    let n = N_VERTICES as u32;
    let triangles = (0..N_TRIANGLES as u32)
        .map(|t| [t % n, (t * 7 + 1) % n, (t * 13 + 2) % n])
        .collect();
    PcaModel::new("bfm2019-sized", shape, expression, triangles).expect("benchmark model")
}

pub fn bench(c: &mut Criterion) {
    let model = bfm2019_sized_model();
    // Removed with the directory when the benchmark ends.
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let contiguous = scratch.path().join("bfm2019-contiguous.h5");
    statismo::save(&model, &contiguous, &SaveOptions::default()).expect("write the model");
    let deflated = scratch.path().join("bfm2019-deflate.h5");
    let deflate = SaveOptions {
        storage: Storage::Deflate { level: 1 },
        ..SaveOptions::default()
    };
    statismo::save(&model, &deflated, &deflate).expect("write the model");
    drop(model);

    let mut group = c.benchmark_group("morphable/statismo");
    group.sample_size(10);
    group.bench_function("load_bfm2019_sized_contiguous", |b| {
        b.iter(|| statismo::load(black_box(&contiguous)).expect("load"))
    });
    let truncated = LoadOptions::new()
        .with_max_shape_components(50)
        .with_max_expression_components(25);
    group.bench_function("load_bfm2019_sized_first_50_25", |b| {
        b.iter(|| statismo::load_with(black_box(&contiguous), &truncated).expect("load"))
    });
    group.bench_function("load_bfm2019_sized_deflate", |b| {
        b.iter(|| statismo::load(black_box(&deflated)).expect("load"))
    });
    group.finish();
}
