//! Config validation, serialisation and presets.

use facenet::{
    AlexNetConfig, BranchedEncoderConfig, ComputeDevice, DecoderConfig, FacenetError, Head,
    ImageShape, LinearSchedule, NetworkSize, OutputGroups, PoseNetwork, ResNetConfig, Validate,
};

fn config_field<T: std::fmt::Debug>(result: facenet::Result<T>) -> &'static str {
    match result {
        Err(FacenetError::Config { field, .. }) => field,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn invalid_network_configs_are_rejected_naming_the_field() {
    let resnet = NetworkSize::Tiny.resnet(1, 4, Head::Linear);
    assert_eq!(
        config_field(
            ResNetConfig {
                base_width: 0,
                ..resnet.clone()
            }
            .check()
        ),
        "base_width"
    );
    assert_eq!(
        config_field(
            ResNetConfig {
                in_channels: 0,
                ..resnet.clone()
            }
            .check()
        ),
        "in_channels"
    );
    assert_eq!(
        config_field(
            ResNetConfig {
                outputs: 0,
                ..resnet.clone()
            }
            .check()
        ),
        "outputs"
    );
    assert_eq!(
        config_field(
            ResNetConfig {
                layers: [1, 0, 1, 1],
                ..resnet.clone()
            }
            .check()
        ),
        "layers"
    );
    assert_eq!(
        config_field(
            resnet
                .clone()
                .with_head(Head::TanhScaled { scale: -3.0 })
                .check()
        ),
        "head"
    );
    assert_eq!(config_field(ResNetConfig::new(42, 1, 1)), "depth");

    let alex = NetworkSize::Tiny.alexnet(1, 4);
    assert_eq!(
        config_field(
            AlexNetConfig {
                hidden: 0,
                ..alex.clone()
            }
            .check()
        ),
        "hidden"
    );
    assert_eq!(
        config_field(
            AlexNetConfig {
                width: 0,
                ..alex.clone()
            }
            .check()
        ),
        "width"
    );

    let decoder = NetworkSize::Tiny.decoder(5, ImageShape::new(1, 32, 32));
    assert_eq!(
        config_field(
            DecoderConfig {
                params: 0,
                ..decoder.clone()
            }
            .check()
        ),
        "params"
    );
    assert_eq!(
        config_field(
            DecoderConfig {
                output: ImageShape::new(0, 32, 32),
                ..decoder
            }
            .check()
        ),
        "output"
    );

    let mut face = NetworkSize::Tiny.face_encoder(
        2,
        OutputGroups {
            shape: 1,
            expression: 1,
            other: 1,
        },
    );
    face.branches[1].name = "shape".into();
    assert_eq!(config_field(face.check()), "branches");
    let mixed = BranchedEncoderConfig::face(
        NetworkSize::Tiny.resnet(2, 1, Head::PAPER_TANH),
        NetworkSize::Tiny.resnet(1, 1, Head::PAPER_TANH),
        NetworkSize::Tiny.alexnet(2, 1),
    );
    assert_eq!(config_field(mixed.check()), "branches");
    assert_eq!(
        config_field(BranchedEncoderConfig { branches: vec![] }.check()),
        "branches"
    );
}

#[test]
fn invalid_schedules_are_rejected() {
    assert_eq!(
        config_field(LinearSchedule::constant(0.0).check()),
        "start_lr"
    );
    assert_eq!(
        config_field(LinearSchedule::linear(0.01, f64::NAN, 3).check()),
        "end_lr"
    );
}

#[test]
fn configs_survive_json() {
    let face = NetworkSize::Quick.face_encoder(
        2,
        OutputGroups {
            shape: 10,
            expression: 7,
            other: 9,
        },
    );
    let text = serde_json::to_string(&face).expect("serialise");
    let back: BranchedEncoderConfig = serde_json::from_str(&text).expect("parse");
    assert_eq!(back, face);
    let decoder = NetworkSize::Paper.decoder(26, ImageShape::new(2, 64, 64));
    let back: DecoderConfig =
        serde_json::from_str(&serde_json::to_string(&decoder).expect("serialise")).expect("parse");
    assert_eq!(back, decoder);
}

#[test]
fn face_encoder_groups_follow_the_callers_sizes() {
    let face = NetworkSize::Tiny.face_encoder(
        1,
        OutputGroups {
            shape: 10,
            expression: 7,
            other: 9,
        },
    );
    let groups = face.output_groups();
    let names: Vec<&str> = groups.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["shape", "expression", "pose"]);
    assert_eq!(groups[0].1, 0..10);
    assert_eq!(groups[1].1, 10..17);
    assert_eq!(groups[2].1, 17..26);
    assert_eq!(face.output_dim(), 26);
}

#[test]
fn presets_parse_from_their_names() {
    for preset in NetworkSize::ALL {
        assert_eq!(
            preset.name().parse::<NetworkSize>().expect("known name"),
            preset
        );
    }
    assert!("huge".parse::<NetworkSize>().is_err());
    for pose in PoseNetwork::ALL {
        assert_eq!(
            pose.name().parse::<PoseNetwork>().expect("known name"),
            pose
        );
    }
    let unknown = "vgg".parse::<PoseNetwork>().expect_err("unknown name");
    assert!(unknown.to_string().contains("'vgg'"), "{unknown}");
}

#[test]
fn devices_parse_print_and_open() {
    for device in [
        ComputeDevice::Cpu,
        ComputeDevice::Cuda(0),
        ComputeDevice::Cuda(3),
    ] {
        assert_eq!(
            device
                .to_string()
                .parse::<ComputeDevice>()
                .expect("own name"),
            device
        );
    }
    for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", ""] {
        let error = bad.parse::<ComputeDevice>().expect_err(bad);
        assert_eq!(config_field(Err::<(), _>(error)), "name", "{bad}");
    }
    assert!(ComputeDevice::Cpu.open().expect("the CPU").is_cpu());
    #[cfg(not(feature = "cuda"))]
    {
        let error = ComputeDevice::Cuda(0)
            .open()
            .expect_err("no CUDA in this build");
        assert!(error.to_string().contains("--features cuda"), "{error}");
    }
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<facenet::Network<ResNetConfig>>();
    check::<facenet::Network<BranchedEncoderConfig>>();
    check::<facenet::Network<DecoderConfig>>();
    check::<facenet::ResNet>();
    check::<facenet::AlexNet>();
    check::<facenet::Decoder>();
    check::<facenet::BranchedEncoder>();
    check::<facenet::Adam>();
    check::<facenet::Trainer<DecoderConfig>>();
    check::<facenet::ParamStore>();
    check::<facenet::Checkpoint>();
    check::<facenet::TrainingState>();
    check::<facenet::FacenetError>();
    check::<facenet::NetworkSize>();
}
