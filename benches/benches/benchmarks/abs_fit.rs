//! `abs-fit` benchmarks: one dataset sample (face → simulation → back-projection → images)
//! per preset, on the built-in model.

use std::hint::black_box;

use abs_fit::{PhysicsRenderer, Preset};
use criterion::{Criterion, criterion_group};
use morphable::builtin::builtin;

fn sample(c: &mut Criterion) {
    let mut group = c.benchmark_group("abs_fit/dataset_sample");
    group.sample_size(10);
    for preset in [Preset::Tiny, Preset::Quick, Preset::Cpu, Preset::Paper] {
        let config = preset.dataset().expect("preset configs are valid");
        let renderer = PhysicsRenderer::new(builtin(), config.layout, config.imaging.clone())
            .expect("preset imaging is valid");
        let (face, seed) = config.draw(0);
        group.bench_function(preset.name(), |b| {
            b.iter(|| renderer.image_products(black_box(&face), seed))
        });
    }
    group.finish();
}

criterion_group!(benches, sample);
