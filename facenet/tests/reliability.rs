//! Reliability: what a network reads or writes is never silently wrong. Weights with a NaN or
//! an infinity are refused by name, and the same state is saved as the same bytes.

use candle_core::{DType, Device};
use facenet::{FacenetError, Head, Network, NetworkSize};

use crate::checkpoints::trained;

/// The same state gives the same bytes: safetensors takes the optimiser's metadata as a
/// `HashMap`, whose iteration order differs between instances, so repeated saves catch an
/// unsorted header.
#[test]
fn optimiser_states_are_byte_identical_across_saves() {
    let trainer = trained();
    let dir = tempfile::tempdir().expect("temp dir");
    let files: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            let path = dir.path().join(format!("adam-{i}.safetensors"));
            trainer.optimizer().save(&path).expect("save");
            std::fs::read(&path).expect("read")
        })
        .collect();
    assert!(files.windows(2).all(|w| w[0] == w[1]));
    let header = String::from_utf8_lossy(&files[0][8..200]).into_owned();
    assert!(
        header.contains(r#""__metadata__":{"config":"#),
        "metadata keys are sorted: {header}"
    );
}

/// A weight file with a NaN or an infinity is refused by name, whatever the tensor: such
/// weights would turn every prediction into NaN.
#[test]
fn non_finite_weights_are_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = NetworkSize::Tiny.resnet(1, 2, Head::Linear);
    let net = Network::new(config.clone(), 0, DType::F32, &Device::Cpu).expect("resnet");
    let clean = dir.path().join("clean.safetensors");
    net.save_weights(&clean).expect("save");
    let tensors = candle_core::safetensors::load(&clean, &Device::Cpu).expect("read back");
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    // The first, a middle and the last tensor, each with a NaN and with an infinity.
    for name in [names[0], names[names.len() / 2], names[names.len() - 1]] {
        for bad in [f32::NAN, f32::NEG_INFINITY] {
            let mut spoiled = tensors.clone();
            let t = &spoiled[name];
            let mut values = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let last = values.len() - 1;
            values[last] = bad;
            let replaced = candle_core::Tensor::from_vec(values, t.shape(), &Device::Cpu).unwrap();
            spoiled.insert(name.clone(), replaced);
            let path = dir.path().join("spoiled.safetensors");
            candle_core::safetensors::save(&spoiled, &path).expect("write");
            match Network::from_weights(config.clone(), &path, &Device::Cpu) {
                Err(FacenetError::Weights { reason, .. }) => assert!(
                    reason.contains(&format!("tensor '{name}'")) && reason.contains("finite"),
                    "{reason}"
                ),
                other => panic!("{name} = {bad}: expected a weights error, got {other:?}"),
            }
        }
    }
    Network::from_weights(config, &clean, &Device::Cpu).expect("clean weights load");
}
