//! `morphable` core benchmarks: `instance` on a BFM-2019-sized model (27 657 vertices,
//! 199 shape + 100 expression components) with 10 + 7 and with 199 + 100 coefficients.

use std::hint::black_box;

use criterion::Criterion;
use morphable::{MorphableModel, PcaBlock, PcaModel};

/// BFM 2019 face12 dimensions.
const BFM_VERTICES: usize = 27_657;

/// A model of BFM 2019's size with a deterministic pseudo-random basis (the values do not
/// matter for speed, the sizes do).
pub fn bfm_sized_model() -> PcaModel {
    let n = 3 * BFM_VERTICES;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let mut block = |k: usize| {
        let basis = (0..n * k).map(|_| next()).collect();
        PcaBlock::new(vec![0.0; n], basis, vec![1.0; k], 0.0).expect("valid block")
    };
    let (shape, expression) = (block(199), block(100));
    let triangles = (0..BFM_VERTICES as u32 - 2)
        .map(|i| [i, i + 1, i + 2])
        .collect();
    PcaModel::new("bfm-sized", shape, expression, triangles).expect("valid model")
}

pub fn bench(c: &mut Criterion) {
    let model = bfm_sized_model();
    let mut group = c.benchmark_group("morphable/instance");
    for (ks, ke) in [(10, 7), (199, 100)] {
        let shape = vec![0.7; ks];
        let expression = vec![-0.4; ke];
        group.bench_function(format!("bfm_sized_{ks}+{ke}"), |b| {
            b.iter(|| model.instance_flat(black_box(&shape), black_box(&expression)))
        });
        group.bench_function(format!("bfm_sized_{ks}+{ke}_mesh"), |b| {
            b.iter(|| model.instance(black_box(&shape), black_box(&expression)))
        });
    }
    group.finish();
}
