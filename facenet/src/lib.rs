//! # facenet
//!
//! Encoders and a learned renderer in candle, trainable on a CPU or, with the `cuda` feature, a
//! GPU ([`ComputeDevice`]). The crate maps images (B, C, H, W) to vectors (B, P) and back; it
//! knows nothing of radar or faces beyond the names of the paper's encoder branches.
//!
//! - [`Encoder`]: images → vectors, implemented by [`ResNet`], [`AlexNet`], [`BranchedEncoder`]
//!   (the paper's face encoder: two ResNets and an AlexNet side by side) and [`Network`].
//! - [`ImageDecoder`]: vectors → images, implemented by the reversed-ResNet [`Decoder`].
//! - [`MeshAutoencoder`]: COMA's spectral graph-convolution autoencoder ([`ChebConv`] on a
//!   [`GraphPyramid`]), node features (B, N, C) → code (B, Z) → node features; the graph is the
//!   caller's (abs-fit builds it from a face model's mesh).
//! - [`Mlp`]: a small fully connected network with SiLU activations, vectors → vectors.
//! - Configs are validated before use ([`Validate::check`]), and [`NetworkSize`] names four sizes.
//! - [`Network`] owns a module and its parameters (seeded initialisation, freezing,
//!   safetensors); [`Trainer`] trains one network with [`Adam`] and a [`LinearSchedule`],
//!   reports to a [`TrainObserver`] and writes atomic [`Checkpoint`]s that resume exactly.
//!
//! candle 0.11 cannot differentiate 3×3/2 max pooling and computes convolution input gradients
//! with a slow loop on the CPU; [`max_pool_3x3_stride_2`], [`upsample_nearest_2x`] and the
//! im2col convolution ([`ConvKernel`]) work around both.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use facenet::{Encoder, ImageDecoder, ImageShape, Network, OutputGroups, NetworkSize};
//!
//! let groups = OutputGroups { shape: 10, expression: 7, other: 9 };
//! let encoder = Network::new(NetworkSize::Tiny.face_encoder(2, groups), 1, DType::F32, &Device::Cpu)?;
//! let decoder = Network::new(
//!     NetworkSize::Tiny.decoder(26, ImageShape::new(2, 32, 32)),
//!     2,
//!     DType::F32,
//!     &Device::Cpu,
//! )?;
//! let images = Tensor::zeros((3, 2, 32, 32), DType::F32, &Device::Cpu)?;
//! let params = encoder.encode(&images, false)?;
//! assert_eq!(params.dims(), &[3, 26]);
//! assert_eq!(decoder.decode(&params, false)?.dims(), &[3, 2, 32, 32]);
//! # Ok::<(), facenet::FacenetError>(())
//! ```

mod alexnet;
mod branched;
mod checkpoint;
mod config;
mod decoder;
mod device;
mod error;
mod graph;
mod layers;
mod mlp;
mod network;
mod optim;
mod params;
mod resnet;
mod size;
mod train;
mod trainer_config;
mod traits;

pub use alexnet::{AlexNet, AlexNetConfig};
pub use branched::{BranchArchitecture, BranchedEncoder, BranchedEncoderConfig, EncoderBranch};
pub use checkpoint::{Checkpoint, LoadedCheckpoint, RngState, TrainingState};
pub use config::{ImageShape, NetworkConfig, ValidConfig, Validate};
pub use decoder::{Decoder, DecoderConfig};
pub use device::ComputeDevice;
pub use error::{FacenetError, Result};
pub use graph::{
    ChebConv, GraphOperators, GraphPyramid, MeshAutoencoder, MeshAutoencoderConfig, SparseMatrix,
    scaled_laplacian,
};
pub use layers::{
    BatchNorm2d, Conv2d, ConvKernel, ConvSpec, KAIMING_NORMAL_FAN_OUT, global_avg_pool, linear,
    max_pool_3x3_stride_2, pytorch_default_init, upsample_nearest_2x,
};
pub use mlp::{Mlp, MlpConfig};
pub use network::Network;
pub use optim::{Adam, AdamConfig, AdamState, LinearSchedule};
pub use params::{ParamStore, is_running_statistic};
pub use resnet::{BlockKind, Head, ResNet, ResNetConfig};
pub use size::{NetworkSize, OutputGroups, PoseNetwork};
pub use train::{
    EpochReport, LossHistory, MiniBatch, StepReport, TrainObserver, Trainer, TrainingSummary,
};
pub use trainer_config::TrainerConfig;
pub use traits::{Encoder, ImageDecoder};
