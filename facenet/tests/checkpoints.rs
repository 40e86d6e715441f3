//! Checkpoints: round trip, atomic replacement, recovery, and rejection of mismatches.

use candle_core::{DType, Device, Tensor};
use facenet::{
    AdamConfig, BranchedEncoderConfig, Checkpoint, DecoderConfig, Encoder, FacenetError, Head,
    LinearSchedule, MiniBatch, Network, NetworkSize, OutputGroups, ResNetConfig, RngState, Trainer,
    TrainerConfig,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::support::{max_abs_diff, mse, uniform};

fn face_config() -> BranchedEncoderConfig {
    NetworkSize::Tiny.face_encoder(
        2,
        OutputGroups {
            shape: 3,
            expression: 2,
            other: 4,
        },
    )
}

/// A face encoder trained for one epoch, so that moments and running statistics are non-trivial.
pub(crate) fn trained() -> Trainer<BranchedEncoderConfig> {
    let images = uniform(&[4, 2, 32, 32], 30, DType::F32);
    let targets = uniform(&[4, 9], 31, DType::F32);
    let net = Network::new(face_config(), 32, DType::F32, &Device::Cpu).expect("encoder");
    let adam = AdamConfig::new(LinearSchedule::linear(1e-2, 1e-3, 10));
    let mut trainer = Trainer::new(net, TrainerConfig::new(1, 2, adam)).expect("trainer");
    let loss = |net: &Network<BranchedEncoderConfig>, batch: &MiniBatch<'_>| {
        let idx: Vec<u32> = batch.indices.iter().map(|&i| i as u32).collect();
        let idx = Tensor::from_vec(idx, batch.indices.len(), &Device::Cpu)?;
        mse(
            &net.encode(&images.index_select(&idx, 0)?, true)?,
            &targets.index_select(&idx, 0)?,
        )
    };
    trainer.run(4, loss, &mut ()).expect("training");
    trainer
}

#[test]
fn a_checkpoint_round_trip_restores_everything() {
    let trainer = trained();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("encoder");
    trainer.save_checkpoint(&path).expect("save");
    for file in [
        Checkpoint::CONFIG,
        Checkpoint::WEIGHTS,
        Checkpoint::OPTIMIZER,
        Checkpoint::STATE,
    ] {
        assert!(path.join(file).is_file(), "{file} missing");
    }

    let loaded = Checkpoint::load::<BranchedEncoderConfig>(&path, &Device::Cpu).expect("load");
    assert_eq!(loaded.network.config(), trainer.network().config());
    let (saved, restored) = (
        trainer.network().params().snapshot().expect("snapshot"),
        loaded.network.params().snapshot().expect("snapshot"),
    );
    assert_eq!(saved.len(), restored.len());
    for (name, tensor) in &saved {
        assert_eq!(max_abs_diff(tensor, &restored[name]), 0.0, "{name}");
    }
    let optimizer = loaded.optimizer.expect("optimiser state");
    let original = trainer.optimizer().state();
    assert_eq!(optimizer.step, 2);
    assert_eq!(optimizer.step, original.step);
    assert_eq!(optimizer.config, original.config);
    assert_eq!(optimizer.moments.len(), original.moments.len());
    for (name, (m, v)) in &original.moments {
        let (m2, v2) = &optimizer.moments[name];
        assert_eq!(max_abs_diff(m, m2), 0.0, "first moment of {name}");
        assert_eq!(max_abs_diff(v, v2), 0.0, "second moment of {name}");
    }
    assert_eq!(loaded.state.expect("training state"), trainer.state());

    let probe = uniform(&[2, 2, 32, 32], 33, DType::F32);
    let a = trainer.network().encode(&probe, false).expect("encode");
    let b = loaded.network.encode(&probe, false).expect("encode");
    assert_eq!(max_abs_diff(&a, &b), 0.0);
}

#[test]
fn a_device_copy_keeps_weights_statistics_and_frozen_state_in_its_own_storage() {
    let trainer = trained();
    let mut original = trainer.into_network();
    original.freeze().expect("freeze");
    let copy = original.to_device(&Device::Cpu).expect("copy");
    assert!(copy.is_frozen());
    let (before, copied) = (
        original.params().snapshot().expect("snapshot"),
        copy.params().snapshot().expect("snapshot"),
    );
    assert_eq!(before.len(), copied.len());
    for (name, tensor) in &before {
        assert_eq!(max_abs_diff(tensor, &copied[name]), 0.0, "{name}");
    }
    let probe = uniform(&[2, 2, 32, 32], 34, DType::F32);
    let expected = original.encode(&probe, false).expect("encode");
    assert_eq!(
        max_abs_diff(&expected, &copy.encode(&probe, false).expect("encode")),
        0.0
    );
    // The copy owns its tensors: overwriting one leaves the original as it was.
    let (name, var) = copy.params().named_vars().swap_remove(0);
    var.set(&var.as_tensor().zeros_like().expect("zeros"))
        .expect("set");
    let after = original.params().snapshot().expect("snapshot");
    assert_eq!(max_abs_diff(&before[&name], &after[&name]), 0.0, "{name}");
}

#[test]
fn saving_over_a_checkpoint_replaces_it_whole() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("decoder");
    let config = NetworkSize::Tiny.decoder(3, facenet::ImageShape::new(1, 32, 32));
    let first = Network::new(config.clone(), 1, DType::F32, &Device::Cpu).expect("decoder");
    let second = Network::new(config, 2, DType::F32, &Device::Cpu).expect("decoder");
    Checkpoint::save(&path, &first, None, None).expect("save");
    Checkpoint::save(&path, &second, None, None).expect("save again");

    let loaded = Checkpoint::load::<DecoderConfig>(&path, &Device::Cpu).expect("load");
    assert!(loaded.optimizer.is_none() && loaded.state.is_none());
    let (want, got) = (
        second.params().snapshot().expect("snapshot"),
        loaded.network.params().snapshot().expect("snapshot"),
    );
    for (name, tensor) in &want {
        assert_eq!(max_abs_diff(tensor, &got[name]), 0.0, "{name}");
    }
    let entries: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries,
        ["decoder"],
        "staging or backup directories left behind"
    );
    // A weights-only checkpoint cannot be resumed.
    assert!(matches!(
        Trainer::<DecoderConfig>::resume(&path, &Device::Cpu),
        Err(FacenetError::Checkpoint { .. })
    ));
}

/// A checkpoint moved aside by an interrupted save is found; what interrupted saves leave
/// beside it goes: staging directories always, the moved-aside copy only once the checkpoint
/// itself is complete again (until then it is the one readable copy).
#[test]
fn a_checkpoint_moved_aside_by_an_interrupted_save_is_found_and_leftovers_go() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("encoder");
    let net = Network::new(
        NetworkSize::Tiny.resnet(1, 2, Head::Linear),
        4,
        DType::F32,
        &Device::Cpu,
    )
    .expect("resnet");
    Checkpoint::save(&path, &net, None, None).expect("save");
    // The state between "old checkpoint moved aside" and "new checkpoint renamed in".
    let aside = dir.path().join(".encoder.previous-4242");
    std::fs::rename(&path, &aside).expect("move aside");
    assert!(Checkpoint::exists(&path));
    let loaded = Checkpoint::load::<ResNetConfig>(&path, &Device::Cpu).expect("load");
    assert_eq!(loaded.network.config(), net.config());

    let partial = dir.path().join(".encoder.partial-4242");
    std::fs::create_dir(&partial).expect("staging");
    std::fs::write(partial.join(Checkpoint::WEIGHTS), "half").expect("half a file");
    let other = dir.path().join(".decoder.partial-4242");
    std::fs::create_dir(&other).expect("another checkpoint's staging");
    assert_eq!(
        Checkpoint::remove_leftovers(&path).expect("clean"),
        vec![partial]
    );
    assert!(aside.is_dir(), "the only readable copy stays");
    Checkpoint::save(&path, &net, None, None).expect("save again");
    assert_eq!(
        Checkpoint::remove_leftovers(&path).expect("clean"),
        vec![aside]
    );
    assert!(other.is_dir(), "another checkpoint's files are not touched");
    assert!(Checkpoint::exists(&path));
}

#[test]
fn checkpoints_of_another_network_kind_are_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("net");
    let net = Network::new(
        NetworkSize::Tiny.resnet(1, 2, Head::Linear),
        0,
        DType::F32,
        &Device::Cpu,
    )
    .expect("resnet");
    Checkpoint::save(&path, &net, None, None).expect("save");
    match Checkpoint::load::<DecoderConfig>(&path, &Device::Cpu) {
        Err(FacenetError::Checkpoint { reason, .. }) => {
            assert!(
                reason.contains("'resnet'") && reason.contains("'decoder'"),
                "{reason}"
            );
        }
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
    assert!(matches!(
        Checkpoint::load::<ResNetConfig>(&dir.path().join("absent"), &Device::Cpu),
        Err(FacenetError::Checkpoint { .. })
    ));
}

#[test]
fn weights_of_another_architecture_are_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("weights.safetensors");
    let small = NetworkSize::Tiny.resnet(1, 2, Head::Linear);
    let net = Network::new(small.clone(), 0, DType::F32, &Device::Cpu).expect("resnet");
    net.save_weights(&path).expect("save");

    let wider = small.clone().with_base_width(8);
    match Network::from_weights(wider, &path, &Device::Cpu) {
        Err(FacenetError::Weights { reason, .. }) => assert!(reason.contains("shape"), "{reason}"),
        other => panic!("expected a weights error, got {other:?}"),
    }
    let deeper = ResNetConfig {
        layers: [1, 1, 1, 2],
        ..small.clone()
    };
    match Network::from_weights(deeper, &path, &Device::Cpu) {
        Err(FacenetError::Weights { reason, .. }) => {
            assert!(reason.contains("missing tensor 'layer4.1."), "{reason}")
        }
        other => panic!("expected a weights error, got {other:?}"),
    }
    let more_outputs = ResNetConfig {
        outputs: 3,
        ..small
    };
    assert!(matches!(
        Network::from_weights(more_outputs, &path, &Device::Cpu),
        Err(FacenetError::Weights { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// A captured generator continues with exactly the numbers the original would have drawn.
    #[test]
    fn generator_state_survives_json(seed in any::<u64>(), stream in any::<u64>(), skip in 0usize..100) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        for _ in 0..skip {
            rng.random::<u32>();
        }
        let text = serde_json::to_string(&RngState::capture(&rng)).expect("serialise");
        let state: RngState = serde_json::from_str(&text).expect("parse");
        let mut restored = state.restore().expect("restore");
        for _ in 0..10 {
            prop_assert_eq!(rng.random::<u64>(), restored.random::<u64>());
        }
    }
}

#[test]
fn a_widened_network_ignores_its_new_input_channels_until_trained() {
    let narrow = trained().into_network();
    let wide_config = NetworkSize::Tiny.face_encoder(
        5,
        OutputGroups {
            shape: 3,
            expression: 2,
            other: 4,
        },
    );
    let wide = narrow.widen_input(wide_config).expect("widen");
    assert!(!wide.is_frozen());
    assert_eq!(wide.input_channels(), 5);
    let images = uniform(&[3, 5, 32, 32], 40, DType::F32);
    let leading = images.narrow(1, 0, 2).expect("narrow");
    let expected = narrow.encode(&leading, false).expect("narrow encode");
    let got = wide.encode(&images, false).expect("wide encode");
    let scale = f64::from(
        expected
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
    );
    assert!(
        max_abs_diff(&got, &expected) <= 1e-5 * scale.max(1.0),
        "the new channels changed the output by {}",
        max_abs_diff(&got, &expected)
    );
    // The new channels' weights are trainable: a gradient reaches them.
    let loss = wide
        .encode(&images, true)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().expect("backward");
    let reached = wide.trainable_vars().iter().any(|(_, var)| {
        var.dims().len() == 4
            && var.dims()[1] == 5
            && grads.get(var.as_tensor()).is_some_and(|g| {
                let new = g.narrow(1, 2, 3).unwrap();
                new.abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.0
            })
    });
    assert!(reached, "no gradient reaches the new input channels");

    // Another width is not a widening.
    let other = NetworkSize::Quick.face_encoder(
        5,
        OutputGroups {
            shape: 3,
            expression: 2,
            other: 4,
        },
    );
    match narrow.widen_input(other) {
        Err(FacenetError::Config { field, reason, .. }) => {
            assert_eq!(field, "in_channels");
            assert!(reason.contains("parameter"), "{reason}");
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}
