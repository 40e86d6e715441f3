//! Output shapes of every preset and input size, torchvision parameter names and counts, and
//! rejection of malformed inputs.

use candle_core::{DType, Device, Tensor};
use facenet::{
    AlexNetConfig, BlockKind, DecoderConfig, Encoder, FacenetError, Head, ImageDecoder, ImageShape,
    Network, NetworkSize, OutputGroups, PoseNetwork, ResNetConfig,
};

use crate::support::uniform;

const GROUPS: OutputGroups = OutputGroups {
    shape: 10,
    expression: 7,
    other: 9,
};

fn check_preset(preset: NetworkSize, channels: usize, (h, w): (usize, usize), batch: usize) {
    let p = GROUPS.shape + GROUPS.expression + GROUPS.other;
    let encoder = Network::new(
        preset.face_encoder(channels, GROUPS),
        3,
        DType::F32,
        &Device::Cpu,
    )
    .expect("encoder");
    assert_eq!(encoder.output_dim(), p);
    assert_eq!(encoder.input_channels(), channels);
    let images = uniform(&[batch, channels, h, w], 1, DType::F32);
    let out = encoder.encode(&images, false).expect("encode");
    assert_eq!(out.dims(), &[batch, p], "{preset} encoder at {h}×{w}");
    // The shape and expression groups are bounded by 3 · tanh.
    let bounded = out
        .narrow(1, 0, GROUPS.shape + GROUPS.expression)
        .expect("narrow");
    let largest = bounded
        .abs()
        .and_then(|t| t.max_all())
        .and_then(|t| t.to_scalar::<f32>());
    assert!(largest.expect("max") < 3.0);

    let output = ImageShape::new(channels, h, w);
    let decoder =
        Network::new(preset.decoder(p, output), 4, DType::F32, &Device::Cpu).expect("decoder");
    assert_eq!(decoder.input_dim(), p);
    assert_eq!(decoder.output_shape(), output);
    let images = decoder.decode(&out, false).expect("decode");
    assert_eq!(
        images.dims(),
        &[batch, channels, h, w],
        "{preset} decoder at {h}×{w}"
    );
}

#[test]
fn small_presets_give_the_declared_shapes_at_every_size() {
    for preset in [NetworkSize::Tiny, NetworkSize::Quick, NetworkSize::Cpu] {
        for channels in [1, 2] {
            for size in [(32, 32), (64, 64), (33, 47), (40, 96)] {
                check_preset(preset, channels, size, 2);
            }
        }
    }
}

#[test]
fn paper_preset_gives_the_declared_shapes_at_the_smallest_size() {
    check_preset(NetworkSize::Paper, 2, (32, 32), 1);
}

#[test]
fn a_resnet_pose_branch_changes_only_the_pose_outputs() {
    let images = uniform(&[3, 2, 32, 32], 5, DType::F32);
    let encode = |pose| {
        let config = NetworkSize::Tiny.face_encoder_with(2, GROUPS, pose);
        let network = Network::new(config, 7, DType::F32, &Device::Cpu).expect("encoder");
        network.encode(&images, false).expect("encode")
    };
    let (alexnet, resnet) = (encode(PoseNetwork::AlexNet), encode(PoseNetwork::ResNet));
    let p = GROUPS.shape + GROUPS.expression + GROUPS.other;
    assert_eq!(resnet.dims(), &[3, p]);
    let coefficients = GROUPS.shape + GROUPS.expression;
    let difference = |start, len| {
        let a = alexnet.narrow(1, start, len).expect("narrow");
        let b = resnet.narrow(1, start, len).expect("narrow");
        (a - b)
            .and_then(|d| d.abs())
            .and_then(|d| d.max_all())
            .and_then(|d| d.to_scalar::<f32>())
            .expect("difference")
    };
    // Branches are initialised from their own names: the shape and expression ResNets are the
    // same networks whichever pose network sits beside them.
    assert_eq!(difference(0, coefficients), 0.0);
    assert!(difference(coefficients, GROUPS.other) > 0.0);
}

#[test]
fn training_mode_keeps_the_shapes() {
    let encoder = Network::new(
        NetworkSize::Tiny.face_encoder(1, GROUPS),
        3,
        DType::F32,
        &Device::Cpu,
    )
    .expect("encoder");
    let images = uniform(&[3, 1, 36, 52], 2, DType::F32);
    assert_eq!(
        encoder.encode(&images, true).expect("encode").dims(),
        &[3, 26]
    );
}

/// Trainable parameter counts of torchvision's `resnet18()`, `resnet34()` and `resnet50()`
/// (3 input channels, 1000 classes), as published in torchvision's model documentation.
#[test]
fn standard_resnets_have_torchvisions_parameter_counts() {
    for (depth, count) in [(18, 11_689_512), (34, 21_797_672), (50, 25_557_032)] {
        let config = ResNetConfig::new(depth, 3, 1000).expect("standard depth");
        let net = Network::new(config, 0, DType::F32, &Device::Cpu).expect("resnet");
        assert_eq!(
            net.params().trainable_parameter_count(),
            count,
            "ResNet-{depth}"
        );
    }
}

#[test]
fn resnet_parameters_carry_torchvision_names() {
    let config = ResNetConfig::new(50, 1, 4)
        .expect("standard depth")
        .with_base_width(4);
    let net = Network::new(config, 0, DType::F32, &Device::Cpu).expect("resnet");
    let names: Vec<String> = net
        .params()
        .named_vars()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for expected in [
        "conv1.weight",
        "bn1.weight",
        "bn1.running_var",
        "layer1.0.conv3.weight",
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.running_mean",
        "layer3.5.bn2.bias",
        "layer4.2.conv1.weight",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(names.iter().any(|n| n == expected), "missing {expected}");
    }
    assert!(!names.iter().any(|n| n.starts_with("layer4.3")));
}

#[test]
fn any_depth_width_and_channel_count_builds() {
    for depth in [18, 34, 50] {
        for (width, channels) in [(2, 1), (3, 2), (5, 3)] {
            let config = ResNetConfig::new(depth, channels, 6)
                .expect("standard depth")
                .with_base_width(width)
                .with_head(Head::TanhScaled { scale: 0.5 });
            let net = Network::new(config, 9, DType::F32, &Device::Cpu).expect("resnet");
            let out = net
                .encode(&uniform(&[2, channels, 35, 32], 4, DType::F32), true)
                .expect("encode");
            assert_eq!(out.dims(), &[2, 6]);
            let largest = out
                .abs()
                .and_then(|t| t.max_all())
                .and_then(|t| t.to_scalar::<f32>());
            assert!(largest.expect("max") <= 0.5);
        }
    }
}

#[test]
fn alexnet_and_bottleneck_decoder_build_at_any_width() {
    let alex = Network::new(
        AlexNetConfig::new(2, 5).with_widths(3, 7),
        0,
        DType::F32,
        &Device::Cpu,
    )
    .expect("alexnet");
    let out = alex
        .encode(&uniform(&[1, 2, 32, 45], 5, DType::F32), false)
        .expect("encode");
    assert_eq!(out.dims(), &[1, 5]);
    let decoder = DecoderConfig::new(3, ImageShape::new(1, 50, 37)).with_blocks(
        BlockKind::Bottleneck,
        [2, 1, 1, 2],
        2,
    );
    let dec = Network::new(decoder, 0, DType::F32, &Device::Cpu).expect("decoder");
    let images = dec
        .decode(&uniform(&[2, 3], 6, DType::F32), true)
        .expect("decode");
    assert_eq!(images.dims(), &[2, 1, 50, 37]);
}

fn input_error(result: facenet::Result<Tensor>) -> &'static str {
    match result {
        Err(FacenetError::Input { what, .. }) => what,
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[test]
fn malformed_inputs_are_typed_errors() {
    let net = Network::new(
        NetworkSize::Tiny.resnet(2, 3, Head::Linear),
        0,
        DType::F32,
        &Device::Cpu,
    )
    .expect("resnet");
    let enc = |dims: &[usize], dtype| net.encode(&uniform(dims, 0, dtype), false);
    assert_eq!(input_error(enc(&[1, 1, 32, 32], DType::F32)), "channels");
    assert_eq!(input_error(enc(&[1, 2, 31, 64], DType::F32)), "image size");
    assert_eq!(input_error(enc(&[2, 32, 32], DType::F32)), "shape");
    assert_eq!(input_error(enc(&[0, 2, 32, 32], DType::F32)), "batch size");
    assert_eq!(input_error(enc(&[1, 2, 32, 32], DType::F64)), "dtype");

    let dec = Network::new(
        NetworkSize::Tiny.decoder(4, ImageShape::new(1, 32, 32)),
        0,
        DType::F32,
        &Device::Cpu,
    )
    .expect("decoder");
    assert_eq!(
        input_error(dec.decode(&uniform(&[2, 5], 0, DType::F32), false)),
        "shape"
    );
    assert_eq!(
        input_error(dec.decode(&uniform(&[4], 0, DType::F32), false)),
        "shape"
    );
    assert_eq!(
        input_error(dec.decode(&uniform(&[1, 4], 0, DType::F64), false)),
        "dtype"
    );
}

#[test]
fn training_a_batch_of_one_at_the_smallest_size_is_refused() {
    // At 32 × 32 the last stage is 1 × 1: BatchNorm would see one value per channel.
    let net = Network::new(
        NetworkSize::Tiny.resnet(1, 3, Head::Linear),
        0,
        DType::F32,
        &Device::Cpu,
    )
    .expect("resnet");
    let image = uniform(&[1, 1, 32, 32], 0, DType::F32);
    assert!(net.encode(&image, true).is_err());
    assert!(net.encode(&image, false).is_ok());
}
