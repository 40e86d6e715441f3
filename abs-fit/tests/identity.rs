//! Tests: the 3D identity of issue 17 — the mesh pyramid of the built-in face, the mesh
//! encoder's training, resumption and loading, and the identity losses (the closed-form cos_G
//! against meshes built by the model, the learned one through a trained mesh encoder).

use std::sync::{Arc, OnceLock};

use abs_fit::card::ModelCard;
use abs_fit::dataset::InputKind;
use abs_fit::identity::MeshEncoderCard;
use abs_fit::train::{
    IdLoss, IdLossKind, LearningRate, MeshEncoderConfig, TrainSchedule, mesh_edges, mesh_pyramid,
    train_encoder, train_mesh_encoder,
};
use abs_fit::{DistilConfig, DistilledIdentity, MeshIdentityEncoder};
use abs_fit::{NoProgress, ParamGroup};
use candle_core::{Device, Tensor, Var};
use morphable::MorphableModel;
use morphable::builtin::builtin;

use crate::store::{TempDir, temp_dir};
use crate::training::{dataset, encoder_config};

/// A mesh encoder small enough for tests: two levels of 4 channels, K = 3, a code of 4 whose
/// first 2 entries are the identity, 2 epochs of 16 meshes.
fn tiny_mesh_config() -> MeshEncoderConfig {
    MeshEncoderConfig {
        identity: 2,
        channels: vec![4, 4],
        order: 3,
        meshes_per_epoch: 16,
        validation_meshes: 8,
        schedule: TrainSchedule {
            seed: 5,
            ..TrainSchedule::new(2, 8, LearningRate::constant(1e-3))
        },
        ..MeshEncoderConfig::new(4)
    }
}

/// A distillation small enough for tests: 2 048 rows, 30 epochs of batches of 64, two hidden
/// layers of 64.
fn small_distillation() -> DistilConfig {
    DistilConfig {
        hidden: vec![64, 64],
        samples: 2048,
        held_out: 128,
        epochs: 30,
        batch: 64,
        ..DistilConfig::default()
    }
}

/// One tiny mesh encoder of the built-in model shared by the tests of this file.
fn trained_mesh_encoder() -> &'static TempDir {
    static DIR: OnceLock<TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = temp_dir("mesh-encoder");
        train_mesh_encoder(
            builtin().model(),
            &tiny_mesh_config(),
            &dir,
            &mut NoProgress,
        )
        .unwrap();
        dir
    })
}

/// `n` meshes of the built-in model as a (n, N, 3) f32 tensor (mm).
fn meshes(n: usize) -> Tensor {
    let model = builtin().model();
    let mut flat = Vec::new();
    for i in 0..n {
        let shape: Vec<f64> = (0..5).map(|k| ((i * 7 + k) as f64 * 0.37).sin()).collect();
        let expression = [0.5 * (i as f64).cos()];
        let mesh = model.instance(&shape, &expression).unwrap();
        flat.extend(mesh.to_flat().into_iter().map(|c| c as f32));
    }
    Tensor::from_vec(flat, (n, model.n_vertices(), 3), &Device::Cpu).unwrap()
}

#[test]
fn pyramid_of_the_builtin_face_coarsens_at_most_fourfold_into_connected_clusters() {
    let model = builtin().model();
    let pyramid = mesh_pyramid(model, 3, 2).unwrap();
    let sizes = pyramid.level_sizes();
    assert_eq!(sizes[0], model.n_vertices());
    for pair in sizes.windows(2) {
        let ratio = pair[0] as f64 / pair[1] as f64;
        // Two matchings at most halve twice; a maximal matching of a triangle mesh leaves
        // few nodes alone, so the count at least halves.
        assert!((2.0..=4.0).contains(&ratio), "sizes {sizes:?}");
    }
    // Every cluster of the first coarsening is connected through mesh edges among its members.
    let clusters = &pyramid.clusters[0];
    let mut parent: Vec<usize> = (0..sizes[0]).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for [a, b] in mesh_edges(model.triangles()) {
        let (a, b) = (a as usize, b as usize);
        if clusters[a] == clusters[b] {
            let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
            parent[ra] = rb;
        }
    }
    let mut cluster_root = vec![usize::MAX; sizes[1]];
    for (i, &cluster) in clusters.iter().enumerate() {
        let r = root(&mut parent, i);
        let k = cluster as usize;
        if cluster_root[k] == usize::MAX {
            cluster_root[k] = r;
        }
        assert_eq!(cluster_root[k], r, "cluster {k} is split");
    }
    assert!(mesh_pyramid(model, 30, 2).is_err());
}

#[test]
fn mesh_encoder_trains_resumes_bit_for_bit_and_loads_for_its_model_only() {
    let model = builtin().model();
    let straight = trained_mesh_encoder();
    let card = MeshEncoderCard::read(straight).unwrap();
    let validation = card.validation.expect("a finished run is validated");
    assert!(validation.mean_error_mm.is_finite() && validation.mean_face_error_mm > 0.0);
    assert!(validation.rms_error_mm >= validation.mean_error_mm);
    assert_eq!(card.pyramid[0], model.n_vertices());

    // Interrupted after one epoch, then resumed: the same weights.
    let resumed = temp_dir("mesh-encoder-resumed");
    let config = tiny_mesh_config();
    let first = MeshEncoderConfig {
        schedule: TrainSchedule {
            stop_after_epochs: Some(1),
            ..config.schedule
        },
        ..config.clone()
    };
    train_mesh_encoder(model, &first, &resumed, &mut NoProgress).unwrap();
    let b = train_mesh_encoder(model, &config, &resumed, &mut NoProgress).unwrap();
    let a = MeshIdentityEncoder::load(straight, model, &Device::Cpu).unwrap();
    let x = meshes(3);
    let (ea, eb) = (a.embed(&x).unwrap(), b.embed(&x).unwrap());
    assert_eq!(ea.dims(), &[3, 2]);
    assert_eq!(
        ea.to_vec2::<f32>().unwrap(),
        eb.to_vec2::<f32>().unwrap(),
        "resumed training differs"
    );
    assert_eq!(a.reconstruct(&x).unwrap().dims(), x.dims());

    // Other settings in the same directory, another model, a wrong mesh: refused.
    let other = MeshEncoderConfig { code: 5, ..config };
    assert!(train_mesh_encoder(model, &other, &resumed, &mut NoProgress).is_err());
    let renamed = model.clone().with_name("another-face");
    assert!(MeshIdentityEncoder::load(straight, &renamed, &Device::Cpu).is_err());
    assert!(a.embed(&x.narrow(1, 0, 100).unwrap()).is_err());
}

#[test]
fn best_linear_code_error_vanishes_when_the_code_spans_every_component() {
    // The closed-form bound of the card: zero once the code has as many entries as the model
    // has components, and no larger than the spread of the meshes otherwise.
    let model = builtin().model();
    let k = model.n_shape() + model.n_expression();
    let dir = temp_dir("mesh-encoder-bound");
    let config = MeshEncoderConfig {
        identity: 1,
        schedule: TrainSchedule {
            epochs: 1,
            ..tiny_mesh_config().schedule
        },
        ..MeshEncoderConfig {
            code: k,
            ..tiny_mesh_config()
        }
    };
    let full = train_mesh_encoder(model, &config, &dir, &mut NoProgress).unwrap();
    let v = full.card().validation.unwrap();
    assert!(v.best_linear_rms_mm < 1e-3 * full.card().scale_mm, "{v:?}");
    let short = MeshEncoderCard::read(trained_mesh_encoder()).unwrap();
    let bound = short.validation.unwrap().best_linear_rms_mm;
    // RMS of a vertex's Euclidean displacement = √3 × the per-coordinate RMS.
    assert!(
        bound > 0.0 && bound <= 3f64.sqrt() * short.scale_mm,
        "{bound}"
    );
}

/// The scaled parameter rows of the tiny dataset's first `n` validation faces (f64).
fn truth_rows(n: usize) -> Tensor {
    let data = dataset();
    let rows = data.validation_rows();
    let p = data.manifest().layout.len();
    let params: Vec<f64> = rows[..n]
        .iter()
        .flat_map(|&r| data.arrays().params.row(r).to_vec())
        .map(|v| v as f64)
        .collect();
    Tensor::from_vec(params, (n, p), &Device::Cpu).unwrap()
}

#[test]
fn linear_identity_cosine_equals_the_cosine_of_the_model_meshes() {
    let data = dataset();
    let model = Arc::new(builtin().model().clone());
    let manifest = data.manifest();
    let layout = manifest.layout;
    let loss = IdLoss::new(IdLossKind::Linear, 1.0, model.clone())
        .resolve(manifest, &Device::Cpu)
        .unwrap();
    let truth = truth_rows(3);
    // A prediction with other shape coefficients: a fixed mix of the rows.
    let predicted = Tensor::cat(
        &[
            truth.narrow(0, 1, 2).unwrap(),
            truth.narrow(0, 0, 1).unwrap(),
        ],
        0,
    )
    .unwrap();
    let cos = loss
        .cosines(&predicted, &truth)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let shape = layout.range(ParamGroup::Shape);
    let rows = |t: &Tensor| -> Vec<Vec<f64>> { t.to_vec2::<f64>().unwrap() };
    let mean = model.mean_mesh().unwrap().to_flat();
    let offset = |coefficients: &[f64]| -> Vec<f64> {
        let mesh = model.instance(coefficients, &[]).unwrap().to_flat();
        mesh.iter().zip(&mean).map(|(a, b)| a - b).collect()
    };
    for ((p, t), c) in rows(&predicted).iter().zip(rows(&truth)).zip(&cos) {
        let (a, b) = (offset(&p[shape.clone()]), offset(&t[shape.clone()]));
        let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let expected = dot / (norm(&a) * norm(&b));
        assert!(
            (c - expected).abs() < 1e-4,
            "cos_G {c} vs meshes {expected}"
        );
    }
    // Scale-invariant, sign-sensitive, zero loss on the truth.
    let doubled = (&truth * 2.0).unwrap();
    for c in loss
        .cosines(&doubled, &truth)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
    {
        assert!((c - 1.0).abs() < 1e-5);
    }
    for c in loss
        .cosines(&truth.neg().unwrap(), &truth)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
    {
        assert!((c + 1.0).abs() < 1e-5);
    }
    let zero = loss
        .loss(&truth, &truth)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(zero.abs() < 1e-5, "{zero}");
}

#[test]
fn learned_identity_cosine_equals_the_cosine_of_the_encoded_model_meshes() {
    // The loss embeds coefficient rows through the tabulated finest convolution; here the
    // meshes are built by the model itself and embedded whole.
    let data = dataset();
    let model = Arc::new(builtin().model().clone());
    let layout = data.manifest().layout;
    let dir = trained_mesh_encoder().to_path_buf();
    let loss = IdLoss::new(IdLossKind::Learned { dir: dir.clone() }, 1.0, model.clone())
        .resolve(data.manifest(), &Device::Cpu)
        .unwrap();
    let truth = truth_rows(3);
    let predicted = (truth.narrow(0, 0, 1).unwrap().repeat((3, 1)).unwrap() * 0.6).unwrap();
    let cos = loss
        .cosines(&predicted, &truth)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let encoder = MeshIdentityEncoder::load(&dir, model.as_ref(), &Device::Cpu).unwrap();
    let (shape, expression) = (
        layout.range(ParamGroup::Shape),
        layout.range(ParamGroup::Expression),
    );
    let mesh = |row: &[f64]| -> Vec<f32> {
        model
            .instance(&row[shape.clone()], &row[expression.clone()])
            .unwrap()
            .to_flat()
            .into_iter()
            .map(|v| v as f32)
            .collect()
    };
    let n = model.n_vertices();
    let embed = |t: &Tensor| -> Tensor {
        let flat: Vec<f32> = t
            .to_vec2::<f64>()
            .unwrap()
            .iter()
            .flat_map(|row| mesh(row))
            .collect();
        let meshes = Tensor::from_vec(flat, (3, n, 3), &Device::Cpu).unwrap();
        encoder.embed(&meshes).unwrap()
    };
    let expected = abs_fit::identity::cosine_similarity(&embed(&predicted), &embed(&truth))
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    for (c, e) in cos.iter().zip(&expected) {
        assert!((c - *e as f64).abs() < 1e-4, "tabulated {c} vs whole {e}");
    }
    assert!(
        cos.iter().any(|c| c.abs() < 0.999),
        "a trivial comparison: {cos:?}"
    );
}

#[test]
fn identity_losses_have_the_gradients_of_central_differences() {
    let data = dataset();
    let model = Arc::new(builtin().model().clone());
    let truth = truth_rows(2);
    let predicted0 = (truth.narrow(0, 0, 1).unwrap().repeat((2, 1)).unwrap() * 0.7).unwrap();
    let kinds = [
        IdLossKind::Linear,
        IdLossKind::Learned {
            dir: trained_mesh_encoder().to_path_buf(),
        },
        IdLossKind::Distilled {
            dir: trained_mesh_encoder().to_path_buf(),
            distil: small_distillation(),
            centred: false,
        },
        IdLossKind::Distilled {
            dir: trained_mesh_encoder().to_path_buf(),
            distil: small_distillation(),
            centred: true,
        },
    ];
    for kind in kinds {
        let loss = IdLoss::new(kind.clone(), 0.5, model.clone())
            .resolve(data.manifest(), &Device::Cpu)
            .unwrap();
        let var = Var::from_tensor(&predicted0).unwrap();
        let value = loss.loss(var.as_tensor(), &truth).unwrap();
        let grads = value.backward().unwrap();
        let g = grads
            .get(var.as_tensor())
            .expect("a gradient")
            .to_vec2::<f64>()
            .unwrap();
        let base = predicted0.to_vec2::<f64>().unwrap();
        // The learned term runs its network in f32: a coarser step and tolerance.
        let (h, tol) = match kind {
            IdLossKind::Linear => (1e-6, 1e-6),
            IdLossKind::Learned { .. } | IdLossKind::Distilled { .. } => (1e-2, 2e-3),
        };
        for (row, col) in [(0, 0), (1, 2), (0, 11)] {
            let at = |d: f64| -> f64 {
                let mut v = base.clone();
                v[row][col] += d;
                let t = Tensor::new(v, &Device::Cpu).unwrap();
                loss.loss(&t, &truth).unwrap().to_scalar::<f64>().unwrap()
            };
            let numeric = (at(h) - at(-h)) / (2.0 * h);
            assert!(
                (g[row][col] - numeric).abs() < tol * (1.0 + numeric.abs()),
                "{kind:?} ({row}, {col}): {} vs {numeric}",
                g[row][col]
            );
        }
    }
}

#[test]
fn encoder_trains_with_an_identity_loss_and_resumes_only_with_it() {
    let data = dataset();
    let model = Arc::new(builtin().model().clone());
    let dir = temp_dir("id-loss-encoder");
    let config = abs_fit::train::EncoderTrainConfig {
        id_loss: Some(IdLoss::new(IdLossKind::Linear, 0.5, model.clone())),
        ..encoder_config(1)
    };
    train_encoder(&data, InputKind::Depth, &config, &dir, &mut NoProgress).unwrap();
    let card = ModelCard::read(&dir).unwrap();
    assert_eq!(card.objective["id_loss"]["kind"], "linear");
    let heavier = abs_fit::train::EncoderTrainConfig {
        id_loss: Some(IdLoss::new(IdLossKind::Linear, 2.0, model.clone())),
        ..encoder_config(2)
    };
    assert!(train_encoder(&data, InputKind::Depth, &heavier, &dir, &mut NoProgress).is_err());
    let without = encoder_config(2);
    assert!(train_encoder(&data, InputKind::Depth, &without, &dir, &mut NoProgress).is_err());
    // An identity loss over another face model is refused before anything is written.
    let renamed = Arc::new(builtin().model().clone().with_name("another-face"));
    let wrong = abs_fit::train::EncoderTrainConfig {
        id_loss: Some(IdLoss::new(IdLossKind::Linear, 0.5, renamed)),
        ..encoder_config(1)
    };
    let fresh = temp_dir("id-loss-wrong-model");
    assert!(train_encoder(&data, InputKind::Depth, &wrong, &fresh, &mut NoProgress).is_err());
    assert!(!fresh.join(abs_fit::card::MODEL_FILE).exists());
}

#[test]
fn distilled_identity_follows_its_mesh_encoder_and_is_deterministic() {
    let data = dataset();
    let model = builtin().model();
    let layout = data.manifest().layout;
    let basis = abs_fit::identity::coefficient_basis(model, &layout, &Device::Cpu).unwrap();
    let exact = MeshIdentityEncoder::load(trained_mesh_encoder(), model, &Device::Cpu)
        .unwrap()
        .for_coefficients(&basis)
        .unwrap();
    let config = small_distillation();
    let distilled = DistilledIdentity::distil(&exact, &config).unwrap();
    let f = *distilled.fidelity();
    // A network that said nothing (the mean identity) would leave all of the variance; the
    // distilled one must explain most of it, and its losses and gradients must follow.
    assert!(f.unexplained_variance < 0.1, "{f:?}");
    assert!(f.loss_correlation > 0.9 && f.gradient_cosine > 0.8, "{f:?}");
    assert!(f.loss_abs_error < 0.25 * f.exact_loss.max(1e-3), "{f:?}");
    // On fresh rows it agrees with the exact identity as closely as on the held-out ones.
    let p = layout.n_shape + layout.n_expression;
    let rows = Tensor::rand(-1f32, 1.0, (64, p), &Device::Cpu).unwrap();
    let (a, b) = (exact.embed(&rows).unwrap(), distilled.embed(&rows).unwrap());
    let centred = a.broadcast_sub(&a.mean_keepdim(0).unwrap()).unwrap();
    let ratio = ((&b - &a).unwrap().sqr().unwrap().sum_all().unwrap())
        .div(&centred.sqr().unwrap().sum_all().unwrap())
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(ratio < 0.2, "unexplained on fresh rows: {ratio}");
    // The same settings give the same network.
    let again = DistilledIdentity::distil(&exact, &config).unwrap();
    assert_eq!(
        again.embed(&rows).unwrap().to_vec2::<f32>().unwrap(),
        b.to_vec2::<f32>().unwrap()
    );
    assert_eq!(again.fidelity(), distilled.fidelity());
    // Bad settings are refused.
    let bad = DistilConfig {
        held_out: 1,
        ..small_distillation()
    };
    assert!(DistilledIdentity::distil(&exact, &bad).is_err());
    assert!(
        distilled
            .embed(&Tensor::zeros((2, p + 1), candle_core::DType::F32, &Device::Cpu).unwrap())
            .is_err()
    );
}

#[test]
fn encoder_trains_with_a_distilled_identity_loss_and_records_its_fidelity() {
    let data = dataset();
    let model = Arc::new(builtin().model().clone());
    let dir = temp_dir("distilled-id-loss-encoder");
    let kind: IdLossKind = format!("distilled-centred:{}", trained_mesh_encoder().display())
        .parse()
        .unwrap();
    let kind = match kind {
        IdLossKind::Distilled { dir, centred, .. } => IdLossKind::Distilled {
            dir,
            distil: small_distillation(),
            centred,
        },
        other => panic!("parsed as {other:?}"),
    };
    let config = abs_fit::train::EncoderTrainConfig {
        id_loss: Some(IdLoss::new(kind, 0.5, model)),
        ..encoder_config(1)
    };
    train_encoder(&data, InputKind::Depth, &config, &dir, &mut NoProgress).unwrap();
    let card = ModelCard::read(&dir).unwrap();
    assert_eq!(card.objective["id_loss"]["kind"], "distilled");
    assert_eq!(card.objective["id_loss"]["distil"]["samples"], 2048);
    assert_eq!(card.objective["id_loss"]["centred"], true);
    let text = std::fs::read_to_string(dir.join(abs_fit::train::DISTILLATION_FILE)).unwrap();
    let fidelity: abs_fit::DistilFidelity = serde_json::from_str(&text).unwrap();
    assert_eq!(fidelity.pairs, 128);
    assert!("distilled:".parse::<IdLossKind>().is_err());
}
