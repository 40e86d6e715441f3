//! `abs-fit` benchmarks: one dataset sample (face → simulation → back-projection → images)
//! per preset, on the built-in model; and one analysis-by-synthesis fit with the differentiable
//! depth renderer.

use std::hint::black_box;

use abs_fit::{DepthRasterRenderer, FitConfig, NoProgress, PhysicsRenderer, Preset, Renderer, fit};
use candle_core::{Device, Tensor};
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

/// Fits one drawn face of the `cpu` preset from the mean face at the identity pose, on the
/// preset's 32 × 32 pooled depth-image grid: 200 Adam steps (render + backward each).
fn fit_depth_raster(c: &mut Criterion) {
    let config = Preset::Cpu.dataset().expect("preset configs are valid");
    let layout = config.layout;
    let renderer = DepthRasterRenderer::new(builtin(), layout, &config.imaging)
        .expect("preset imaging is valid");
    let (face, _) = config.draw(0);
    let truth = Tensor::from_vec(layout.to_vector(&face), (1, layout.len()), &Device::Cpu)
        .expect("one parameter row");
    let target = renderer.render(&truth).expect("the drawn face renders");
    let start =
        Tensor::zeros((1, layout.len()), candle_core::DType::F32, &Device::Cpu).expect("zeros");
    let fit_config = FitConfig {
        steps: 200,
        tolerance: 0.0,
        ..FitConfig::new(layout)
    };
    let mut group = c.benchmark_group("abs_fit/fit_depth_raster");
    group.sample_size(10);
    group.bench_function("cpu_200_steps", |b| {
        b.iter(|| {
            fit(
                &renderer,
                black_box(&target),
                &start,
                &fit_config,
                &mut NoProgress,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, sample, fit_depth_raster);
