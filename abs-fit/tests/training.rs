//! Tests: the three training stages (encoder, learned renderer, autoencoder) on a tiny dataset
//! with facenet's tiny networks, their resumption, and fitting through the learned renderer.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use abs_fit::card::{ModelCard, checkpoint_dir};
use abs_fit::dataset::{Dataset, DatasetConfig, InputKind, RangePolicy};
use abs_fit::evaluate::{Cell, MEAN_BASELINE, RANDOM_BASELINE, Validation};
use abs_fit::fit::{FitSettings, FitTarget};
use abs_fit::generation::{GenerateOptions, generate};
use abs_fit::train::{
    AutoencoderTrainConfig, DecoderTrainConfig, EncoderTrainConfig, LearningRate, ParamLoss,
    TrainSchedule,
};
use abs_fit::{DifferentiablePhysicsRenderer, FrozenDecoder, PhysicsSeeds};
use abs_fit::{
    FitConfig, LearnedRenderer, NoProgress, ParamGroup, Preset, Progress, Renderer, TrainedEncoder,
    fit, train_autoencoder, train_decoder, train_encoder,
};
use candle_core::{Device, Tensor};
use facenet::{BranchedEncoderConfig, Checkpoint, Network, NetworkConfig};
use morphable::builtin::builtin;

use crate::store::{TempDir, temp_dir};

/// One tiny dataset (24 faces, 16 × 16 pixels) shared by every test of this file.
pub(crate) fn dataset() -> Dataset {
    static DIR: OnceLock<TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = temp_dir("training-dataset");
        let config = DatasetConfig {
            n_samples: 24,
            ..Preset::Tiny.dataset().unwrap()
        };
        generate(
            builtin(),
            &config,
            &dir,
            &GenerateOptions::default(),
            &mut NoProgress,
        )
        .unwrap();
        dir
    });
    Dataset::open(dir).unwrap()
}

/// A short schedule of the tiny networks.
fn schedule(epochs: usize, learning_rate: LearningRate) -> TrainSchedule {
    TrainSchedule {
        seed: 3,
        ..TrainSchedule::new(epochs, 8, learning_rate)
    }
}

pub(crate) fn encoder_config(epochs: usize) -> EncoderTrainConfig {
    EncoderTrainConfig {
        schedule: schedule(
            epochs,
            LearningRate {
                start: 0.01,
                end: 0.002,
                ramp_fraction: 0.75,
            },
        ),
        ..EncoderTrainConfig::paper(facenet::NetworkSize::Tiny)
    }
}

fn decoder_config(epochs: usize) -> DecoderTrainConfig {
    DecoderTrainConfig {
        schedule: schedule(epochs, LearningRate::constant(0.005)),
        ..DecoderTrainConfig::paper(facenet::NetworkSize::Tiny)
    }
}

/// Every weight and running statistic, as bit patterns.
pub(crate) fn weights<C: NetworkConfig>(network: &Network<C>) -> BTreeMap<String, Vec<u32>> {
    network
        .params()
        .snapshot()
        .unwrap()
        .into_iter()
        .map(|(name, t)| {
            let values = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (name, values.into_iter().map(f32::to_bits).collect())
        })
        .collect()
}

/// Mean training loss of every epoch, from the stage's checkpoint.
pub(crate) fn epoch_losses<C: NetworkConfig>(dir: &Path) -> Vec<f64> {
    Checkpoint::load::<C>(&checkpoint_dir(dir), &Device::Cpu)
        .unwrap()
        .state
        .unwrap()
        .epoch_losses
}

/// Records what a stage reports.
#[derive(Default)]
struct Recorder {
    starts: Vec<(u64, u64)>,
    advanced: u64,
    messages: usize,
    finished: usize,
}

impl Progress for Recorder {
    fn start(&mut self, _task: &str, total: u64, done: u64) {
        self.starts.push((total, done));
    }
    fn advance(&mut self, n: u64) {
        self.advanced += n;
    }
    fn message(&mut self, _text: &str) {
        self.messages += 1;
    }
    fn finish(&mut self) {
        self.finished += 1;
    }
}

#[test]
fn encoder_lowers_its_loss_and_an_interrupted_run_ends_bit_identical() {
    let ds = dataset();
    let n_train = ds.train_rows().len();
    let steps_per_epoch = n_train.div_ceil(8) as u64;
    let epochs = 4;

    let whole = temp_dir("train-encoder-whole");
    let mut progress = Recorder::default();
    let encoder = train_encoder(
        &ds,
        InputKind::Amplitude,
        &encoder_config(epochs),
        &whole,
        &mut progress,
    )
    .unwrap();
    let losses = epoch_losses::<BranchedEncoderConfig>(&whole);
    assert_eq!(losses.len(), epochs);
    assert!(losses[epochs - 1] < losses[0], "losses {losses:?}");
    assert_eq!(progress.starts, vec![(epochs as u64 * steps_per_epoch, 0)]);
    assert_eq!(progress.advanced, epochs as u64 * steps_per_epoch);
    assert_eq!((progress.messages, progress.finished), (epochs, 1));

    // Interrupted after 2 epochs, then continued: the same weights, bit for bit.
    let parts = temp_dir("train-encoder-parts");
    let mut progress = Recorder::default();
    let first = EncoderTrainConfig {
        schedule: TrainSchedule {
            stop_after_epochs: Some(2),
            ..encoder_config(epochs).schedule
        },
        ..encoder_config(epochs)
    };
    train_encoder(&ds, InputKind::Amplitude, &first, &parts, &mut progress).unwrap();
    assert_eq!(epoch_losses::<BranchedEncoderConfig>(&parts).len(), 2);
    let resumed = train_encoder(
        &ds,
        InputKind::Amplitude,
        &encoder_config(epochs),
        &parts,
        &mut progress,
    )
    .unwrap();
    assert_eq!(weights(resumed.network()), weights(encoder.network()));
    assert_eq!(epoch_losses::<BranchedEncoderConfig>(&parts), losses);
    assert_eq!(
        progress.starts[1],
        (epochs as u64 * steps_per_epoch, 2 * steps_per_epoch)
    );
    assert_eq!(progress.advanced, epochs as u64 * steps_per_epoch);

    // The saved encoder predicts as the trained one; a changed schedule is refused.
    let loaded = TrainedEncoder::load(&whole, &Device::Cpu).unwrap();
    let (c, h, w) = (1, ds.manifest().image.height, ds.manifest().image.width);
    let mut image = vec![0.0; c * h * w];
    ds.write_input(0, InputKind::Amplitude, 20.0, &mut image)
        .unwrap();
    let images = Tensor::from_vec(image, (1, c, h, w), &Device::Cpu).unwrap();
    let a = encoder.predict(&images).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(
        a,
        loaded.predict(&images).unwrap().to_vec2::<f32>().unwrap()
    );
    assert_eq!(a[0].len(), ds.manifest().layout.len());
    let longer = encoder_config(epochs + 2);
    let err =
        train_encoder(&ds, InputKind::Amplitude, &longer, &whole, &mut NoProgress).unwrap_err();
    assert!(
        err.to_string().contains("only the epoch count may change"),
        "{err}"
    );
    // Images of the wrong size are refused with a typed error.
    let wrong = Tensor::zeros((1, 1, h + 1, w), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(encoder.predict(&wrong).is_err());
}

/// The geometry-aware parameter loss (vertex term on α, γ; L2 on pose and rendering columns)
/// trains an encoder: its loss falls; the card records the choice, and resuming the directory
/// with the paper's L2 is refused.
#[test]
fn encoder_lowers_the_geometry_aware_loss() {
    let ds = dataset();
    let epochs = 4;
    let dir = temp_dir("train-encoder-geometry");
    let config = EncoderTrainConfig {
        param_loss: ParamLoss::geometry(Arc::new(builtin()), 0.1),
        ..encoder_config(epochs)
    };
    train_encoder(&ds, InputKind::Amplitude, &config, &dir, &mut NoProgress).unwrap();
    let losses = epoch_losses::<BranchedEncoderConfig>(&dir);
    assert_eq!(losses.len(), epochs);
    assert!(losses[epochs - 1] < losses[0], "losses {losses:?}");
    let card = ModelCard::read(&dir).unwrap();
    assert_eq!(
        card.objective["param_loss"],
        serde_json::json!({ "geometry": { "weight": 0.1 } })
    );
    let err = train_encoder(
        &ds,
        InputKind::Amplitude,
        &encoder_config(epochs),
        &dir,
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("another loss"), "{err}");
}

#[cfg(not(feature = "cuda"))]
#[test]
fn a_gpu_schedule_without_cuda_is_a_typed_error_that_writes_nothing() {
    let ds = dataset();
    let dir = temp_dir("train-encoder-cuda");
    let mut config = encoder_config(1);
    config.schedule.device = facenet::ComputeDevice::Cuda(0);
    let err = train_encoder(&ds, InputKind::Depth, &config, &dir, &mut NoProgress).unwrap_err();
    assert!(
        matches!(err, abs_fit::AbsFitError::Network(_)) && err.to_string().contains("cuda:0"),
        "{err}"
    );
    assert!(!dir.exists() || std::fs::read_dir(&dir).unwrap().next().is_none());
}

#[test]
fn decoder_lowers_its_loss_and_an_extended_run_ends_bit_identical() {
    let ds = dataset();
    let whole = temp_dir("train-decoder-whole");
    let renderer = train_decoder(
        &ds,
        InputKind::Depth,
        &decoder_config(6),
        &whole,
        &mut NoProgress,
    )
    .unwrap();
    let losses = epoch_losses::<facenet::DecoderConfig>(&whole);
    assert!(losses[5] < losses[0], "losses {losses:?}");
    assert!(renderer.is_differentiable());
    let (h, w) = (ds.manifest().image.height, ds.manifest().image.width);
    assert_eq!(renderer.image_shape(), (1, h, w));

    // A constant learning rate does not depend on the epoch count: 3 epochs, then extended to 6.
    let parts = temp_dir("train-decoder-parts");
    train_decoder(
        &ds,
        InputKind::Depth,
        &decoder_config(3),
        &parts,
        &mut NoProgress,
    )
    .unwrap();
    let extended = train_decoder(
        &ds,
        InputKind::Depth,
        &decoder_config(6),
        &parts,
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(weights(extended.network()), weights(renderer.network()));

    // Loading gives the same renderer; so does saving it elsewhere and loading that.
    let p = ds.manifest().layout.len();
    let params = Tensor::from_vec(ds.params_with_range(0, 15.0), (1, p), &Device::Cpu).unwrap();
    let copy = temp_dir("train-decoder-copy");
    renderer.save(&copy).unwrap();
    for dir in [&whole, &copy] {
        let loaded = LearnedRenderer::load(dir, &Device::Cpu).unwrap();
        let a = renderer.render(&params).unwrap().flatten_all().unwrap();
        let b = loaded.render(&params).unwrap().flatten_all().unwrap();
        assert_eq!(a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
    }
    // An encoder directory is not a renderer.
    assert!(LearnedRenderer::load(&temp_dir("train-decoder-empty"), &Device::Cpu).is_err());
}

#[test]
fn autoencoder_and_fitting_leave_the_frozen_decoder_unchanged() {
    let ds = dataset();
    let p = ds.manifest().layout.len();
    let root = temp_dir("train-autoencoder");
    let encoder = train_encoder(
        &ds,
        InputKind::Amplitude,
        &encoder_config(2),
        &root.join("encoder"),
        &mut NoProgress,
    )
    .unwrap();
    let decoder = train_decoder(
        &ds,
        InputKind::Amplitude,
        &decoder_config(3),
        &root.join("decoder"),
        &mut NoProgress,
    )
    .unwrap();
    let before = weights(decoder.network());

    let config = AutoencoderTrainConfig {
        schedule: schedule(3, LearningRate::constant(0.002)),
        ..AutoencoderTrainConfig::paper()
    };
    let ae_dir = root.join("autoencoder");
    let trained =
        train_autoencoder(&ds, encoder, &decoder, &config, &ae_dir, &mut NoProgress).unwrap();
    let losses = epoch_losses::<BranchedEncoderConfig>(&ae_dir);
    assert!(losses[2] < losses[0], "losses {losses:?}");
    assert_eq!(weights(decoder.network()), before);
    let reloaded = LearnedRenderer::load(&root.join("decoder"), &Device::Cpu).unwrap();
    assert_eq!(weights(reloaded.network()), before);
    assert_eq!(trained.card().stage, "autoencoder");

    // Interrupted after one epoch and resumed (from a fresh copy of the supervised encoder,
    // which the checkpoint supersedes): the same weights, and the decoder still untouched.
    let parts = root.join("autoencoder-parts");
    let load_encoder = || TrainedEncoder::load(&root.join("encoder"), &Device::Cpu).unwrap();
    let first = AutoencoderTrainConfig {
        schedule: TrainSchedule {
            stop_after_epochs: Some(1),
            ..config.schedule
        },
        ..config.clone()
    };
    train_autoencoder(
        &ds,
        load_encoder(),
        &decoder,
        &first,
        &parts,
        &mut NoProgress,
    )
    .unwrap();
    let resumed = train_autoencoder(
        &ds,
        load_encoder(),
        &decoder,
        &config,
        &parts,
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(weights(resumed.network()), weights(trained.network()));
    assert_eq!(weights(decoder.network()), before);
    // Another λ is another run: refused in the same directory.
    let other = AutoencoderTrainConfig {
        lambda: 0.5,
        ..config.clone()
    };
    let err = train_autoencoder(
        &ds,
        load_encoder(),
        &decoder,
        &other,
        &parts,
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("another loss"), "{err}");

    // A depth renderer does not fit an amplitude encoder.
    let depth = train_decoder(
        &ds,
        InputKind::Depth,
        &decoder_config(1),
        &root.join("depth"),
        &mut NoProgress,
    )
    .unwrap();
    let again = TrainedEncoder::load(&root.join("encoder"), &Device::Cpu).unwrap();
    let err = train_autoencoder(
        &ds,
        again,
        &depth,
        &config,
        &root.join("x"),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("renders depth images"), "{err}");

    // Fitting amplitude images at 15 dB through the learned renderer, from the mean face in the
    // true pose, lowers the image loss and leaves the decoder as it was.
    let rows = [0, 1];
    let (h, w) = (ds.manifest().image.height, ds.manifest().image.width);
    let mut target = vec![0.0; rows.len() * h * w];
    for (&row, out) in rows.iter().zip(target.chunks_mut(h * w)) {
        ds.write_input(row, InputKind::Amplitude, 15.0, out)
            .unwrap();
    }
    let target = Tensor::from_vec(target, (rows.len(), 1, h, w), &Device::Cpu).unwrap();
    let layout = ds.manifest().layout;
    let init: Vec<f32> = rows
        .iter()
        .flat_map(|&row| {
            let mut v = ds.params_with_range(row, 15.0);
            v[layout.range(ParamGroup::Shape)].fill(0.0);
            v[layout.range(ParamGroup::Expression)].fill(0.0);
            v
        })
        .collect();
    let init = Tensor::from_vec(init, (rows.len(), p), &Device::Cpu).unwrap();
    let fit_config = FitConfig {
        steps: 20,
        learning_rate: 0.05,
        tolerance: 0.0,
        ..FitConfig::new(ds.manifest().layout)
    };
    let result = fit(&decoder, &target, &init, &fit_config, &mut NoProgress).unwrap();
    assert!(
        result.losses[result.losses.len() - 1] < result.losses[0],
        "losses {:?}",
        result.losses
    );
    assert_eq!(weights(decoder.network()), before);
}

/// The physics as the autoencoder's frozen decoder. With the faces' own seeds it renders the
/// true parameters as the dataset imaged them, closer than another realisation does; its image
/// term alone (λ = 0) lowers the loss of a fixed set of faces; and a run with it resumes only
/// with it, on the faces it started with, with a decoder of the encoder's image kind.
#[test]
fn a_physics_decoder_trains_the_encoder_through_the_simulation() {
    let ds = dataset();
    let kind = InputKind::AmplitudeDepth;
    let (h, w) = (ds.manifest().image.height, ds.manifest().image.width);
    let chw = kind.channels() * h * w;
    let rows = [0, 1, 2];
    let truth: Vec<f32> = (rows.iter())
        .flat_map(|&row| ds.params_with_range(row, 15.0))
        .collect();
    let truth = Tensor::from_vec(
        truth,
        (rows.len(), ds.manifest().layout.len()),
        &Device::Cpu,
    )
    .unwrap();
    let mut target = vec![0.0; rows.len() * chw];
    for (&row, out) in rows.iter().zip(target.chunks_mut(chw)) {
        ds.write_input(row, kind, 15.0, out).unwrap();
    }
    let config = ds.config().unwrap();
    let seeded = |flip: u64| -> Vec<f32> {
        let renderer = DifferentiablePhysicsRenderer::for_dataset(builtin(), &ds, kind).unwrap();
        let seeds = rows.iter().map(|&row| config.draw(row).1 ^ flip).collect();
        let images = renderer.render_seeded(&truth, seeds).unwrap();
        images.flatten_all().unwrap().to_vec1().unwrap()
    };
    let mse = |images: &[f32], face: usize| -> f32 {
        let range = face * chw..(face + 1) * chw;
        (images[range.clone()].iter().zip(&target[range]))
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f32>()
            / chw as f32
    };
    let (own, other) = (seeded(0), seeded(0x5555));
    for face in 0..rows.len() {
        eprintln!(
            "face {face}: own {} other {}",
            mse(&own, face),
            mse(&other, face)
        );
        assert!(mse(&own, face) < mse(&other, face), "face {face}");
    }

    let root = temp_dir("train-physics-autoencoder");
    let encoder_dir = root.join("encoder");
    train_encoder(&ds, kind, &encoder_config(1), &encoder_dir, &mut NoProgress).unwrap();
    let load_encoder = || TrainedEncoder::load(&encoder_dir, &Device::Cpu).unwrap();
    let physics = |seeds| FrozenDecoder::physics(builtin(), &ds, kind, seeds).unwrap();
    // One batch of the same eight faces per epoch, at one dynamic range: the epoch losses are
    // one function of the weights.
    let config = AutoencoderTrainConfig {
        schedule: schedule(4, LearningRate::constant(1e-4)),
        lambda: 0.0,
        range: RangePolicy::Fixed(15.0),
        train_faces: Some(8),
        ..AutoencoderTrainConfig::paper()
    };
    let dir = root.join("autoencoder");
    let trained = train_autoencoder(
        &ds,
        load_encoder(),
        physics(PhysicsSeeds::Target),
        &config,
        &dir,
        &mut NoProgress,
    )
    .unwrap();
    let losses = epoch_losses::<BranchedEncoderConfig>(&dir);
    assert!(losses[3] < losses[0], "losses {losses:?}");
    assert_eq!(trained.card().stage, "autoencoder");

    // Another decoder, another set of faces or another realisation is another run.
    let decoder = train_decoder(
        &ds,
        kind,
        &decoder_config(1),
        &root.join("decoder"),
        &mut NoProgress,
    )
    .unwrap();
    let more_faces = AutoencoderTrainConfig {
        train_faces: Some(16),
        ..config.clone()
    };
    for (decoder, config) in [
        (FrozenDecoder::from(&decoder), &config),
        (physics(PhysicsSeeds::Other), &config),
        (physics(PhysicsSeeds::Target), &more_faces),
    ] {
        let err = train_autoencoder(&ds, load_encoder(), decoder, config, &dir, &mut NoProgress)
            .unwrap_err();
        assert!(err.to_string().contains("another loss"), "{err}");
    }
    let err = train_autoencoder(
        &ds,
        load_encoder(),
        FrozenDecoder::physics(builtin(), &ds, InputKind::Depth, PhysicsSeeds::Target).unwrap(),
        &config,
        &root.join("depth"),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("renders depth images"), "{err}");
    for n in [0, ds.train_rows().len() + 1] {
        let faces = AutoencoderTrainConfig {
            train_faces: Some(n),
            ..config.clone()
        };
        let err = train_autoencoder(
            &ds,
            load_encoder(),
            physics(PhysicsSeeds::Target),
            &faces,
            &root.join("none"),
            &mut NoProgress,
        )
        .unwrap_err();
        assert!(err.to_string().contains("training faces"), "{n}: {err}");
    }
}

/// The precision of an encoder's residuals inverts their covariance (plus the ridge) on the
/// chosen columns and is 0 elsewhere; too few faces or a bad ridge are refused.
#[test]
fn residual_precision_inverts_the_residual_covariance() {
    let ds = dataset();
    let root = temp_dir("residual-precision");
    let encoder = train_encoder(
        &ds,
        InputKind::Amplitude,
        &encoder_config(1),
        &root.join("encoder"),
        &mut NoProgress,
    )
    .unwrap();
    let model = builtin();
    let rows: Vec<usize> = (0..ds.manifest().n_samples).collect();
    let validation = Validation::with_rows(&ds, model, rows.clone()).unwrap();
    let layout = ds.manifest().layout;
    let groups = [ParamGroup::Shape, ParamGroup::Expression];
    let ridge = 0.1;
    let precision = validation
        .residual_precision(&encoder, &groups, ridge, 8)
        .unwrap();
    let p = layout.len();
    let columns: Vec<usize> = groups.iter().flat_map(|&g| layout.range(g)).collect();
    let residuals = validation.predict(&encoder, 8).unwrap() - validation.truth();
    let n = rows.len() as f64;
    let mut covariance = vec![0.0; p * p];
    for &i in &columns {
        for &j in &columns {
            covariance[i * p + j] = (residuals.column(i).iter().zip(residuals.column(j)))
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum::<f64>()
                / n;
        }
    }
    let mean_diagonal =
        columns.iter().map(|&i| covariance[i * p + i]).sum::<f64>() / columns.len() as f64;
    for &i in &columns {
        covariance[i * p + i] += ridge * mean_diagonal;
    }
    for i in 0..p {
        for j in 0..p {
            let product: f64 = (0..p)
                .map(|k| precision[i * p + k] * covariance[k * p + j])
                .sum();
            let identity = if i == j && columns.contains(&i) {
                1.0
            } else {
                0.0
            };
            assert!((product - identity).abs() < 1e-6, "({i}, {j}): {product}");
        }
    }
    let few = Validation::with_rows(&ds, model, rows[..columns.len()].to_vec()).unwrap();
    let err = few
        .residual_precision(&encoder, &groups, ridge, 8)
        .unwrap_err();
    assert!(err.to_string().contains("cannot estimate"), "{err}");
    let err = validation
        .residual_precision(&encoder, &groups, 0.0, 8)
        .unwrap_err();
    assert!(err.to_string().contains("ridge"), "{err}");
}

/// Every kind of Table 1 row through the library alone, on the tiny preset: the baselines, a
/// trained encoder, and the encoder refined by fitting through a learned renderer and through
/// the depth raster.
#[test]
fn table1_rows_end_to_end_on_the_tiny_preset() {
    let ds = dataset();
    let model = builtin();
    let root = temp_dir("table1");
    let kind = InputKind::Depth;
    let encoder = train_encoder(
        &ds,
        kind,
        &encoder_config(1),
        &root.join("encoder"),
        &mut NoProgress,
    )
    .unwrap();
    let decoder = train_decoder(
        &ds,
        kind,
        &decoder_config(1),
        &root.join("decoder"),
        &mut NoProgress,
    )
    .unwrap();

    let validation = Validation::new(&ds, model).unwrap();
    assert_eq!(validation.rows(), ds.validation_rows().as_slice());
    let baselines = validation.baselines().unwrap();
    let names: Vec<&str> = baselines.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(names, [MEAN_BASELINE, RANDOM_BASELINE]);

    // Predictions do not depend on how the faces are batched (evaluation mode).
    let one_by_one = validation.predict(&encoder, 1).unwrap();
    let together = validation.predict(&encoder, 64).unwrap();
    let largest = (&one_by_one - &together)
        .iter()
        .fold(0.0f32, |m, d| m.max(d.abs()));
    assert!(largest < 1e-5, "batching changed a prediction by {largest}");
    let errors = validation.encoder_row(&encoder, 64).unwrap();
    assert_eq!(errors.method, "Encoder (Depth)");
    assert_eq!(
        errors,
        validation.score("Encoder (Depth)", &together).unwrap()
    );
    assert_eq!(errors.n_faces(), validation.rows().len());
    let row = errors.row();
    assert!(row.point_distance_mm > 0.0 && row.l2_total.is_finite());

    // A fit moves only the face and pose: its row keeps the prediction's rendering columns.
    let settings = FitSettings::new(5);
    for target in [
        FitTarget::learned(decoder),
        FitTarget::depth_raster(model, &ds).unwrap(),
    ] {
        let outcome = validation
            .fit_row("fitted", &encoder, &target, &settings, 64, &mut NoProgress)
            .unwrap();
        assert_eq!(outcome.faces.rows, validation.rows());
        assert_eq!(outcome.faces.losses.len(), outcome.faces.steps + 1);
        assert_eq!(
            outcome.errors.values(Cell::Render),
            errors.values(Cell::Render)
        );
        assert!(outcome.errors.row().point_distance_mm.is_finite());
        assert_eq!(outcome.time().faces, validation.rows().len());
    }

    // The dataset's own model only, and at least one face.
    let other = morphable::Truncated::new(model, 3, 2);
    let err = Validation::new(&ds, &other)
        .err()
        .expect("another model is refused");
    assert!(err.to_string().contains("generated with model"), "{err}");
    assert!(Validation::with_rows(&ds, model, Vec::new()).is_err());
}

/// Every file of a stage directory, relative path → bytes.
fn dir_bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Two runs of a stage with the same seed write the same bytes in every file (model card,
/// config, weights, optimiser state, training state).
#[test]
fn identical_runs_write_identical_bytes() {
    let ds = dataset();
    let root = temp_dir("train-bytes");
    let runs: Vec<BTreeMap<String, Vec<u8>>> = ["first", "second"]
        .iter()
        .map(|name| {
            let dir = root.join(name);
            train_decoder(
                &ds,
                InputKind::Depth,
                &decoder_config(1),
                &dir,
                &mut NoProgress,
            )
            .unwrap();
            dir_bytes(&dir)
        })
        .collect();
    assert!(runs[0].len() >= 5, "files: {:?}", runs[0].keys());
    assert_eq!(
        runs[0].keys().collect::<Vec<_>>(),
        runs[1].keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &runs[0] {
        assert!(
            &runs[1][name] == bytes,
            "{name} differs between identical runs"
        );
    }
}

/// A paired physics fit of dataset faces compares the images of the start by the renderer
/// given (here with base seed 2⁴⁰) and by its other realisation (2·2⁴⁰) with the dataset's
/// targets as (r₁ − t)·(r₂ − t): its first loss is that mean, computed here from renderers
/// seeded explicitly and the dataset's own images; the two realisations differ.
#[test]
fn a_paired_physics_fit_compares_two_realisations_with_the_targets() {
    use abs_fit::dataset::EVALUATION_RANGE_DB;
    use abs_fit::fit::{fit_faces, with_dynamic_range};
    let ds = dataset();
    let model = builtin().model();
    let rows = vec![ds.validation_rows()[0]];
    let layout = ds.manifest().layout;
    let predicted = ndarray::Array2::<f32>::zeros((1, layout.len()));
    let physics =
        DifferentiablePhysicsRenderer::for_dataset(model, &ds, InputKind::AmplitudeDepth).unwrap();
    let target = FitTarget::paired_physics(physics.other_realisation()).unwrap();
    assert!(target.paired_realisations);
    let settings = FitSettings {
        prior: 0.0,
        ..FitSettings::physics(1)
    };
    let faces = fit_faces(&target, &ds, &rows, &predicted, &settings, &mut NoProgress).unwrap();

    let init = with_dynamic_range(&predicted, &layout, EVALUATION_RANGE_DB);
    let start = Tensor::from_vec(
        init.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
        (1, layout.len()),
        &Device::Cpu,
    )
    .unwrap();
    let offset =
        DifferentiablePhysicsRenderer::<&morphable::builtin::BuiltinModel>::OTHER_REALISATION;
    let images = |seed: u64| -> Vec<f64> {
        let rendered =
            (DifferentiablePhysicsRenderer::for_dataset(model, &ds, InputKind::AmplitudeDepth))
                .unwrap()
                .with_seed(seed)
                .render(&start)
                .unwrap();
        rendered.flatten_all().unwrap().to_vec1().unwrap()
    };
    let (first, second) = (images(offset), images(2 * offset));
    assert!(
        first.iter().zip(&second).any(|(a, b)| (a - b).abs() > 1e-3),
        "the two realisations differ"
    );
    let targets: Vec<f64> =
        (ds.input_images(&rows, InputKind::AmplitudeDepth, EVALUATION_RANGE_DB))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect();
    let expected = (first.iter().zip(&second).zip(&targets))
        .map(|((a, b), t)| (a - t) * (b - t))
        .sum::<f64>()
        / targets.len() as f64;
    let loss = f64::from(faces.losses[0]);
    assert!(
        (loss - expected).abs() <= 1e-5 * expected.abs().max(1e-6),
        "first loss {loss} vs {expected}"
    );
}
