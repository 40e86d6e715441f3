//! `radar_sim` benchmarks: the forward model on the built-in mean face.
//!
//! The scene is the mean face of `morphable`'s built-in model, placed 25 cm in front of the
//! array (docs/physics.md §2), sampled at the default hit density (2 mm spacing) with the default
//! settings (m = 0.5, s = 0.25 cm, σ_r = 0.2 mm, 30 dB SNR). Each iteration is a whole
//! `Simulator::simulate`: hit sampling, visibility, per-element tables, the sum and noise.
//!
//! - `radar_sim/fast/qar50_full`: the full QAR50 (94 × 94 channels) and sweep (128 steps).
//!   Target ≤ 1 s on 2 cores.
//! - `radar_sim/fast/quick`: every second element (47 × 47), 64 steps (the quick preset).
//! - `radar_sim/{fast,direct}/reduced`: every fourth element (24 × 24), 16 steps, the two
//!   methods on equal work. The direct sum of the full problem is this figure scaled by the
//!   work (channels × steps), which the bench prints.
//!
//! - `radar_sim/gradient/{fast,exact}/{16,48}`: the gradient of a loss of the clean signal by
//!   the scene (docs/physics.md §3.6) for a fixed cotangent, converged model, every second
//!   element: the f32 adjoint at 16 and 48 steps (the `tiny` and `cpu` sweeps) and the exact
//!   f64 one at 16 steps, for the ratio.
//!
//! Throughput is in complex terms (tx, rx, frequency, hit) per second. Run with
//! `cargo bench -p radar-face-benches -- radar_sim`.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group};
use morphable::{MorphableModel, Placement, Pose};
use num_complex::Complex64;
use radar_sim::{
    ArrayGeometry, CustomArray, FrequencySweep, GradientKernel, Qar50, Scene, SimulationConfig,
    Simulator, SumMethod, Surface,
};

/// The built-in mean face in front of the array.
fn mean_face() -> Scene {
    let model = morphable::builtin::builtin();
    let placement = Placement::for_model(model).expect("the built-in model places");
    let mesh = placement.place(&model.mean_mesh().expect("mean face"), &Pose::identity());
    Scene::from_surface(Surface::new(mesh.vertices, mesh.triangles).expect("finite mesh"))
}

/// A simulator and the number of complex terms one run sums.
fn setup(
    array: &dyn ArrayGeometry,
    steps: usize,
    method: SumMethod,
    scene: &Scene,
) -> (Simulator, u64) {
    let sweep = FrequencySweep::new(72e9, 82e9, steps).expect("valid sweep");
    let config = SimulationConfig {
        method,
        ..SimulationConfig::default()
    };
    let simulator = Simulator::new(array, sweep, config).expect("valid settings");
    let hits = simulator.sample(scene).expect("sampled").hits.len();
    let terms = (array.n_channels() * steps * hits) as u64;
    (simulator, terms)
}

/// Prints, once, the scene and the fast path's agreement with the direct sum (only when the
/// direct benchmark runs: it costs a direct simulation).
fn report_agreement(
    scene: &Scene,
    fast: &Simulator,
    direct: &Simulator,
    full_terms: u64,
    terms: u64,
) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let sample = fast.sample(scene).expect("sampled");
        let f = fast.simulate_sample(&sample).expect("fast");
        let d = direct.simulate_sample(&sample).expect("direct");
        eprintln!(
            "radar_sim: mean face {:.1} cm², {} hits sampled at {:.2} mm, {} visible; \
             fast vs direct (24 × 24 × 16, with noise): relative error {:.2e}; \
             the full problem is {:.0} × this work",
            sample.surface_area_m2 * 1e4,
            sample.hits_sampled,
            sample.hit_spacing_m() * 1e3,
            sample.hits.len(),
            f.cube.relative_error(&d.cube).expect("same shape"),
            full_terms as f64 / terms as f64,
        );
    });
}

fn bench(c: &mut Criterion) {
    let scene = mean_face();
    let full = Qar50::new();
    let quick = CustomArray::decimated(&full, 2).expect("decimated");
    let reduced = CustomArray::decimated(&full, 4).expect("decimated");

    let (fast_reduced, reduced_terms) = setup(&reduced, 16, SumMethod::Fast, &scene);
    let (direct_reduced, _) = setup(&reduced, 16, SumMethod::Direct, &scene);
    let (fast_full, full_terms) = setup(&full, 128, SumMethod::Fast, &scene);
    let (fast_quick, quick_terms) = setup(&quick, 64, SumMethod::Fast, &scene);

    let mut group = c.benchmark_group("radar_sim");
    // Iterations of up to a few seconds: flat sampling, 10 samples.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    let cases = [
        ("fast", "qar50_full", &fast_full, full_terms),
        ("fast", "quick", &fast_quick, quick_terms),
        ("fast", "reduced", &fast_reduced, reduced_terms),
        ("direct", "reduced", &direct_reduced, reduced_terms),
    ];
    for (method, size, simulator, terms) in cases {
        group.throughput(Throughput::Elements(terms));
        group.bench_function(BenchmarkId::new(method, size), |b| {
            if method == "direct" {
                report_agreement(&scene, &fast_reduced, &direct_reduced, full_terms, terms);
            }
            b.iter(|| simulator.simulate(&scene).expect("simulated"))
        });
    }
    group.finish();
}

/// The scene gradient's two kernels (see the module documentation).
fn gradient(c: &mut Criterion) {
    let scene = mean_face();
    let array = CustomArray::decimated(&Qar50::new(), 2).expect("decimated");
    let mut group = c.benchmark_group("radar_sim/gradient");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for (kernel, steps) in [
        (GradientKernel::Fast, 16),
        (GradientKernel::Exact, 16),
        (GradientKernel::Fast, 48),
    ] {
        let sweep = FrequencySweep::new(72e9, 82e9, steps).expect("valid sweep");
        let simulator =
            Simulator::new(&array, sweep, SimulationConfig::default()).expect("valid settings");
        let sample = simulator.sample(&scene).expect("sampled");
        let n = array.n_channels() * steps;
        let cotangent: Vec<Complex64> = (0..n)
            .map(|i| Complex64::from_polar(1.0, 0.7 * i as f64))
            .collect();
        let name = if kernel == GradientKernel::Fast {
            "fast"
        } else {
            "exact"
        };
        group.bench_function(BenchmarkId::new(name, steps), |b| {
            b.iter(|| {
                (simulator.gradient_with(kernel, &scene, &sample, &cotangent)).expect("gradient")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench, gradient);
