//! Tests: the geometry-aware parameter loss (Richardson et al., "Learning Detailed Face
//! Reconstruction from a Single Image", §4.1, eq. 4) against meshes built by the face model itself, and the render-time comparison of issue 7.

use std::sync::Arc;

use abs_fit::dataset::InputKind;
use abs_fit::evaluate::render_times;
use abs_fit::train::{ParamLoss, VertexGram};
use abs_fit::{LearnedRenderer, ParamGroup, PhysicsRenderer, Preset, Renderer};
use candle_core::{Device, Tensor};
use morphable::builtin::builtin;
use morphable::{LinearMorphableModel, MorphableModel};
use proptest::prelude::*;

/// The mean over the model's vertices of the squared distance (mm²) between the meshes of two
/// coefficient sets, from `instance` alone.
fn mesh_mean_squared_distance(
    model: &dyn MorphableModel,
    (shape_a, expr_a): (&[f64], &[f64]),
    (shape_b, expr_b): (&[f64], &[f64]),
) -> f64 {
    let a = model.instance(shape_a, expr_a).unwrap();
    let b = model.instance(shape_b, expr_b).unwrap();
    let sum: f64 = a
        .vertices
        .iter()
        .zip(&b.vertices)
        .map(|(p, q)| (p - q).norm_squared())
        .sum();
    sum / a.vertices.len() as f64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// dᵀ G d equals the mean squared vertex distance of the two meshes, whatever the pose and
    /// rendering columns hold (they do not move the model-space vertices).
    #[test]
    fn gram_loss_is_the_mean_squared_vertex_distance(
        a in proptest::collection::vec(-3.0f32..3.0, 32),
        b in proptest::collection::vec(-3.0f32..3.0, 32),
    ) {
        let layout = Preset::Tiny.dataset().unwrap().layout;
        let p = layout.len();
        let model = builtin();
        let gram = VertexGram::new(model, &layout).unwrap();
        prop_assert_eq!(gram.n_coefficients(), layout.n_shape + layout.n_expression);
        let (a, b) = (&a[..p], &b[..p]);
        let rows = Tensor::from_vec([a, b].concat(), (2, p), &Device::Cpu).unwrap();
        let swapped = Tensor::from_vec([b, a].concat(), (2, p), &Device::Cpu).unwrap();
        let from_gram = gram
            .mean_squared_displacement(&rows, &swapped)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let coefficients = |v: &[f32], g: ParamGroup| -> Vec<f64> {
            v[layout.range(g)].iter().map(|&x| x as f64).collect()
        };
        let (sa, ea) = (coefficients(a, ParamGroup::Shape), coefficients(a, ParamGroup::Expression));
        let (sb, eb) = (coefficients(b, ParamGroup::Shape), coefficients(b, ParamGroup::Expression));
        let direct = mesh_mean_squared_distance(model, (&sa, &ea), (&sb, &eb));
        for value in from_gram {
            let value = value as f64;
            prop_assert!(
                (value - direct).abs() <= 1e-4 * direct + 1e-6,
                "Gram {value} mm² vs meshes {direct} mm²"
            );
        }
    }
}

/// The Gram matrix is symmetric and its diagonal is each component's mean squared displacement
/// per vertex (mm²), read straight from the scaled basis.
#[test]
fn gram_diagonal_is_each_components_mean_squared_displacement() {
    let layout = Preset::Tiny.dataset().unwrap().layout;
    let model = builtin();
    let gram = VertexGram::new(model, &layout).unwrap();
    let g = gram.matrix().to_vec2::<f32>().unwrap();
    let n = model.n_vertices() as f64;
    for (i, row) in g.iter().enumerate() {
        let column = if i < layout.n_shape {
            model.shape_block().component(i)
        } else {
            model.expression_block().component(i - layout.n_shape)
        };
        let expected: f64 = column.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / n;
        assert!(
            (row[i] as f64 - expected).abs() <= 1e-5 * expected,
            "G[{i}][{i}]"
        );
        for (j, &value) in row.iter().enumerate() {
            assert_eq!(value, g[j][i], "G[{i}][{j}]");
        }
    }
}

/// A layout asking for more coefficients than the model has is refused; so is a geometry loss
/// without a model (what deserialising a config gives) or with a bad weight.
#[test]
fn geometry_loss_refuses_what_it_cannot_compute() {
    let model = builtin();
    let layout = abs_fit::ParamLayout {
        n_shape: model.n_shape() + 1,
        ..Preset::Tiny.dataset().unwrap().layout
    };
    let err = VertexGram::new(model, &layout).unwrap_err();
    assert!(err.to_string().contains("shape"), "{err}");

    let loss = ParamLoss::geometry(Arc::new(model), 0.1);
    assert!(loss.validate().is_ok());
    let json = serde_json::to_string(&loss).unwrap();
    assert_eq!(json, r#"{"geometry":{"weight":0.1}}"#);
    let back: ParamLoss = serde_json::from_str(&json).unwrap();
    let err = back.validate().unwrap_err();
    assert!(err.to_string().contains("no face model"), "{err}");
    for weight in [0.0, -1.0, f64::NAN] {
        assert!(
            ParamLoss::geometry(Arc::new(model), weight)
                .validate()
                .is_err()
        );
    }
    assert_eq!(ParamLoss::default(), ParamLoss::L2);
}

/// The untrained learned renderer has the dataset's image shape, and both renderers are timed
/// in one run: positive, finite seconds per image.
#[test]
fn render_times_of_physics_and_learned_renderers() {
    let config = Preset::Tiny.dataset().unwrap();
    let model = builtin();
    let manifest = config.manifest(model, (0, config.n_samples)).unwrap();
    let learned = LearnedRenderer::untrained(
        facenet::NetworkSize::Tiny,
        &manifest,
        InputKind::Amplitude,
        1,
    )
    .unwrap();
    let physics = PhysicsRenderer::new(model, config.layout, config.imaging.clone()).unwrap();
    assert_eq!(learned.image_shape(), physics.image_shape());
    let (face, _) = config.draw(0);
    let p = config.layout.len();
    let params = Tensor::from_vec(config.layout.to_vector(&face), (1, p), &Device::Cpu).unwrap();
    let times = render_times(&physics, &learned, &params, 2).unwrap();
    for t in [times.physics_s_per_image, times.learned_s_per_image] {
        assert!(t.is_finite() && t > 0.0, "{times:?}");
    }
    assert!(render_times(&physics, &learned, &params, 0).is_err());
}
