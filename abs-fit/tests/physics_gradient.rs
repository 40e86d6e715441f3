//! The differentiable physics renderer (docs/physics.md §3.6, §4.5): its images are the
//! renderer's, and its gradient by every parameter group matches central differences with the
//! discrete choices held.

use abs_fit::dataset::InputKind;
use abs_fit::{
    ArraySpec, DifferentiablePhysicsRenderer, FaceParams, ImagingConfig, ParamGroup, ParamLayout,
    PhysicsRenderer, Preset, RenderParams, Renderer,
};
use candle_core::{Device, Tensor};
use morphable::Pose;
use morphable::builtin::{BuiltinModel, builtin};
use proptest::prelude::*;
use radar_sim::{ConvergedSurface, FrequencySweep, GradientKernel, SimulationConfig, SurfaceModel};

/// Small imaging for the direct sum: every eighth element of the QAR50, 6 steps, 24 × 24
/// pixels of 8 mm pooled 2 → 12 × 12, 12 depth steps of 1.3 cm; diffuse cells every 8 mm.
fn imaging() -> ImagingConfig {
    let tiny = Preset::Tiny.dataset().unwrap().imaging;
    ImagingConfig {
        array: ArraySpec::Qar50Decimated { factor: 8 },
        sweep: FrequencySweep::new(72e9, 82e9, 6).unwrap(),
        grid: ImagingConfig::centred_grid(24, 24, 0.008, 0.20, 12, 0.013).unwrap(),
        pool: 2,
        simulation: SimulationConfig {
            surface: SurfaceModel::Converged(ConvergedSurface {
                correlation_length_m: 0.008,
                ..ConvergedSurface::default()
            }),
            ..tiny.simulation
        },
        ..tiny
    }
}

/// The renderer with the exact `f64` kernel (central differences need its precision).
fn renderer() -> DifferentiablePhysicsRenderer<&'static BuiltinModel> {
    DifferentiablePhysicsRenderer::new(
        builtin(),
        ParamLayout::default(),
        imaging(),
        InputKind::AmplitudeDepth,
    )
    .unwrap()
    .with_kernel(GradientKernel::Exact)
}

/// A posed face with shape and expression.
fn face(layout: &ParamLayout) -> FaceParams {
    let mut shape = vec![0.0; layout.n_shape];
    shape[..3].copy_from_slice(&[0.8, -0.6, 0.4]);
    let mut expression = vec![0.0; layout.n_expression];
    expression[..2].copy_from_slice(&[0.7, -0.4]);
    FaceParams {
        shape,
        expression,
        pose: Pose {
            yaw: 0.06,
            pitch: -0.08,
            roll: 0.03,
            ..Pose::identity()
        },
        render: RenderParams {
            material: 0.6,
            antenna_cm: 0.25,
            dynamic_range_db: 20.0,
        },
    }
}

/// [`face`] as a scaled row.
fn row(layout: &ParamLayout) -> Vec<f64> {
    (layout.to_vector(&face(layout)).iter())
        .map(|&v| v as f64)
        .collect()
}

/// Deterministic numbers in [−1, 1) (splitmix64).
fn numbers(mut state: u64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

#[test]
fn held_choices_reproduce_the_rendered_images() {
    let renderer = renderer();
    let row = row(renderer.layout());
    let choices = renderer.record(&row, 5).unwrap();
    let held = renderer.images_with(&row, &choices).unwrap();
    let rendered = renderer
        .with_seed(5)
        .render(&Tensor::from_vec(row.clone(), (1, row.len()), &Device::Cpu).unwrap())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert_eq!(held.len(), rendered.len());
    let worst = (held.iter().zip(&rendered))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-9, "{worst}");
    // The amplitude channel spans most of [0, 1]: the images are not trivial.
    let amplitude = &held[..held.len() / 2];
    let (lo, hi) = amplitude
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    assert!(hi - lo > 0.5, "amplitudes {lo}..{hi}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1))]
    /// For each parameter group, the directional derivative of ⟨w, images⟩ matches central
    /// differences (f64, choices held) to 1e-4 relative: for one realisation of the diffuse
    /// field, and for the expected image over three.
    #[test]
    fn physics_gradients_match_central_differences(seed in any::<u64>()) {
        for realisations in [1, 3] {
            let renderer = renderer().with_realisations(realisations).unwrap();
            let layout = *renderer.layout();
            let row = row(&layout);
            let choices = renderer.record(&row, 7).unwrap();
            let images = renderer.images_with(&row, &choices).unwrap();
            let w = numbers(seed, images.len());
            let gradient = renderer.gradient_with(&row, &choices, &w).unwrap();
            let loss = |r: &[f64]| -> f64 {
                let images = renderer.images_with(r, &choices).unwrap();
                images.iter().zip(&w).map(|(a, b)| a * b).sum()
            };
            let groups = ParamGroup::ALL;
            for (k, group) in groups.iter().enumerate() {
                let range = layout.range(*group);
                if range.is_empty() {
                    continue;
                }
                let mut direction = vec![0.0; layout.len()];
                for (d, v) in direction[range.clone()]
                    .iter_mut()
                    .zip(numbers(seed ^ k as u64, range.len()))
                {
                    *d = v;
                }
                let h = 1e-5;
                let at = |s: f64| -> Vec<f64> {
                    row.iter().zip(&direction).map(|(r, d)| r + s * h * d).collect()
                };
                let numeric = (loss(&at(1.0)) - loss(&at(-1.0))) / (2.0 * h);
                let analytic: f64 = gradient.iter().zip(&direction).map(|(g, d)| g * d).sum();
                prop_assert!(
                    (numeric - analytic).abs() <= 1e-4 * numeric.abs().max(analytic.abs()),
                    "{realisations} realisations, {group:?}: numeric {numeric} vs analytic \
                     {analytic}"
                );
            }
        }
    }
}

/// With K realisations the renderer images the root-mean-square volume over the surface seeds
/// seed .. seed + K: the same images as the simulator's own expected image
/// (`PhysicsRenderer::expected_products`, full f32 volumes), and a new image, not any one
/// realisation's.
#[test]
fn realisations_render_the_expected_image() {
    let mut imaging = imaging();
    imaging.simulation.snr_db = None;
    let layout = ParamLayout::default();
    let face = face(&layout);
    let reference = PhysicsRenderer::new(builtin(), layout, imaging.clone())
        .unwrap()
        .expected_products(&face, 40, 40..44)
        .unwrap();
    let make = |output| {
        DifferentiablePhysicsRenderer::new(builtin(), layout, imaging.clone(), output).unwrap()
    };
    assert!(
        make(InputKind::AmplitudeDepth)
            .with_realisations(0)
            .is_err()
    );
    let renderer = make(InputKind::AmplitudeDepth)
        .with_realisations(4)
        .unwrap();
    let row = row(&layout);
    let images = renderer
        .images_with(&row, &renderer.record(&row, 40).unwrap())
        .unwrap();
    let (z_near, z_far) = imaging.depth_range_m();
    let hw = images.len() / 2;
    let level = reference.level_db().db();
    let depth = reference.depth_m().depth_m();
    let mut compared = 0;
    for (i, (l, z)) in level.iter().zip(depth).enumerate() {
        let amplitude = ((f64::from(*l) + 20.0) / 20.0).clamp(0.0, 1.0);
        assert!(
            (images[i] - amplitude).abs() < 1e-3,
            "pixel {i}: amplitude {} vs {amplitude}",
            images[i]
        );
        if *l > -20.0 {
            let expected = (z_far - f64::from(*z)) / (z_far - z_near);
            assert!(
                (images[hw + i] - expected).abs() < 1e-3,
                "pixel {i}: depth {} vs {expected}",
                images[hw + i]
            );
            compared += 1;
        }
    }
    assert!(compared > 10, "{compared} pixels above -20 dB");
    let one = make(InputKind::Amplitude);
    let single = one
        .images_with(&row, &one.record(&row, 40).unwrap())
        .unwrap();
    let differs = (single.iter().zip(&images[..hw]))
        .filter(|(a, b)| (*a - *b).abs() > 0.05)
        .count();
    assert!(differs > hw / 10, "{differs} of {hw} pixels differ");
}

/// With redrawn speckle a render is a function of the parameters alone (the same row renders
/// the same images, wherever it sits in the batch), while a row that differs in any column
/// renders another realisation of the diffuse field: far more pixels change than a change of
/// 1e-9 in one column could move.
#[test]
fn redrawn_speckle_follows_the_parameters() {
    let plain = renderer().with_kernel(GradientKernel::Fast);
    assert!(!plain.redraws_speckle());
    let redrawn = renderer()
        .with_kernel(GradientKernel::Fast)
        .with_redrawn_speckle(true);
    assert!(redrawn.redraws_speckle());
    let layout = *redrawn.layout();
    let a = row(&layout);
    let mut b = a.clone();
    b[layout.range(ParamGroup::Shape).start] += 1e-9;
    let p = layout.len();
    let batch = |rows: &[&Vec<f64>]| {
        let values: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_vec(values, (rows.len(), p), &Device::Cpu).unwrap()
    };
    let images = |r: &dyn Renderer, rows: &[&Vec<f64>]| -> Vec<Vec<f64>> {
        r.render(&batch(rows))
            .unwrap()
            .flatten_from(1)
            .unwrap()
            .to_vec2()
            .unwrap()
    };
    let redrawn_images = images(&redrawn, &[&a, &b, &a]);
    // Row 0 and row 2 hold the same values: the same images, in any place of the batch.
    assert_eq!(redrawn_images[0], redrawn_images[2]);
    assert_eq!(redrawn_images[0], images(&redrawn, &[&a])[0]);
    let changed = |x: &[f64], y: &[f64]| {
        x.iter()
            .zip(y)
            .filter(|(x, y)| (*x - *y).abs() > 0.05)
            .count()
    };
    let hw = redrawn_images[0].len() / 2;
    // Without redrawing, rows 0 and 1 differ by the column's 1e-9 only when both use one
    // seed; with it, b draws another realisation.
    let fixed = images(&plain, &[&a]);
    let fixed_b = images(&plain, &[&b]);
    assert_eq!(changed(&fixed[0], &fixed_b[0]), 0);
    let moved = changed(&redrawn_images[0][..hw], &redrawn_images[1][..hw]);
    assert!(moved > hw / 10, "{moved} of {hw} amplitude pixels changed");
}

/// The default fast kernel (f32 forward and adjoint) gives the exact kernel's images and
/// gradient with the same choices held: images within 1e-3 (they are in [0, 1]) and, per
/// parameter group, a gradient within 1e-2 of the exact one in norm.
#[test]
fn the_fast_kernel_renders_and_differentiates_like_the_exact_one() {
    let exact = renderer();
    let layout = *exact.layout();
    let fast = renderer().with_kernel(GradientKernel::Fast);
    let row = row(&layout);
    let choices = exact.record(&row, 7).unwrap();
    let images = exact.images_with(&row, &choices).unwrap();
    let fast_images = fast.images_with(&row, &choices).unwrap();
    let worst = (images.iter().zip(&fast_images))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-3, "images differ by {worst}");
    let w = numbers(11, images.len());
    let a = exact.gradient_with(&row, &choices, &w).unwrap();
    let b = fast.gradient_with(&row, &choices, &w).unwrap();
    for group in ParamGroup::ALL {
        let range = layout.range(group);
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let difference: Vec<f64> = (a[range.clone()].iter().zip(&b[range.clone()]))
            .map(|(x, y)| x - y)
            .collect();
        let (error, scale) = (norm(&difference), norm(&a[range.clone()]));
        assert!(
            error <= 1e-2 * scale,
            "{group:?}: exact {:?} vs fast {:?}",
            &a[range.clone()],
            &b[range]
        );
    }
}
