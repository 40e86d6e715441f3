//! Tests: the differentiable depth renderer and analysis-by-synthesis fitting, on the built-in
//! face model.

use abs_fit::{
    AbsFitError, ChannelLoss, DepthRasterRenderer, FaceParams, FitConfig, FitResult, ImagingConfig,
    LevenbergMarquardt, NoProgress, PairedRenderer, ParamGroup, ParamLayout, PhysicsRenderer,
    Preset, PriorCentre, Renderer, Solver, fit,
};
use candle_core::{DType, Device, Tensor, Var};
use morphable::builtin::{BuiltinModel, builtin};
use morphable::{MorphableModel, metrics::point_distance};
use proptest::prelude::*;

/// The paper's layout (10 shape, 7 expression, t_x, t_y, three angles, three render columns).
fn layout() -> ParamLayout {
    ParamLayout::default()
}

/// The `tiny` preset's imaging with a `side × side` grid of `pixel_m` pixels, unpooled, and
/// 16 depth steps over [0.20, 0.36) m.
fn imaging(side: usize, pixel_m: f64) -> ImagingConfig {
    ImagingConfig {
        grid: ImagingConfig::centred_grid(side, side, pixel_m, 0.20, 16, 0.01).unwrap(),
        pool: 1,
        ..Preset::Tiny.dataset().unwrap().imaging
    }
}

fn renderer(
    layout: ParamLayout,
    imaging: &ImagingConfig,
) -> DepthRasterRenderer<&'static BuiltinModel> {
    DepthRasterRenderer::new(builtin(), layout, imaging).unwrap()
}

/// Face `k` of the `tiny` preset's sampling (N(0, 1) coefficients, the paper's pose ranges).
fn drawn_face(k: usize) -> FaceParams {
    Preset::Tiny.dataset().unwrap().draw(k).0
}

fn row(values: Vec<f64>) -> Tensor {
    let p = values.len();
    Tensor::from_vec(values, (1, p), &Device::Cpu).unwrap()
}

fn image(r: &dyn Renderer, params: &[f64]) -> Vec<f64> {
    r.render(&row(params.to_vec()))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// Pixels whose second difference |I(p + h) + I(p − h) − 2·I(p)| exceeds this (normalised
/// depth) change triangle between p − h and p + h: a silhouette or occlusion edge (a jump of
/// millimetres, ≥ 6e-3) or an edge between neighbouring triangles (a kink, ~|Δslope|·h·5 cm).
/// Inside one triangle the depth is smooth in p and the second difference is O(h²) ≈ 1e-10
/// (h = 1e-5), or rounding (1e-15).
const NOT_SMOOTH: f64 = 1e-9;

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// The op's gradient of a random linear functional F(p) = Σ w_ij·image_ij(p) matches
    /// central differences (step h = 1e-5 in scaled units, f64 throughout). Visibility is
    /// piecewise constant: pixels whose covering triangle changes between p − h and p + h for
    /// any column (detected by their second difference, see [`NOT_SMOOTH`]) are given weight
    /// 0, since there the finite difference measures a jump or a kink, not the derivative.
    #[test]
    fn gradient_matches_central_differences(
        coefficients in prop::collection::vec(-1.5f64..1.5, 17),
        pose in prop::collection::vec(-1.0f64..1.0, 5),
        weights in prop::collection::vec(-1.0f64..1.0, 32 * 32),
        render in prop::collection::vec(-1.0f64..1.0, 3),
    ) {
        let layout = ParamLayout { translation_z: true, ..layout() };
        let r = renderer(layout, &imaging(32, 0.008));
        // t_z within ±1 cm; yaw, pitch, roll and t_x, t_y within the paper's ranges.
        let mut p = coefficients.clone();
        p.extend([pose[0], pose[1], 0.2 * pose[2]]);
        p.extend([0.5 * pose[3], pose[4], -0.3 * pose[0]]);
        p.extend(render);
        let h = 1e-5;
        let shifted = |j: usize, s: f64| {
            let mut q = p.clone();
            q[j] += s;
            image(&r, &q)
        };
        let pairs: Vec<(Vec<f64>, Vec<f64>)> =
            (0..p.len()).map(|j| (shifted(j, h), shifted(j, -h))).collect();
        let base = image(&r, &p);
        let mut w = weights.clone();
        for (plus, minus) in &pairs {
            for (i, wi) in w.iter_mut().enumerate() {
                let second = plus[i] + minus[i] - 2.0 * base[i];
                if second.abs() > NOT_SMOOTH || (plus[i] == 0.0) != (minus[i] == 0.0) {
                    *wi = 0.0;
                }
            }
        }
        prop_assert!(w.iter().zip(&base).filter(|(wi, b)| **wi != 0.0 && **b != 0.0).count() > 100,
            "the face should cover many smooth pixels");
        let functional = |img: &[f64]| img.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>();
        let var = Var::from_tensor(&row(p.clone())).unwrap();
        let weights_t = Tensor::from_vec(w.clone(), (1, 1, 32, 32), &Device::Cpu).unwrap();
        let f = (r.render(var.as_tensor()).unwrap() * weights_t).unwrap().sum_all().unwrap();
        let grads = f.backward().unwrap();
        let analytic: Vec<f64> = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap()
            .to_vec1().unwrap();
        let scale = analytic.iter().map(|g| g.abs()).fold(0.0, f64::max);
        for (j, (plus, minus)) in pairs.iter().enumerate() {
            let numeric = (functional(plus) - functional(minus)) / (2.0 * h);
            prop_assert!(
                (numeric - analytic[j]).abs() <= 1e-5 * scale + 1e-4 * numeric.abs(),
                "column {j} ({}): analytic {} vs central difference {numeric}",
                layout.names()[j], analytic[j]
            );
        }
        // The rendering columns do not change a depth image.
        for j in layout.range(ParamGroup::Render) {
            prop_assert_eq!(analytic[j], 0.0);
        }
    }
}

/// Image orientation follows the grid: moving the face by +4 pixels in x (t_x = 16 mm on a
/// 4 mm grid) moves its image 4 columns toward column 0 (column 0 shows the largest x), and
/// +4 pixels in y moves it 4 rows toward row 0. Depths are unchanged by a translation in x–y.
#[test]
fn translation_moves_the_image_toward_the_first_column_and_row() {
    let r = renderer(layout(), &imaging(48, 0.004));
    let base = layout().to_vector(&drawn_face(0));
    let base: Vec<f64> = base.into_iter().map(f64::from).collect();
    let tx = layout().range(ParamGroup::Translation).start;
    let at = |dx: f64, dy: f64| {
        let mut p = base.clone();
        p[tx] += dx / 0.05;
        p[tx + 1] += dy / 0.05;
        image(&r, &p)
    };
    let still = at(0.0, 0.0);
    let (n, k) = (48, 4);
    for (moved, dr, dc) in [(at(0.016, 0.0), 0, k), (at(0.0, 0.016), k, 0)] {
        let (mut agree, mut total) = (0, 0);
        for row in 0..n - dr {
            for col in 0..n - dc {
                total += 1;
                // Pixel-aligned shifts reproduce the same rasterisation up to rounding of
                // pixel centres that fall exactly on an edge.
                if (moved[row * n + col] - still[(row + dr) * n + col + dc]).abs() < 1e-9 {
                    agree += 1;
                }
            }
        }
        assert!(agree * 100 >= total * 99, "{agree} of {total} pixels agree");
    }
}

/// The mean face at the identity pose: its closest point is `distance_m` from the array, so
/// no pixel is brighter than (z_far − distance)/(z_far − z_near); covered pixels are positive
/// and everything else 0.
#[test]
fn mean_face_depths_lie_behind_the_placement_distance() {
    let im = imaging(48, 0.004);
    let r = renderer(layout(), &im);
    let mut p = vec![0.0; layout().len()];
    // Render columns are irrelevant; pick the middle of their ranges.
    p[layout().range(ParamGroup::Render)].fill(0.0);
    let img = image(&r, &p);
    let (z_near, z_far) = (0.20, 0.36);
    let brightest = (z_far - im.distance_m) / (z_far - z_near);
    let max = img.iter().copied().fold(0.0, f64::max);
    assert!(
        max <= brightest + 1e-12 && max > brightest - 0.02,
        "{max} vs {brightest}"
    );
    let covered = img.iter().filter(|v| **v > 0.0).count();
    // The built-in face is about 150 × 200 mm: roughly 1900 pixels of 4 mm.
    assert!((1000..3000).contains(&covered), "{covered} pixels covered");
    assert_eq!(r.image_shape(), (1, 48, 48));
}

/// Fits the image of a drawn face (noise free, rendered by the same renderer) from the mean
/// face at the identity pose, optimising coefficients and pose: the fitted face is within
/// 0.5 mm (mean vertex distance, model space, without pose) of the truth.
///
/// Grid: 64 × 64 pixels of 4 mm (the paper's lateral sampling, unpooled): the face covers
/// ~1900 pixels, each constraining the depth of one surface point, against 22 unknowns.
#[test]
fn fitting_recovers_a_rendered_face() {
    let layout = layout();
    let r = renderer(layout, &imaging(64, 0.004));
    let truth = drawn_face(1);
    let truth_row = row(layout
        .to_vector(&truth)
        .into_iter()
        .map(f64::from)
        .collect());
    let target = r.render(&truth_row).unwrap();
    // Start: mean face, identity pose, the true (irrelevant) render columns.
    let mut start = vec![0.0f64; layout.len()];
    for j in layout.range(ParamGroup::Render) {
        start[j] = truth_row
            .get(0)
            .unwrap()
            .get(j)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
    }
    // Adam at 0.1 scaled units per step: the pose moves by up to 5 mm / 1° per step early
    // on, and 800 steps bring the loss down by about six orders of magnitude.
    let config = FitConfig {
        steps: 800,
        learning_rate: 0.1,
        ..FitConfig::new(layout)
    };
    let result = fit(&r, &target, &row(start), &config, &mut NoProgress).unwrap();
    let fitted: Vec<f32> = result
        .params
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let fitted = layout.from_vector(&fitted).unwrap();
    let model = builtin();
    let distance = point_distance(
        &model.instance(&fitted.shape, &fitted.expression).unwrap(),
        &model.instance(&truth.shape, &truth.expression).unwrap(),
    )
    .unwrap();
    let start_distance = point_distance(
        &model.mean_mesh().unwrap(),
        &model.instance(&truth.shape, &truth.expression).unwrap(),
    )
    .unwrap();
    assert!(
        distance < 0.5,
        "point distance {distance} mm (from {start_distance} mm at the mean), losses {:?}",
        &result.losses[result.losses.len().saturating_sub(3)..]
    );
}

/// The physics renderer has no gradients: fitting through it is refused, naming it.
#[test]
fn non_differentiable_renderer_is_refused() {
    let config = Preset::Tiny.dataset().unwrap();
    let physics = PhysicsRenderer::new(builtin(), config.layout, config.imaging.clone()).unwrap();
    let (c, h, w) = physics.image_shape();
    let target = Tensor::zeros((1, c, h, w), DType::F32, &Device::Cpu).unwrap();
    let init = Tensor::zeros((1, config.layout.len()), DType::F32, &Device::Cpu).unwrap();
    let err = fit(
        &physics,
        &target,
        &init,
        &FitConfig::new(config.layout),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(matches!(err, AbsFitError::Config { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("physics") && text.contains("not differentiable"),
        "{text}"
    );
}

/// A few steps from a perturbed start lower the loss; the rendering columns (not optimised)
/// keep their initial values exactly, in f32 as given.
#[test]
fn fitting_lowers_the_loss_and_keeps_fixed_groups() {
    let layout = layout();
    let r = renderer(layout, &Preset::Quick.dataset().unwrap().imaging);
    let truth = layout.to_vector(&drawn_face(2));
    let target = r
        .render(&Tensor::from_vec(truth.clone(), (1, layout.len()), &Device::Cpu).unwrap())
        .unwrap();
    let mut start = truth.clone();
    for j in layout.range(ParamGroup::Shape) {
        start[j] += 0.8;
    }
    start[layout.range(ParamGroup::Rotation).start] += 0.3;
    let init = Tensor::from_vec(start.clone(), (1, layout.len()), &Device::Cpu).unwrap();
    let config = FitConfig {
        steps: 20,
        ..FitConfig::new(layout)
    };
    let result = fit(&r, &target, &init, &config, &mut NoProgress).unwrap();
    assert_eq!(result.losses.len(), result.steps + 1);
    let (first, last) = (result.losses[0], result.losses[result.losses.len() - 1]);
    assert!(first > 0.0 && last < 0.75 * first, "loss {first} → {last}");
    let fitted: Vec<f32> = result.params.flatten_all().unwrap().to_vec1().unwrap();
    for j in layout.range(ParamGroup::Render) {
        assert_eq!(fitted[j], start[j], "column {j}");
    }
    // The renderer is unchanged: the target renders again bit for bit.
    let again = r
        .render(&Tensor::from_vec(truth, (1, layout.len()), &Device::Cpu).unwrap())
        .unwrap();
    let diff = (again - &target).unwrap().abs().unwrap().max_all().unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
}

/// Invalid configurations and mismatched tensors are refused with errors that say what was
/// wrong.
#[test]
fn invalid_fits_are_refused() {
    let layout = layout();
    let r = renderer(layout, &Preset::Tiny.dataset().unwrap().imaging);
    let (c, h, w) = r.image_shape();
    let target = Tensor::zeros((1, c, h, w), DType::F32, &Device::Cpu).unwrap();
    let init = Tensor::zeros((1, layout.len()), DType::F32, &Device::Cpu).unwrap();
    let bad = [
        FitConfig {
            steps: 0,
            ..FitConfig::new(layout)
        },
        FitConfig {
            learning_rate: -1.0,
            ..FitConfig::new(layout)
        },
        FitConfig {
            tolerance: f64::NAN,
            ..FitConfig::new(layout)
        },
        FitConfig {
            prior_weight: -0.1,
            ..FitConfig::new(layout)
        },
        FitConfig {
            optimise: vec![],
            ..FitConfig::new(layout)
        },
        FitConfig {
            loss_pool: 0,
            ..FitConfig::new(layout)
        },
        // 3 does not divide the 16 × 16 images.
        FitConfig {
            loss_pool: 3,
            ..FitConfig::new(layout)
        },
    ];
    for config in bad {
        let err = fit(&r, &target, &init, &config, &mut NoProgress).unwrap_err();
        assert!(
            matches!(err, AbsFitError::Config { .. }),
            "{config:?}: {err}"
        );
    }
    let wrong_target = Tensor::zeros((1, c, h + 1, w), DType::F32, &Device::Cpu).unwrap();
    let err = fit(
        &r,
        &wrong_target,
        &init,
        &FitConfig::new(layout),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("fit target images"), "{err}");
    let wrong_init = Tensor::zeros((1, layout.len() + 1), DType::F32, &Device::Cpu).unwrap();
    let err = fit(
        &r,
        &target,
        &wrong_init,
        &FitConfig::new(layout),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("columns"), "{err}");
    // A layout with more components than the model has is refused at construction.
    let too_many = ParamLayout {
        n_expression: 1000,
        ..layout
    };
    let err = DepthRasterRenderer::new(builtin(), too_many, &imaging(16, 0.016))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("1000 expression columns"), "{err}");
}

/// Asserts that the loss of one fit step's start (its first loss) is `expected` to 1e-6.
fn assert_first_loss(
    r: &dyn Renderer,
    target: &Tensor,
    start: &[f64],
    config: &FitConfig,
    expected: f64,
) {
    let result = fit(r, target, &row(start.to_vec()), config, &mut NoProgress).unwrap();
    assert!(
        (result.losses[0] as f64 - expected).abs() <= 1e-6 * expected,
        "{} vs {expected}",
        result.losses[0]
    );
}

#[test]
fn empty_target_pixels_can_be_left_out_of_the_loss() {
    let layout = layout();
    let r = renderer(layout, &imaging(32, 0.008));
    let truth = layout.to_vector(&drawn_face(2));
    let start = layout.to_vector(&drawn_face(5));
    let to_f64 = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<_>>();
    let (truth, start) = (to_f64(truth), to_f64(start));
    // The target: the true face's depth image with every third covered pixel emptied, as a
    // radar leaves pixels below its dynamic range empty.
    let mut target = image(&r, &truth);
    for (i, t) in target.iter_mut().enumerate() {
        if i % 3 == 0 {
            *t = 0.0;
        }
    }
    let rendered = image(&r, &start);
    let kept: Vec<usize> = (0..target.len()).filter(|&i| target[i] != 0.0).collect();
    let expected = kept
        .iter()
        .map(|&i| (rendered[i] - target[i]).powi(2))
        .sum::<f64>()
        / kept.len() as f64;
    let target_tensor = Tensor::from_vec(target.clone(), (1, 1, 32, 32), &Device::Cpu).unwrap();
    let config = FitConfig {
        steps: 1,
        ignore_empty_target: true,
        ..FitConfig::new(layout)
    };
    assert_first_loss(&r, &target_tensor, &start, &config, expected);
    // All-empty targets are refused rather than fitted to nothing.
    let empty = Tensor::zeros((1, 1, 32, 32), DType::F64, &Device::Cpu).unwrap();
    assert!(fit(&r, &empty, &row(start), &config, &mut NoProgress).is_err());
}

/// A two-channel renderer for the per-channel loss: the depth raster's image and half of it.
struct TwoChannels(DepthRasterRenderer<&'static BuiltinModel>);

impl Renderer for TwoChannels {
    fn name(&self) -> &str {
        "two channels"
    }
    fn render(&self, params: &Tensor) -> abs_fit::Result<Tensor> {
        let one = self.0.render(params)?;
        Ok(Tensor::cat(&[&one, &(&one * 0.5)?], 1)?)
    }
    fn is_differentiable(&self) -> bool {
        true
    }
    fn image_shape(&self) -> (usize, usize, usize) {
        let (_, h, w) = self.0.image_shape();
        (2, h, w)
    }
}

/// Per-channel losses weigh each channel's squared differences and leave out the empty target
/// pixels of the channels that say so: the first loss equals the weighted mean computed here
/// from the rendered and target images. Mismatched or invalid channel settings are refused.
#[test]
fn channel_losses_weigh_and_mask_each_channel() {
    let layout = layout();
    let r = TwoChannels(renderer(layout, &imaging(32, 0.008)));
    let to_f64 = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<_>>();
    let truth = to_f64(layout.to_vector(&drawn_face(2)));
    let other = to_f64(layout.to_vector(&drawn_face(7)));
    let start = to_f64(layout.to_vector(&drawn_face(5)));
    let hw = 32 * 32;
    // Channel 0: the true face with every third pixel emptied; channel 1: another face.
    let mut target = image(&r, &truth)[..hw].to_vec();
    for (i, t) in target.iter_mut().enumerate() {
        if i % 3 == 0 {
            *t = 0.0;
        }
    }
    target.extend_from_slice(&image(&r, &other)[hw..]);
    let rendered = image(&r, &start);
    let channels = vec![
        ChannelLoss {
            weight: 2.0,
            ignore_empty_target: true,
        },
        ChannelLoss {
            weight: 0.5,
            ignore_empty_target: false,
        },
    ];
    let (mut sum, mut kept) = (0.0, 0usize);
    for (i, (a, t)) in rendered.iter().zip(&target).enumerate() {
        let channel = channels[i / hw];
        if channel.ignore_empty_target && *t == 0.0 {
            continue;
        }
        sum += channel.weight * (a - t).powi(2);
        kept += 1;
    }
    let expected = sum / kept as f64;
    assert!(kept < 2 * hw && kept > hw, "{kept} pixels kept");
    let target = Tensor::from_vec(target, (1, 2, 32, 32), &Device::Cpu).unwrap();
    let config = FitConfig {
        steps: 1,
        channels: channels.clone(),
        ..FitConfig::new(layout)
    };
    assert_first_loss(&r, &target, &start, &config, expected);
    let refused = |config: FitConfig| {
        fit(&r, &target, &row(start.clone()), &config, &mut NoProgress).unwrap_err()
    };
    let one_channel = FitConfig {
        channels: channels[..1].to_vec(),
        ..config.clone()
    };
    assert!(matches!(refused(one_channel), AbsFitError::Shape { .. }));
    let negative = FitConfig {
        channels: vec![
            channels[0],
            ChannelLoss {
                weight: -1.0,
                ..channels[1]
            },
        ],
        ..config.clone()
    };
    assert!(matches!(refused(negative), AbsFitError::Config { .. }));
    let both = FitConfig {
        ignore_empty_target: true,
        ..config
    };
    assert!(matches!(refused(both), AbsFitError::Config { .. }));
}

/// The Cauchy loss replaces each squared difference d² by c²·ln(1 + d²/c²): the first loss
/// equals that mean computed here; a scale that is not positive is refused.
#[test]
fn a_cauchy_loss_compares_pixels_robustly() {
    let layout = layout();
    let r = renderer(layout, &imaging(32, 0.008));
    let to_f64 = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<_>>();
    let target = image(&r, &to_f64(layout.to_vector(&drawn_face(2))));
    let start = to_f64(layout.to_vector(&drawn_face(5)));
    let rendered = image(&r, &start);
    let c: f64 = 0.05;
    let expected = (rendered.iter().zip(&target))
        .map(|(a, t)| c * c * (1.0 + ((a - t) / c).powi(2)).ln())
        .sum::<f64>()
        / target.len() as f64;
    let squared = (rendered.iter().zip(&target))
        .map(|(a, t)| (a - t).powi(2))
        .sum::<f64>()
        / target.len() as f64;
    // The two losses differ on these images: some differences are larger than c.
    assert!(expected < 0.9 * squared, "{expected} vs {squared}");
    let target = Tensor::from_vec(target, (1, 1, 32, 32), &Device::Cpu).unwrap();
    let config = FitConfig {
        steps: 1,
        cauchy_scale: Some(c),
        ..FitConfig::new(layout)
    };
    assert_first_loss(&r, &target, &start, &config, expected);
    for bad in [0.0, -1.0, f64::NAN] {
        let config = FitConfig {
            cauchy_scale: Some(bad),
            ..config.clone()
        };
        let err = fit(&r, &target, &row(start.clone()), &config, &mut NoProgress).unwrap_err();
        assert!(matches!(err, AbsFitError::Config { .. }), "{bad}: {err}");
    }
}

/// With paired realisations the pixel loss is (r₁ − t)·(r₂ − t) of the pair's two halves:
/// the first loss of two different renderers side by side is that mean, computed here from
/// their own images; a pair of one renderer with itself fits exactly as the renderer alone
/// (the product's gradient is the square's); the Cauchy loss, a renderer of an odd number of
/// channels and renderers of different shapes are refused.
#[test]
fn paired_realisations_multiply_the_two_differences() {
    let layout = layout();
    let to_f64 = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<_>>();
    let (a, b) = (
        renderer(layout, &imaging(32, 0.008)),
        renderer(layout, &imaging(32, 0.0085)),
    );
    let target = image(&a, &to_f64(layout.to_vector(&drawn_face(2))));
    let start = to_f64(layout.to_vector(&drawn_face(5)));
    let (first, second) = (image(&a, &start), image(&b, &start));
    let product = |x: &[f64], y: &[f64]| {
        (x.iter().zip(y).zip(&target))
            .map(|((x, y), t)| (x - t) * (y - t))
            .sum::<f64>()
            / target.len() as f64
    };
    let expected = product(&first, &second);
    // The two renderers' images differ, so the product is no square of either.
    let squares = [product(&first, &first), product(&second, &second)];
    assert!(
        squares.iter().all(|s| (s - expected).abs() > 1e-3 * s),
        "{expected} vs {squares:?}"
    );
    let target = Tensor::from_vec(target, (1, 1, 32, 32), &Device::Cpu).unwrap();
    let paired = FitConfig {
        steps: 1,
        paired_realisations: true,
        ..FitConfig::new(layout)
    };
    let pair = PairedRenderer::new(&a, &b).unwrap();
    assert_eq!(pair.image_shape(), (2, 32, 32));
    assert_first_loss(&pair, &target, &start, &paired, expected);

    let config = FitConfig {
        steps: 5,
        learning_rate: 0.02,
        ..FitConfig::new(layout)
    };
    let alone = fit(&a, &target, &row(start.clone()), &config, &mut NoProgress).unwrap();
    let twice = fit(
        &PairedRenderer::new(&a, &a).unwrap(),
        &target,
        &row(start.clone()),
        &FitConfig {
            paired_realisations: true,
            ..config.clone()
        },
        &mut NoProgress,
    )
    .unwrap();
    let values = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let (alone, twice) = (values(&alone.params), values(&twice.params));
    assert!(
        alone.iter().zip(&start).any(|(a, s)| (a - s).abs() > 1e-3),
        "the fit moved"
    );
    for (x, y) in alone.iter().zip(&twice) {
        assert!((x - y).abs() <= 1e-9, "{x} vs {y}");
    }

    let refused = |r: &dyn Renderer, config: &FitConfig| {
        fit(r, &target, &row(start.clone()), config, &mut NoProgress).unwrap_err()
    };
    let with_cauchy = FitConfig {
        cauchy_scale: Some(0.05),
        ..paired.clone()
    };
    assert!(matches!(
        refused(&pair, &with_cauchy),
        AbsFitError::Config { .. }
    ));
    let err = refused(&a, &paired).to_string();
    assert!(err.contains("two realisations"), "{err}");
    let other = renderer(layout, &imaging(16, 0.016));
    assert!(matches!(
        PairedRenderer::new(&a, &other),
        Err(AbsFitError::Shape { .. })
    ));
}

/// A prior with a precision matrix adds λ·oᵀΠo over its own columns to the first loss, with o
/// the offsets from the start's centre; a precision of the wrong size, asymmetric or negative
/// on its diagonal is refused.
#[test]
fn a_prior_precision_weighs_the_offsets() {
    let layout = layout();
    let p = layout.len();
    let r = renderer(layout, &imaging(32, 0.008));
    let to_f64 = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<_>>();
    let target = image(&r, &to_f64(layout.to_vector(&drawn_face(2))));
    let start = to_f64(layout.to_vector(&drawn_face(5)));
    let rendered = image(&r, &start);
    let image_loss = (rendered.iter().zip(&target))
        .map(|(a, t)| (a - t).powi(2))
        .sum::<f64>()
        / target.len() as f64;
    // Centred on the mean face: the offsets are the coefficients themselves. Π: a symmetric
    // matrix with off-diagonal terms, read on the shape and expression columns only.
    let numbers = |i: usize, j: usize| ((i * 7 + j * 3) % 5) as f64 * 0.1;
    let precision: Vec<f64> = (0..p * p)
        .map(|k| {
            let (i, j) = (k / p, k % p);
            numbers(i.min(j), i.max(j)) + if i == j { 2.0 } else { 0.0 }
        })
        .collect();
    let prior: Vec<usize> = (layout.range(ParamGroup::Shape))
        .chain(layout.range(ParamGroup::Expression))
        .collect();
    let quadratic: f64 = (prior.iter())
        .flat_map(|&i| prior.iter().map(move |&j| (i, j)))
        .map(|(i, j)| start[i] * precision[i * p + j] * start[j])
        .sum();
    let lambda = 0.01;
    let target = Tensor::from_vec(target, (1, 1, 32, 32), &Device::Cpu).unwrap();
    let config = FitConfig {
        steps: 1,
        prior_weight: lambda,
        prior_precision: Some(precision.clone().into()),
        ..FitConfig::new(layout)
    };
    assert_first_loss(
        &r,
        &target,
        &start,
        &config,
        image_loss + lambda * quadratic,
    );
    let asymmetric = {
        let mut m = precision.clone();
        m[1] += 0.5;
        m
    };
    let negative = {
        let mut m = precision.clone();
        m[0] = -1.0;
        m
    };
    for bad in [precision[1..].to_vec(), asymmetric, negative] {
        let config = FitConfig {
            prior_precision: Some(bad.into()),
            ..config.clone()
        };
        let err = fit(&r, &target, &row(start.clone()), &config, &mut NoProgress).unwrap_err();
        assert!(err.to_string().contains("prior precision"), "{err}");
    }
}

/// Each row's fit loss, image mean squared error plus `prior` times the squared shape and
/// expression columns, computed independently of `fit`.
fn row_losses(r: &dyn Renderer, target: &Tensor, params: &Tensor, prior: f64) -> Vec<f64> {
    let layout = layout();
    let rows = |t: &Tensor| -> Vec<Vec<f64>> { t.to_dtype(DType::F64).unwrap().to_vec2().unwrap() };
    let images = rows(&r.render(params).unwrap().flatten_from(1).unwrap());
    let targets = rows(&target.flatten_from(1).unwrap());
    (images.iter().zip(&targets).zip(rows(params)))
        .map(|((a, b), p)| {
            let mse = a.iter().zip(b).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / a.len() as f64;
            let coefficients: f64 = (layout.range(ParamGroup::Shape))
                .chain(layout.range(ParamGroup::Expression))
                .map(|j| p[j] * p[j])
                .sum();
            mse + prior * coefficients
        })
        .collect()
}

/// Asserts that no row of `fitted` ends with a higher loss than at `init` (each row's loss
/// computed here independently, with `prior`) and that the last recorded loss is the mean of
/// the rows' end losses; returns the rows' losses at the start and at the end.
fn assert_no_row_rises(
    r: &dyn Renderer,
    target: &Tensor,
    init: &Tensor,
    fitted: &FitResult,
    prior: f64,
) -> (Vec<f64>, Vec<f64>) {
    let (start, end) = (
        row_losses(r, target, init, prior),
        row_losses(r, target, &fitted.params, prior),
    );
    for (row, (s, e)) in start.iter().zip(&end).enumerate() {
        assert!(e <= s, "row {row}: {s} → {e}");
    }
    let mean = end.iter().sum::<f64>() / end.len() as f64;
    let last = f64::from(*fitted.losses.last().unwrap());
    assert!(
        (last - mean).abs() <= 1e-5 * mean.max(1e-6),
        "{last} against {mean}"
    );
    (start, end)
}

/// Two rows: a drawn face (its own image's exact optimum) and the mean face at the identity
/// pose, with the drawn face's rendering columns; the target is the drawn face's image twice.
fn optimum_and_mean() -> (
    DepthRasterRenderer<&'static BuiltinModel>,
    Tensor,
    Tensor,
    Vec<f64>,
) {
    let layout = layout();
    let r = renderer(layout, &imaging(32, 0.008));
    let truth: Vec<f64> = layout
        .to_vector(&drawn_face(3))
        .iter()
        .map(|&v| v as f64)
        .collect();
    let mut mean = vec![0.0; layout.len()];
    for j in layout.range(ParamGroup::Render) {
        mean[j] = truth[j];
    }
    let init = Tensor::from_vec(
        [truth.clone(), mean].concat(),
        (2, layout.len()),
        &Device::Cpu,
    )
    .unwrap();
    let one = r.render(&row(truth.clone())).unwrap();
    let target = Tensor::cat(&[&one, &one], 0).unwrap();
    (r, target, init, truth)
}

#[test]
fn keep_best_ends_each_row_at_its_lowest_loss() {
    let (r, target, init, _) = optimum_and_mean();
    let layout = layout();
    // A learning rate large enough for Adam to overshoot, and a prior: the rows' losses rise
    // and fall over the steps.
    let config = |steps: usize| FitConfig {
        steps,
        learning_rate: 0.5,
        prior_weight: 0.01,
        tolerance: 0.0,
        ..FitConfig::new(layout)
    };
    let rows = |t: &Tensor| -> Vec<Vec<f64>> { t.to_dtype(DType::F64).unwrap().to_vec2().unwrap() };
    // Each row's loss after k steps, computed here independently.
    let row_losses = |params: &Tensor| row_losses(&r, &target, params, 0.01);
    let n = 5;
    // After 0 steps: the start.
    let trajectory: Vec<Tensor> = std::iter::once(init.clone())
        .chain((1..=n).map(|k| {
            fit(&r, &target, &init, &config(k), &mut NoProgress)
                .unwrap()
                .params
        }))
        .collect();
    let losses: Vec<Vec<f64>> = trajectory.iter().map(row_losses).collect();
    let best = fit(
        &r,
        &target,
        &init,
        &FitConfig {
            keep_best: true,
            ..config(n)
        },
        &mut NoProgress,
    )
    .unwrap();
    let mut moved = false;
    for (row, got) in rows(&best.params).iter().enumerate() {
        let k = (0..=n)
            .min_by(|&a, &b| losses[a][row].total_cmp(&losses[b][row]))
            .unwrap();
        moved |= k != n;
        let expected = &rows(&trajectory[k])[row];
        let gap = expected
            .iter()
            .zip(got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(gap < 1e-5, "row {row}: step {k} of {n}, off by {gap}");
    }
    // The test means something only if some row's best is not its last step.
    assert!(moved, "{losses:?}");
    // One step far too large: the row at its image's optimum ends where it began, to the bit.
    let wild = FitConfig {
        learning_rate: 5.0,
        keep_best: true,
        ..config(1)
    };
    let kept = fit(&r, &target, &init, &wild, &mut NoProgress).unwrap();
    let after = row_losses(&kept.params);
    assert!(
        after[0] <= losses[0][0],
        "{after:?} against {:?}",
        losses[0]
    );
    assert_eq!(rows(&kept.params)[0], rows(&init)[0]);
}

/// With `average_last` = N a fit ends at the mean of the parameters after its last N steps:
/// those of the fits of S − N + 1 .. S steps, computed independently.
#[test]
fn averaging_ends_at_the_mean_of_the_last_iterates() {
    let (r, target, init, _) = optimum_and_mean();
    let layout = layout();
    let config = |steps: usize| FitConfig {
        steps,
        learning_rate: 0.2,
        prior_weight: 0.01,
        tolerance: 0.0,
        ..FitConfig::new(layout)
    };
    let rows = |t: &Tensor| -> Vec<Vec<f64>> { t.to_dtype(DType::F64).unwrap().to_vec2().unwrap() };
    let (steps, n) = (6, 3);
    let iterates: Vec<Vec<Vec<f64>>> = (steps - n + 1..=steps)
        .map(|k| {
            rows(
                &fit(&r, &target, &init, &config(k), &mut NoProgress)
                    .unwrap()
                    .params,
            )
        })
        .collect();
    let averaged = fit(
        &r,
        &target,
        &init,
        &FitConfig {
            average_last: n,
            ..config(steps)
        },
        &mut NoProgress,
    )
    .unwrap();
    let last = iterates.last().unwrap();
    let mut moved = 0.0_f64;
    for (row, got) in rows(&averaged.params).iter().enumerate() {
        for (j, value) in got.iter().enumerate() {
            let mean = iterates.iter().map(|it| it[row][j]).sum::<f64>() / n as f64;
            assert!(
                (value - mean).abs() < 1e-5,
                "row {row} column {j}: {value} vs {mean}"
            );
            moved = moved.max((mean - last[row][j]).abs());
        }
    }
    // The mean is not the last iterate: the test would catch a fit that ignored the option.
    assert!(moved > 1e-3, "{moved}");
    // Losses are still those of every iterate.
    assert_eq!(averaged.losses.len(), steps + 1);
    // Averaging with keep_best or backtrack is refused.
    for bad in [
        FitConfig {
            keep_best: true,
            average_last: 2,
            ..config(3)
        },
        FitConfig {
            backtrack: true,
            average_last: 2,
            ..config(3)
        },
    ] {
        let error = fit(&r, &target, &init, &bad, &mut NoProgress).unwrap_err();
        assert!(error.to_string().contains("averaging"), "{error}");
    }
}

/// With cosine decay step k of S is taken at lr·(1 + cos(πk/S))/2: of a two-step fit the first
/// step is the constant-rate fit's, the second half of it (Adam's update is linear in its rate
/// once the gradients and moments are the same).
#[test]
fn cosine_decay_halves_the_second_of_two_steps() {
    let (r, target, init, _) = optimum_and_mean();
    let config = |steps: usize, cosine_decay: bool| FitConfig {
        steps,
        learning_rate: 0.2,
        prior_weight: 0.01,
        tolerance: 0.0,
        cosine_decay,
        ..FitConfig::new(layout())
    };
    let run = |steps, cosine| -> Vec<f64> {
        fit(&r, &target, &init, &config(steps, cosine), &mut NoProgress)
            .unwrap()
            .params
            .to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let one = run(1, false);
    assert_eq!(run(1, true), one);
    let (constant, decayed) = (run(2, false), run(2, true));
    let mut largest = 0.0_f64;
    for ((c, d), o) in constant.iter().zip(&decayed).zip(&one) {
        let (full, half) = (c - o, d - o);
        assert!((half - full / 2.0).abs() < 1e-6, "{half} vs {full} / 2");
        largest = largest.max(full.abs());
    }
    assert!(largest > 1e-2, "the second step moved by {largest} only");
}

#[test]
fn backtracking_never_lets_a_rows_loss_rise() {
    let (r, target, init, _) = optimum_and_mean();
    let layout = layout();
    // Adam overshoots at this rate: without backtracking some row's loss rises on some step.
    let config = |backtrack: bool| FitConfig {
        steps: 12,
        learning_rate: 0.5,
        prior_weight: 0.01,
        tolerance: 0.0,
        backtrack,
        ..FitConfig::new(layout)
    };
    let rises = |losses: &[f32]| losses.windows(2).any(|w| w[1] > w[0]);
    let plain = fit(&r, &target, &init, &config(false), &mut NoProgress).unwrap();
    assert!(rises(&plain.losses), "{:?}", plain.losses);
    let careful = fit(&r, &target, &init, &config(true), &mut NoProgress).unwrap();
    assert!(!rises(&careful.losses), "{:?}", careful.losses);
    assert_no_row_rises(&r, &target, &init, &careful, 0.01);
    // And it still moves: the fit is not stuck at its start.
    let last = careful.losses[careful.losses.len() - 1];
    assert!(last < careful.losses[0], "{:?}", careful.losses);
    // One face at a rate far too large: its first trials are undone, and the fit goes on with
    // smaller steps instead of stopping as if it had converged.
    let (one, one_target) = (
        init.narrow(0, 1, 1).unwrap(),
        target.narrow(0, 1, 1).unwrap(),
    );
    let wild = FitConfig {
        learning_rate: 5.0,
        tolerance: 1e-7,
        ..config(true)
    };
    let fitted = fit(&r, &one_target, &one, &wild, &mut NoProgress).unwrap();
    let undone = fitted.losses.windows(2).any(|w| w[1] == w[0]);
    assert!(undone, "{:?}", fitted.losses);
    assert_eq!(fitted.steps, 12, "{:?}", fitted.losses);
    assert!(fitted.losses[12] < fitted.losses[0], "{:?}", fitted.losses);
}

#[test]
fn a_prior_at_the_start_holds_an_exact_start_while_one_at_the_mean_pulls_it() {
    let (r, target, init, truth) = optimum_and_mean();
    let layout = layout();
    let truth_only = init.narrow(0, 0, 1).unwrap();
    let target = target.narrow(0, 0, 1).unwrap();
    let config = FitConfig {
        steps: 20,
        learning_rate: 0.05,
        prior_weight: 1.0,
        tolerance: 0.0,
        ..FitConfig::new(layout)
    };
    let coefficients = |t: &Tensor| -> f64 {
        let v: Vec<f64> = t
            .to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        (layout.range(ParamGroup::Shape))
            .chain(layout.range(ParamGroup::Expression))
            .map(|j| v[j] * v[j])
            .sum::<f64>()
            .sqrt()
    };
    let at_start = fit(
        &r,
        &target,
        &truth_only,
        &FitConfig {
            prior_centre: PriorCentre::Start,
            ..config.clone()
        },
        &mut NoProgress,
    )
    .unwrap();
    // Image loss and prior are both 0 at the start: the gradient is 0 and nothing moves.
    let fitted: Vec<f64> = at_start.params.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(fitted, truth);
    let at_mean = fit(&r, &target, &truth_only, &config, &mut NoProgress).unwrap();
    assert!(coefficients(&at_mean.params) < coefficients(&truth_only) - 1e-3);
}

#[test]
fn a_pose_prior_at_the_start_holds_the_pose_back() {
    let (r, target, init, _) = optimum_and_mean();
    let layout = layout();
    // Row 1: the mean face at the identity pose, fitted toward a posed face's image.
    let start = init.narrow(0, 1, 1).unwrap();
    let target = target.narrow(0, 1, 1).unwrap();
    let config = FitConfig {
        steps: 30,
        learning_rate: 0.05,
        prior_weight: 1.0,
        prior_centre: PriorCentre::Start,
        tolerance: 0.0,
        ..FitConfig::new(layout)
    };
    let pose_moved = |pose_prior: bool| -> f64 {
        let fitted = fit(
            &r,
            &target,
            &start,
            &FitConfig {
                pose_prior,
                ..config.clone()
            },
            &mut NoProgress,
        )
        .unwrap();
        let a: Vec<f64> = fitted.params.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f64> = start.flatten_all().unwrap().to_vec1().unwrap();
        (layout.range(ParamGroup::Translation))
            .chain(layout.range(ParamGroup::Rotation))
            .map(|j| (a[j] - b[j]).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let (free, held) = (pose_moved(false), pose_moved(true));
    assert!(
        free > 0.0 && held < 0.8 * free,
        "pose moved {held} with the prior, {free} without"
    );
}

/// With a pooled loss the fit's first loss is the mean squared difference of the k × k block
/// means of the rendered and target images, computed here pixel by pixel.
#[test]
fn a_pooled_loss_compares_block_means() {
    let layout = layout();
    let r = renderer(layout, &Preset::Tiny.dataset().unwrap().imaging);
    let (c, h, w) = r.image_shape();
    let truth = layout.to_vector(&drawn_face(4));
    let target = r
        .render(&Tensor::from_vec(truth.clone(), (1, layout.len()), &Device::Cpu).unwrap())
        .unwrap();
    let mut start = truth;
    for j in layout.range(ParamGroup::Shape) {
        start[j] += 0.5;
    }
    let init = Tensor::from_vec(start, (1, layout.len()), &Device::Cpu).unwrap();
    let rendered: Vec<f32> = r
        .render(&init)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let wanted: Vec<f32> = target.flatten_all().unwrap().to_vec1().unwrap();
    let k = 4;
    let block = |image: &[f32], ch: usize, by: usize, bx: usize| -> f64 {
        let mut sum = 0.0;
        for y in by * k..(by + 1) * k {
            for x in bx * k..(bx + 1) * k {
                sum += f64::from(image[(ch * h + y) * w + x]);
            }
        }
        sum / (k * k) as f64
    };
    let mut squared = 0.0;
    for ch in 0..c {
        for by in 0..h / k {
            for bx in 0..w / k {
                squared += (block(&rendered, ch, by, bx) - block(&wanted, ch, by, bx)).powi(2);
            }
        }
    }
    let expected = squared / (c * (h / k) * (w / k)) as f64;
    let config = FitConfig {
        steps: 1,
        loss_pool: k,
        ..FitConfig::new(layout)
    };
    let result = fit(&r, &target, &init, &config, &mut NoProgress).unwrap();
    let first = f64::from(result.losses[0]);
    assert!(
        expected > 0.0 && (first - expected).abs() <= 1e-5 * expected,
        "{first} vs {expected}"
    );
}

/// A renderer whose images are a fixed linear map of the parameter rows: images = p·A,
/// reshaped to (B, 1, 4, 4).
struct Linear(Tensor);

impl Renderer for Linear {
    fn name(&self) -> &str {
        "linear"
    }
    fn render(&self, params: &Tensor) -> abs_fit::Result<Tensor> {
        let b = params.dim(0)?;
        let a = self.0.to_dtype(params.dtype())?;
        Ok(params.matmul(&a)?.reshape((b, 1, 4, 4))?)
    }
    fn is_differentiable(&self) -> bool {
        true
    }
    fn image_shape(&self) -> (usize, usize, usize) {
        (1, 4, 4)
    }
}

/// Levenberg–Marquardt on a linear renderer: with almost no damping and an exact difference
/// quotient, its first step lands on the least-squares solution of the image loss plus the
/// prior, solved here independently from the normal equations over the optimised columns;
/// the other columns keep their values.
#[test]
fn levenberg_marquardt_solves_a_linear_problem_in_one_step() {
    let layout = layout();
    let p = layout.len();
    let a: Vec<f64> = (0..p * 16)
        .map(|i| ((i * 37 % 101) as f64 / 101.0 - 0.5) * (1.0 + (i % 5) as f64))
        .collect();
    let r = Linear(Tensor::from_vec(a.clone(), (p, 16), &Device::Cpu).unwrap());
    let start: Vec<f64> = (0..p).map(|j| 0.1 * j as f64 - 0.7).collect();
    let target_values: Vec<f64> = (0..16).map(|i| (i as f64 * 0.7).sin()).collect();
    let target = Tensor::from_vec(target_values.clone(), (1, 1, 4, 4), &Device::Cpu).unwrap();
    let prior = 0.01;
    let optimise = vec![ParamGroup::Shape, ParamGroup::Translation];
    let config = FitConfig {
        steps: 1,
        prior_weight: prior,
        tolerance: 0.0,
        optimise: optimise.clone(),
        solver: Solver::LevenbergMarquardt(LevenbergMarquardt {
            difference_step: 1.0,
            damping: 1e-12,
        }),
        ..FitConfig::new(layout)
    };
    let result = fit(&r, &target, &row(start.clone()), &config, &mut NoProgress).unwrap();
    let got = result.params.to_vec2::<f64>().unwrap().remove(0);
    // Minimise (1/16)·|A_fᵀ x + A_rᵀ s − t|² + λ·|x_prior|² over the free columns x, the rest s
    // held: (A_f A_fᵀ/16 + λ·D) x = A_f (t − A_rᵀ s)/16, D = 1 on the free prior columns.
    let free: Vec<usize> = optimise.iter().flat_map(|&g| layout.range(g)).collect();
    let shape = layout.range(ParamGroup::Shape);
    let residual_of_fixed: Vec<f64> = (0..16)
        .map(|i| {
            target_values[i]
                - (0..p)
                    .filter(|j| !free.contains(j))
                    .map(|j| a[j * 16 + i] * start[j])
                    .sum::<f64>()
        })
        .collect();
    let k = free.len();
    // Column j of A as a row of 16 pixel values.
    let pixels = |j: usize| &a[j * 16..(j + 1) * 16];
    let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(x, y)| x * y).sum::<f64>();
    let normal = nalgebra::DMatrix::from_fn(k, k, |u, v| {
        let prior_term = (u == v && shape.contains(&free[u])) as u8 as f64 * prior;
        dot(pixels(free[u]), pixels(free[v])) / 16.0 + prior_term
    });
    let right =
        nalgebra::DVector::from_fn(k, |u, _| dot(pixels(free[u]), &residual_of_fixed) / 16.0);
    let solution = normal.lu().solve(&right).unwrap();
    for j in 0..p {
        let expected = match free.iter().position(|&f| f == j) {
            Some(u) => solution[u],
            None => start[j],
        };
        assert!(
            (got[j] - expected).abs() <= 1e-6 * (1.0 + expected.abs()),
            "column {j}: {} against {expected}",
            got[j]
        );
    }
    assert!(result.losses[1] < result.losses[0], "{:?}", result.losses);
}

/// On the (non-linear) depth raster, Levenberg–Marquardt accepts only steps that lower a
/// row's loss: the losses never rise, each row ends no worse than it began (computed here
/// independently), and the fit moves.
#[test]
fn levenberg_marquardt_never_lets_a_rows_loss_rise() {
    let (r, target, init, _) = optimum_and_mean();
    let config = FitConfig {
        steps: 6,
        prior_weight: 0.01,
        tolerance: 0.0,
        solver: Solver::LevenbergMarquardt(LevenbergMarquardt::default()),
        ..FitConfig::new(layout())
    };
    let result = fit(&r, &target, &init, &config, &mut NoProgress).unwrap();
    assert!(
        result.losses.windows(2).all(|w| w[1] <= w[0]),
        "{:?}",
        result.losses
    );
    let (start, end) = assert_no_row_rises(&r, &target, &init, &result, 0.01);
    assert!(end[1] < 0.5 * start[1], "{start:?} → {end:?}");
}

/// Levenberg–Marquardt refuses a non-positive difference step or damping and every
/// Adam-only setting.
#[test]
fn levenberg_marquardt_refuses_adam_only_settings() {
    let layout = layout();
    let r = renderer(layout, &imaging(16, 0.016));
    let target = Tensor::zeros((1, 1, 16, 16), DType::F32, &Device::Cpu).unwrap();
    let init = Tensor::zeros((1, layout.len()), DType::F32, &Device::Cpu).unwrap();
    let lm = |difference_step: f64, damping: f64| FitConfig {
        solver: Solver::LevenbergMarquardt(LevenbergMarquardt {
            difference_step,
            damping,
        }),
        ..FitConfig::new(layout)
    };
    let bad = [
        (lm(0.0, 1e-2), "difference step"),
        (lm(1e-3, f64::NAN), "damping"),
        (
            FitConfig {
                cauchy_scale: Some(0.1),
                ..lm(1e-3, 1e-2)
            },
            "Cauchy",
        ),
        (
            FitConfig {
                backtrack: true,
                ..lm(1e-3, 1e-2)
            },
            "backtrack",
        ),
        (
            FitConfig {
                average_last: 3,
                ..lm(1e-3, 1e-2)
            },
            "averaging",
        ),
    ];
    for (config, what) in bad {
        let err = fit(&r, &target, &init, &config, &mut NoProgress).unwrap_err();
        assert!(
            matches!(err, AbsFitError::Config { .. }) && err.to_string().contains(what),
            "{what}: {err}"
        );
    }
}
