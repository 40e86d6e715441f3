//! Tests: the iterative encoder (feedback channels of its own estimate beside the radar image)
//! on the tiny dataset of the training tests.

use abs_fit::card::ModelCard;
use abs_fit::dataset::InputKind;
use abs_fit::evaluate::{IterativeStart, Validation};
use abs_fit::train::{EncoderTrainConfig, IterativeTrainConfig, TrainSchedule};
use abs_fit::{
    FeedbackSet, Iterate, IterativeEncoder, LearnedRenderer, NoProgress, TrainedEncoder,
    train_encoder, train_iterative, train_iterative_from,
};
use candle_core::{DType, Device, Tensor};
use morphable::builtin::builtin;

use crate::store::temp_dir;
use crate::training::{dataset, encoder_config, weights};

/// The depth images (B, 1, H, W) at 20 dB and true rows (B, P) of the first `n` validation
/// faces.
fn validation_rows(n: usize) -> (Tensor, Tensor) {
    let ds = dataset();
    let rows: Vec<usize> = ds.validation_rows().into_iter().take(n).collect();
    let images = ds.input_images(&rows, InputKind::Depth, 20.0).unwrap();
    let params = ds.params_at_range(&rows, 20.0).unwrap();
    let (b, p) = params.dim();
    let params =
        Tensor::from_vec(params.into_raw_vec_and_offset().0, (b, p), &Device::Cpu).unwrap();
    (images, params)
}

/// With no feedback channel the iterative stage trains, bit for bit, the one-pass encoder of
/// the same settings, and its first iteration is that encoder's prediction.
#[test]
fn without_feedback_the_iterative_encoder_is_the_one_pass_encoder() {
    let ds = dataset();
    let config = encoder_config(2);
    let one_pass = train_encoder(
        &ds,
        InputKind::Depth,
        &config,
        &temp_dir("iterative-one-pass"),
        &mut NoProgress,
    )
    .unwrap();
    let iterative = train_iterative(
        &ds,
        &builtin(),
        InputKind::Depth,
        &IterativeTrainConfig {
            feedback: FeedbackSet::NONE,
            ..IterativeTrainConfig::new(config, InputKind::Depth)
        },
        &temp_dir("iterative-none"),
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(weights(iterative.network()), weights(one_pass.network()));
    let (images, _) = validation_rows(3);
    let history = iterative
        .iterate(&images, None, &Iterate::default())
        .unwrap();
    // Without feedback the estimate cannot change after the first iteration.
    assert_eq!(history.len(), 2);
    let expected = one_pass.predict(&images).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(history[0].to_vec2::<f32>().unwrap(), expected);
}

/// With feedback: the loss falls, an interrupted run resumes bit for bit (the current estimates
/// are drawn from the batch seeds), the saved encoder predicts as the trained one, its
/// prediction depends on the current estimate, and each loader refuses the other's encoder.
#[test]
fn iterative_encoder_trains_resumes_and_reads_its_estimate() {
    let ds = dataset();
    let epochs = 4;
    let config = IterativeTrainConfig::new(encoder_config(epochs), InputKind::Depth);
    assert_eq!(config.feedback.to_string(), "depth,residual");
    let whole = temp_dir("iterative-whole");
    let encoder = train_iterative(
        &ds,
        &builtin(),
        InputKind::Depth,
        &config,
        &whole,
        &mut NoProgress,
    )
    .unwrap();
    let losses = crate::training::epoch_losses::<facenet::BranchedEncoderConfig>(&whole);
    assert!(losses[epochs - 1] < losses[0], "losses {losses:?}");
    assert_eq!(ModelCard::read(&whole).unwrap().stage, "iterative");

    let parts = temp_dir("iterative-parts");
    let first = IterativeTrainConfig {
        encoder: EncoderTrainConfig {
            schedule: TrainSchedule {
                stop_after_epochs: Some(2),
                ..config.encoder.schedule
            },
            ..config.encoder.clone()
        },
        ..config.clone()
    };
    train_iterative(
        &ds,
        &builtin(),
        InputKind::Depth,
        &first,
        &parts,
        &mut NoProgress,
    )
    .unwrap();
    let resumed = train_iterative(
        &ds,
        &builtin(),
        InputKind::Depth,
        &config,
        &parts,
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(weights(resumed.network()), weights(encoder.network()));

    let loaded = IterativeEncoder::load(&whole, &builtin(), &Device::Cpu).unwrap();
    let (images, truth) = validation_rows(3);
    let zeros = truth.zeros_like().unwrap();
    let at_mean = encoder.step(&images, &zeros).unwrap();
    assert_eq!(
        at_mean.to_vec2::<f32>().unwrap(),
        loaded
            .step(&images, &zeros)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap()
    );
    let at_truth = encoder.step(&images, &truth).unwrap();
    let moved = (&at_truth - &at_mean)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        moved > 1e-4,
        "the prediction ignores the estimate ({moved})"
    );

    let how = Iterate {
        iterations: 3,
        tolerance: 0.0,
    };
    let history = encoder.iterate(&images, None, &how).unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(
        history[0].to_vec2::<f32>().unwrap(),
        at_mean.to_vec2::<f32>().unwrap()
    );
    assert!(history.iter().all(|h| h.dims() == truth.dims()));

    let err = TrainedEncoder::load(&whole, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("IterativeEncoder::load"), "{err}");
    let one_pass = temp_dir("iterative-refuses-one-pass");
    train_encoder(
        &ds,
        InputKind::Depth,
        &encoder_config(1),
        &one_pass,
        &mut NoProgress,
    )
    .unwrap();
    let err = IterativeEncoder::load(&one_pass, &builtin(), &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("not an iterative one"), "{err}");
    // Validation iterates from the mean face, a one-pass encoder's estimate or the truth: the
    // first iteration is one step from that start, whatever the batching.
    let model = builtin();
    let validation = Validation::new(&ds, &model).unwrap();
    let n = validation.rows().len();
    let (all_images, all_truth) = validation_rows(n);
    let start_encoder = TrainedEncoder::load(&one_pass, &Device::Cpu).unwrap();
    let one_pass_estimate = start_encoder.predict(&all_images).unwrap();
    for (start, first) in [
        (IterativeStart::Mean, all_truth.zeros_like().unwrap()),
        (IterativeStart::Encoder(&start_encoder), one_pass_estimate),
        (IterativeStart::Truth, all_truth.clone()),
    ] {
        let predictions = validation
            .iterative_predictions(&encoder, start, &how, 2)
            .unwrap();
        assert_eq!(predictions.len(), 3);
        let expected = encoder.step(&all_images, &first).unwrap();
        let expected: Vec<f32> = expected.flatten_all().unwrap().to_vec1().unwrap();
        for (got, want) in predictions[0].iter().zip(&expected) {
            assert!((got - want).abs() < 1e-4, "{start:?}: {got} vs {want}");
        }
    }
    let rows = validation
        .iterative_rows(&encoder, IterativeStart::Truth, &how, 2)
        .unwrap();
    assert_eq!(
        rows[0].method,
        "Iterative encoder (Depth), iteration 1, from the truth (oracle)"
    );
    // Wrong inputs are typed errors.
    let wrong = Tensor::zeros((3, 2, 16, 16), DType::F32, &Device::Cpu).unwrap();
    assert!(encoder.step(&wrong, &zeros).is_err());
    assert!(
        encoder
            .iterate(
                &images,
                None,
                &Iterate {
                    iterations: 0,
                    tolerance: 0.0
                }
            )
            .is_err()
    );
    // Training on the network's own estimates is another training, and as deterministic.
    let own = IterativeTrainConfig {
        own_estimate_fraction: 1.0,
        encoder: encoder_config(2),
        ..config.clone()
    };
    let [a, b] = ["iterative-own-a", "iterative-own-b"].map(|name| {
        let dir = temp_dir(name);
        let trained = train_iterative(
            &ds,
            &builtin(),
            InputKind::Depth,
            &own,
            &dir,
            &mut NoProgress,
        )
        .unwrap();
        weights(trained.network())
    });
    assert_eq!(a, b);
    let drawn = IterativeTrainConfig {
        own_estimate_fraction: 0.0,
        encoder: encoder_config(2),
        ..config.clone()
    };
    let dir = temp_dir("iterative-own-none");
    let plain = train_iterative(
        &ds,
        &builtin(),
        InputKind::Depth,
        &drawn,
        &dir,
        &mut NoProgress,
    )
    .unwrap();
    assert_ne!(a, weights(plain.network()));
    let amplitude = IterativeTrainConfig {
        feedback: FeedbackSet::ALL,
        ..IterativeTrainConfig::new(encoder_config(1), InputKind::Amplitude)
    };
    let dir = temp_dir("iterative-amplitude-residual");
    assert!(
        train_iterative(
            &ds,
            &builtin(),
            InputKind::Amplitude,
            &amplitude,
            &dir,
            &mut NoProgress
        )
        .is_err()
    );
}

/// Starting from a one-pass encoder: the run is deterministic and resumes bit for bit, its card
/// records the start (so a fresh run refuses its directory), and a start of another
/// architecture or one whose image lacks what the feedback needs is refused.
#[test]
fn the_iterative_encoder_starts_from_a_one_pass_encoder() {
    let ds = dataset();
    let one_pass_dir = temp_dir("iterative-start-one-pass");
    train_encoder(
        &ds,
        InputKind::Depth,
        &encoder_config(2),
        &one_pass_dir,
        &mut NoProgress,
    )
    .unwrap();
    let start = || TrainedEncoder::load(&one_pass_dir, &Device::Cpu).unwrap();
    let config = IterativeTrainConfig::new(encoder_config(2), InputKind::Depth);
    let whole = temp_dir("iterative-start-whole");
    let trained =
        train_iterative_from(&ds, &builtin(), start(), &config, &whole, &mut NoProgress).unwrap();
    let card = ModelCard::read(&whole).unwrap();
    assert_eq!(card.objective["start"]["stage"], "encoder");

    let parts = temp_dir("iterative-start-parts");
    let first = IterativeTrainConfig {
        encoder: EncoderTrainConfig {
            schedule: TrainSchedule {
                stop_after_epochs: Some(1),
                ..config.encoder.schedule
            },
            ..config.encoder.clone()
        },
        ..config.clone()
    };
    train_iterative_from(&ds, &builtin(), start(), &first, &parts, &mut NoProgress).unwrap();
    let resumed =
        train_iterative_from(&ds, &builtin(), start(), &config, &parts, &mut NoProgress).unwrap();
    assert_eq!(weights(resumed.network()), weights(trained.network()));
    // From fresh weights it is another training: the directory is refused.
    let err = train_iterative(
        &ds,
        &builtin(),
        InputKind::Depth,
        &config,
        &whole,
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("another loss"), "{err}");
    let fresh = train_iterative(
        &ds,
        &builtin(),
        InputKind::Depth,
        &config,
        &temp_dir("iterative-start-fresh"),
        &mut NoProgress,
    )
    .unwrap();
    assert_ne!(weights(fresh.network()), weights(trained.network()));

    // Another pose network is another architecture.
    let resnet_pose = IterativeTrainConfig {
        encoder: EncoderTrainConfig {
            pose_network: facenet::PoseNetwork::ResNet,
            ..config.encoder.clone()
        },
        ..config.clone()
    };
    let err = train_iterative_from(
        &ds,
        &builtin(),
        start(),
        &resnet_pose,
        &temp_dir("iterative-start-architecture"),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("architecture"), "{err}");
    // An amplitude encoder cannot start an iterative encoder that reads the depth residual.
    let amplitude_dir = temp_dir("iterative-start-amplitude");
    train_encoder(
        &ds,
        InputKind::Amplitude,
        &encoder_config(1),
        &amplitude_dir,
        &mut NoProgress,
    )
    .unwrap();
    let amplitude = TrainedEncoder::load(&amplitude_dir, &Device::Cpu).unwrap();
    assert!(
        train_iterative_from(
            &ds,
            &builtin(),
            amplitude,
            &config,
            &temp_dir("iterative-start-residual"),
            &mut NoProgress,
        )
        .is_err()
    );
}

/// The learned feedback channels and a residual gain: the stage records the renderer's
/// fingerprint and the gain, keeps a copy of the renderer beside the encoder, the loaded encoder predicts as the trained one, a copy that is not the
/// renderer it was trained with is refused, resuming with another renderer is refused, and so
/// are the channels without a renderer, a renderer without the channels and a renderer of
/// another image kind.
#[test]
fn learned_feedback_channels_keep_their_renderer() {
    let ds = dataset();
    let renderer = |kind, seed| {
        LearnedRenderer::untrained(facenet::NetworkSize::Tiny, ds.manifest(), kind, seed).unwrap()
    };
    let (first, second, amplitude) = (
        temp_dir("iterative-learned-renderer"),
        temp_dir("iterative-learned-other"),
        temp_dir("iterative-learned-amplitude"),
    );
    renderer(InputKind::Depth, 5).save(&first).unwrap();
    renderer(InputKind::Depth, 6).save(&second).unwrap();
    renderer(InputKind::Amplitude, 5).save(&amplitude).unwrap();
    let defaults = IterativeTrainConfig::new(encoder_config(2), InputKind::Depth);
    let config = IterativeTrainConfig {
        feedback: "depth,residual,learned".parse().unwrap(),
        feedback_renderer: Some(first.to_path_buf()),
        residual_gain: 3.0,
        ..defaults.clone()
    };
    let train = |config: &IterativeTrainConfig, dir: &std::path::Path| {
        train_iterative(
            &ds,
            &builtin(),
            InputKind::Depth,
            config,
            dir,
            &mut NoProgress,
        )
    };
    let dir = temp_dir("iterative-learned");
    let trained = train(&config, &dir).unwrap();
    let card = ModelCard::read(&dir).unwrap();
    assert_eq!(
        card.objective["feedback_renderer"]["fingerprint"],
        renderer(InputKind::Depth, 5).fingerprint().unwrap()
    );
    assert_ne!(
        renderer(InputKind::Depth, 5).fingerprint().unwrap(),
        renderer(InputKind::Depth, 6).fingerprint().unwrap()
    );
    assert_eq!(card.objective["residual_gain"], 3.0);
    // The loaded encoder predicts as the trained one only with the same renderer and gain.
    let loaded = IterativeEncoder::load(&dir, &builtin(), &Device::Cpu).unwrap();
    assert_eq!(loaded.feedback(), config.feedback);
    let (images, truth) = validation_rows(3);
    let estimate = (truth.clone() * 0.5).unwrap();
    assert_eq!(
        trained
            .step(&images, &estimate)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap(),
        loaded
            .step(&images, &estimate)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap()
    );

    // Resuming with another renderer is another training.
    let other = IterativeTrainConfig {
        feedback_renderer: Some(second.to_path_buf()),
        ..config.clone()
    };
    let err = train(&other, &dir).unwrap_err();
    assert!(err.to_string().contains("another loss"), "{err}");
    // A copy that is not the renderer it was trained with.
    renderer(InputKind::Depth, 6)
        .save(&dir.join("feedback-renderer"))
        .unwrap();
    let err = IterativeEncoder::load(&dir, &builtin(), &Device::Cpu).unwrap_err();
    assert!(
        err.to_string().contains("not the one it was trained"),
        "{err}"
    );

    for (bad, needle) in [
        (
            IterativeTrainConfig {
                feedback_renderer: None,
                ..config.clone()
            },
            "need a learned renderer",
        ),
        (
            IterativeTrainConfig {
                feedback_renderer: Some(first.to_path_buf()),
                ..defaults.clone()
            },
            "no learned channels",
        ),
        (
            IterativeTrainConfig {
                feedback_renderer: Some(amplitude.to_path_buf()),
                ..config.clone()
            },
            "draws amplitude images",
        ),
        (
            IterativeTrainConfig {
                feedback: "depth".parse().unwrap(),
                residual_gain: 2.0,
                ..defaults.clone()
            },
            "has no residual",
        ),
        (
            IterativeTrainConfig {
                residual_gain: -1.0,
                ..defaults.clone()
            },
            "must be finite and positive",
        ),
    ] {
        let err = train(&bad, &temp_dir("iterative-learned-bad")).unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
    }
}
