//! Training: overfitting a tiny set, exact resumption, freezing, seeding and Adam's update rule.

use candle_core::{DType, Device, Tensor, Var};
use facenet::{
    Adam, AdamConfig, BranchedEncoderConfig, Encoder, FacenetError, Head, ImageDecoder, ImageShape,
    LinearSchedule, LossHistory, MiniBatch, Network, NetworkSize, OutputGroups, ResNetConfig,
    Trainer, TrainerConfig,
};

use crate::support::{max_abs_diff, mse, uniform};

/// Rows `batch.indices` of `data`.
fn rows(data: &Tensor, batch: &MiniBatch<'_>) -> facenet::Result<Tensor> {
    let indices: Vec<u32> = batch.indices.iter().map(|&i| i as u32).collect();
    let indices = Tensor::from_vec(indices, batch.indices.len(), data.device())?;
    Ok(data.index_select(&indices, 0)?)
}

#[test]
fn tiny_resnet_overfits_a_tiny_set() {
    let n = 8;
    let images = uniform(&[n, 1, 32, 32], 1, DType::F32);
    let targets = uniform(&[n, 5], 2, DType::F32);
    let net = Network::new(
        NetworkSize::Tiny.resnet(1, 5, Head::Linear),
        3,
        DType::F32,
        &Device::Cpu,
    )
    .expect("resnet");
    let adam = AdamConfig::new(LinearSchedule::constant(1e-2));
    let mut trainer =
        Trainer::new(net, TrainerConfig::new(60, 4, adam).with_seed(4)).expect("trainer");
    let mut history = LossHistory::default();
    trainer
        .run(
            n,
            |net, batch| {
                mse(
                    &net.encode(&rows(&images, batch)?, true)?,
                    &rows(&targets, batch)?,
                )
            },
            &mut history,
        )
        .expect("training");
    let first = history.epoch_losses[0];
    let last = history.epoch_losses[history.epoch_losses.len() - 1];
    assert_eq!(history.epoch_losses.len(), 60);
    assert!(last <= 0.1 * first, "loss fell from {first} to {last} only");
}

fn face_config() -> BranchedEncoderConfig {
    NetworkSize::Tiny.face_encoder(
        1,
        OutputGroups {
            shape: 2,
            expression: 2,
            other: 2,
        },
    )
}

/// A loss with per-batch random augmentation drawn from the batch seed, so that resumption must
/// restore the step count for the noise to match.
fn augmented_loss(
    images: &Tensor,
    targets: &Tensor,
) -> impl Fn(&Network<BranchedEncoderConfig>, &MiniBatch<'_>) -> facenet::Result<Tensor> {
    move |net, batch| {
        let x = rows(images, batch)?;
        let noise = (uniform(x.dims(), batch.seed, DType::F32) * 0.1)?;
        mse(&net.encode(&(x + noise)?, true)?, &rows(targets, batch)?)
    }
}

#[test]
fn a_resumed_run_reproduces_the_uninterrupted_one() {
    let n = 6;
    let images = uniform(&[n, 1, 32, 32], 10, DType::F32);
    let targets = uniform(&[n, 6], 11, DType::F32);
    // The ramp ends in the second half, so the schedule's position must be restored too.
    let adam = AdamConfig::new(LinearSchedule::linear(1e-2, 1e-3, 9));
    let config = |epochs| TrainerConfig::new(epochs, 4, adam).with_seed(12);
    let network = || Network::new(face_config(), 13, DType::F32, &Device::Cpu).expect("encoder");

    let mut whole = Trainer::new(network(), config(6)).expect("trainer");
    let mut whole_history = LossHistory::default();
    whole
        .run(n, augmented_loss(&images, &targets), &mut whole_history)
        .expect("training");

    let dir = tempfile::tempdir().expect("temp dir");
    let checkpoint = dir.path().join("run");
    let mut first = Trainer::new(network(), config(3))
        .and_then(|t| t.with_checkpoints(&checkpoint, 3))
        .expect("trainer");
    let mut history = LossHistory::default();
    first
        .run(n, augmented_loss(&images, &targets), &mut history)
        .expect("first half");
    drop(first);
    let mut second =
        Trainer::<BranchedEncoderConfig>::resume(&checkpoint, &Device::Cpu).expect("resume");
    assert_eq!(second.epochs_done(), 3);
    second.set_epochs(6).expect("extend");
    second
        .run(n, augmented_loss(&images, &targets), &mut history)
        .expect("second half");

    assert_eq!(history.step_losses.len(), 12);
    assert_eq!(history.step_losses, whole_history.step_losses);
    assert_eq!(second.epoch_losses(), whole.epoch_losses());
    let (a, b) = (
        whole.network().params().snapshot().expect("snapshot"),
        second.network().params().snapshot().expect("snapshot"),
    );
    for (name, tensor) in &a {
        assert_eq!(max_abs_diff(tensor, &b[name]), 0.0, "{name}");
    }
}

#[test]
fn a_frozen_network_is_unchanged_by_training_through_it() {
    let n = 4;
    let images = uniform(&[n, 1, 32, 32], 20, DType::F32);
    let encoder = Network::new(
        NetworkSize::Tiny.resnet(1, 4, Head::PAPER_TANH),
        21,
        DType::F32,
        &Device::Cpu,
    )
    .expect("encoder");
    let mut decoder = Network::new(
        NetworkSize::Tiny.decoder(4, ImageShape::new(1, 32, 32)),
        22,
        DType::F32,
        &Device::Cpu,
    )
    .expect("decoder");
    decoder.freeze().expect("freeze");
    assert!(decoder.trainable_vars().is_empty());
    assert!(matches!(
        Trainer::new(
            Network::new(
                NetworkSize::Tiny.resnet(1, 4, Head::Linear),
                0,
                DType::F32,
                &Device::Cpu
            )
            .and_then(|mut n| n.freeze().map(|()| n))
            .expect("frozen"),
            TrainerConfig::new(1, 2, AdamConfig::new(LinearSchedule::constant(1e-3)))
        ),
        Err(FacenetError::Training(_))
    ));

    let decoder_before = decoder.params().snapshot().expect("snapshot");
    let encoder_before = encoder.params().snapshot().expect("snapshot");
    // A frozen network runs in evaluation mode even when asked to train.
    let probe = uniform(&[2, 4], 23, DType::F32);
    let eval = decoder.decode(&probe, false).expect("decode");
    assert_eq!(
        max_abs_diff(&decoder.decode(&probe, true).expect("decode"), &eval),
        0.0
    );

    let adam = AdamConfig::new(LinearSchedule::constant(1e-2));
    let mut trainer = Trainer::new(encoder, TrainerConfig::new(3, 2, adam)).expect("trainer");
    trainer
        .run(
            n,
            |net, batch| {
                let x = rows(&images, batch)?;
                mse(&decoder.decode(&net.encode(&x, true)?, true)?, &x)
            },
            &mut (),
        )
        .expect("training");

    for (name, tensor) in decoder.params().snapshot().expect("snapshot") {
        assert_eq!(
            max_abs_diff(&tensor, &decoder_before[&name]),
            0.0,
            "decoder {name} changed"
        );
    }
    // The gradient reached the encoder through the frozen decoder, and its BatchNorm learned.
    let encoder_after = trainer.network().params().snapshot().expect("snapshot");
    for name in ["conv1.weight", "fc.weight", "bn1.running_mean"] {
        assert!(
            max_abs_diff(&encoder_after[name], &encoder_before[name]) > 0.0,
            "encoder {name} unchanged"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_weights() {
    let build = |seed| {
        Network::new(face_config(), seed, DType::F32, &Device::Cpu)
            .and_then(|n| n.params().snapshot())
            .expect("network")
    };
    let (a, b, c) = (build(5), build(5), build(6));
    assert_eq!(a.len(), b.len());
    for (name, tensor) in &a {
        assert_eq!(max_abs_diff(tensor, &b[name]), 0.0, "{name}");
    }
    assert!(max_abs_diff(&a["shape.conv1.weight"], &c["shape.conv1.weight"]) > 0.0);
    // Two branches of the same architecture do not share weights.
    assert!(max_abs_diff(&a["shape.conv1.weight"], &a["expression.conv1.weight"]) > 0.0);
}

/// Kaiming normal (fan-out, ReLU gain): the sample standard deviation of a large convolution
/// weight is √(2 / (Co · k²)).
#[test]
fn convolution_weights_have_the_kaiming_spread() {
    let config = ResNetConfig::new(18, 1, 1).expect("resnet");
    let net = Network::new(config, 1, DType::F64, &Device::Cpu).expect("resnet");
    let weights = net.params().snapshot().expect("snapshot");
    let w = &weights["layer4.1.conv2.weight"]; // 512 × 512 × 3 × 3
    let values = w
        .flatten_all()
        .and_then(|t| t.to_vec1::<f64>())
        .expect("values");
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    let expected = (2.0 / (512.0 * 9.0_f64)).sqrt();
    assert!(
        (std / expected - 1.0).abs() < 0.01,
        "std {std}, expected {expected}"
    );
    assert!(mean.abs() < 0.01 * expected);
}

/// With a constant gradient g, Adam's bias-corrected moments are exactly g and g², so every step
/// moves θ by lr_t · g / (|g| + ε).
#[test]
fn adam_steps_by_the_learning_rate_under_a_constant_gradient() {
    let theta0 = [0.5, -1.0, 2.0];
    let g = [0.3, -2.0, 1e-3];
    let var = Var::from_tensor(&Tensor::new(&theta0, &Device::Cpu).expect("tensor")).expect("var");
    let slope = Tensor::new(&g, &Device::Cpu).expect("tensor");
    let schedule = LinearSchedule::linear(0.1, 0.01, 3);
    let config = AdamConfig::new(schedule);
    let mut adam = Adam::new(vec![("theta".into(), var.clone())], config).expect("adam");
    let mut expected = theta0;
    for step in 0..5u64 {
        let loss = (var.as_tensor() * &slope)
            .and_then(|t| t.sum_all())
            .expect("loss");
        adam.backward_step(&loss).expect("step");
        let lr = schedule.learning_rate(step);
        for (e, gi) in expected.iter_mut().zip(g) {
            *e -= lr * gi / (gi.abs() + config.eps);
        }
        let got = var.as_tensor().to_vec1::<f64>().expect("values");
        for (a, b) in got.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-12, "step {step}: {a} vs {b}");
        }
    }
    assert_eq!(adam.steps_taken(), 5);
    assert_eq!(adam.learning_rate(), 0.01);
}

/// On f(θ) = ½ Σ θ², Adam matches the recursion of Kingma & Ba written out in scalars.
#[test]
fn adam_matches_the_published_recursion() {
    let theta0 = [1.0, -0.25];
    let var = Var::from_tensor(&Tensor::new(&theta0, &Device::Cpu).expect("tensor")).expect("var");
    let config = AdamConfig::new(LinearSchedule::constant(0.05));
    let mut adam = Adam::new(vec![("theta".into(), var.clone())], config).expect("adam");
    let (mut theta, mut m, mut v) = (theta0, [0.0; 2], [0.0; 2]);
    for t in 1..=20 {
        let loss = (var
            .as_tensor()
            .sqr()
            .and_then(|s| s.sum_all())
            .expect("loss")
            * 0.5)
            .expect("loss");
        adam.backward_step(&loss).expect("step");
        for i in 0..2 {
            let grad = theta[i];
            m[i] = config.beta1 * m[i] + (1.0 - config.beta1) * grad;
            v[i] = config.beta2 * v[i] + (1.0 - config.beta2) * grad * grad;
            let m_hat = m[i] / (1.0 - config.beta1.powi(t));
            let v_hat = v[i] / (1.0 - config.beta2.powi(t));
            theta[i] -= 0.05 * m_hat / (v_hat.sqrt() + config.eps);
        }
    }
    let got = var.as_tensor().to_vec1::<f64>().expect("values");
    for (a, b) in got.iter().zip(&theta) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
}
