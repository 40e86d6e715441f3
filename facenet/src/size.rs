//! Named network sizes: one config type per network, four points in it.

use serde::{Deserialize, Serialize};

use crate::alexnet::AlexNetConfig;
use crate::branched::{BranchArchitecture, BranchedEncoderConfig};
use crate::config::ImageShape;
use crate::decoder::DecoderConfig;
use crate::error::{FacenetError, Result};
use crate::resnet::{BlockKind, Head, ResNetConfig};

/// Network sizes for a compute budget.
///
/// | preset | ResNet encoders | AlexNet | decoder | for |
/// |---|---|---|---|---|
/// | `tiny` | basic `[1,1,1,1]`, w 4 | w 4, hidden 16 | basic `[1,1,1,1]`, w 4 | tests: seconds |
/// | `quick` | basic `[1,1,1,1]`, w 8 | w 8, hidden 64 | basic `[1,1,1,1]`, w 8 | a small end-to-end run on 2 cores |
/// | `cpu` | basic `[1,1,1,1]`, w 16 | w 16, hidden 128 | basic `[1,1,1,1]`, w 16 | the full reproduction on 2 cores |
/// | `paper` | ResNet-50 (bottleneck `[3,4,6,3]`, w 64) | w 64, hidden 4096 | reversed ResNet-50 | a GPU (`--features cuda`) |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkSize {
    /// For unit and integration tests.
    Tiny,
    /// Small networks for a run of minutes on 2 CPU cores.
    Quick,
    /// Networks sized for the full reproduction on 2 CPU cores.
    Cpu,
    /// The published architectures (ResNet-50, AlexNet).
    Paper,
}

/// How many outputs each branch of the face encoder has; facenet attaches no meaning to the
/// groups beyond their order [shape | expression | other].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OutputGroups {
    /// Outputs of the first ResNet (bounded by 3 · tanh).
    pub shape: usize,
    /// Outputs of the second ResNet (bounded by 3 · tanh).
    pub expression: usize,
    /// Outputs of the AlexNet (linear).
    pub other: usize,
}

impl NetworkSize {
    /// Every preset, smallest first.
    pub const ALL: [NetworkSize; 4] = [
        NetworkSize::Tiny,
        NetworkSize::Quick,
        NetworkSize::Cpu,
        NetworkSize::Paper,
    ];

    /// The preset's name as written in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tiny => "tiny",
            Self::Quick => "quick",
            Self::Cpu => "cpu",
            Self::Paper => "paper",
        }
    }

    /// (block, blocks per stage, base width) of the preset's ResNets and decoder.
    fn resnet_shape(self) -> (BlockKind, [usize; 4], usize) {
        match self {
            Self::Tiny => (BlockKind::Basic, [1, 1, 1, 1], 4),
            Self::Quick => (BlockKind::Basic, [1, 1, 1, 1], 8),
            Self::Cpu => (BlockKind::Basic, [1, 1, 1, 1], 16),
            Self::Paper => (BlockKind::Bottleneck, [3, 4, 6, 3], 64),
        }
    }

    /// (width, hidden) of the preset's AlexNet.
    fn alexnet_widths(self) -> (usize, usize) {
        match self {
            Self::Tiny => (4, 16),
            Self::Quick => (8, 64),
            Self::Cpu => (16, 128),
            Self::Paper => (64, 4096),
        }
    }

    /// The preset's ResNet from `in_channels` image channels to `outputs` values.
    pub fn resnet(self, in_channels: usize, outputs: usize, head: Head) -> ResNetConfig {
        let (block, layers, base_width) = self.resnet_shape();
        ResNetConfig {
            block,
            layers,
            base_width,
            in_channels,
            outputs,
            head,
            conv_kernel: Default::default(),
        }
    }

    /// The preset's AlexNet from `in_channels` image channels to `outputs` values, linear head.
    pub fn alexnet(self, in_channels: usize, outputs: usize) -> AlexNetConfig {
        let (width, hidden) = self.alexnet_widths();
        AlexNetConfig::new(in_channels, outputs).with_widths(width, hidden)
    }

    /// The paper's face encoder at this size: ResNets for the `shape` and `expression` groups
    /// with `3 · tanh` heads, an AlexNet for the `other` group.
    pub fn face_encoder(self, in_channels: usize, groups: OutputGroups) -> BranchedEncoderConfig {
        self.face_encoder_with(in_channels, groups, PoseNetwork::AlexNet)
    }

    /// The face encoder at this size with `pose` as the network of the `other` group (linear
    /// head, this preset's width); [`PoseNetwork::AlexNet`] gives [`NetworkSize::face_encoder`].
    ///
    /// ```
    /// use facenet::{BranchArchitecture, OutputGroups, PoseNetwork, NetworkSize};
    ///
    /// let groups = OutputGroups { shape: 10, expression: 5, other: 8 };
    /// let config = NetworkSize::Quick.face_encoder_with(1, groups, PoseNetwork::ResNet);
    /// assert!(matches!(config.branches[2].network, BranchArchitecture::ResNet(_)));
    /// assert_eq!(config.output_dim(), 23);
    /// ```
    pub fn face_encoder_with(
        self,
        in_channels: usize,
        groups: OutputGroups,
        pose: PoseNetwork,
    ) -> BranchedEncoderConfig {
        let mut config = BranchedEncoderConfig::face(
            self.resnet(in_channels, groups.shape, Head::PAPER_TANH),
            self.resnet(in_channels, groups.expression, Head::PAPER_TANH),
            self.alexnet(in_channels, groups.other),
        );
        if pose == PoseNetwork::ResNet {
            config.branches[2].network =
                BranchArchitecture::ResNet(self.resnet(in_channels, groups.other, Head::Linear));
        }
        config
    }

    /// The preset's decoder from `params` values to images of shape `output`.
    pub fn decoder(self, params: usize, output: ImageShape) -> DecoderConfig {
        let (block, layers, base_width) = self.resnet_shape();
        DecoderConfig::new(params, output).with_blocks(block, layers, base_width)
    }
}

impl std::fmt::Display for NetworkSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for NetworkSize {
    type Err = FacenetError;

    fn from_str(s: &str) -> Result<Self> {
        by_name(
            &Self::ALL,
            Self::name,
            s,
            "NetworkSize",
            "tiny, quick, cpu or paper",
        )
    }
}

/// The network of the face encoder's `other` branch (pose and rendering parameters).
///
/// The paper uses an AlexNet. On the small CPU presets, whose 32 × 32 images the AlexNet's
/// 11 × 11 / 4 stem and three pools reduce to a single cell, a ResNet of the preset's width
/// learns the head rotation that the AlexNet misses (the budget docs of `radar-face reproduce`
/// have the measurement).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoseNetwork {
    /// The paper's AlexNet ([`NetworkSize::alexnet`]).
    #[default]
    AlexNet,
    /// A ResNet of the preset's size with a linear head ([`NetworkSize::resnet`]).
    ResNet,
}

impl PoseNetwork {
    /// Every choice.
    pub const ALL: [PoseNetwork; 2] = [Self::AlexNet, Self::ResNet];

    /// The choice's name: `alexnet` or `resnet`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AlexNet => "alexnet",
            Self::ResNet => "resnet",
        }
    }
}

impl std::fmt::Display for PoseNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for PoseNetwork {
    type Err = FacenetError;

    fn from_str(s: &str) -> Result<Self> {
        by_name(
            &Self::ALL,
            Self::name,
            s,
            "PoseNetwork",
            "alexnet or resnet",
        )
    }
}

/// The member of `all` whose name is `s`, or a config error of `config` that lists `expected`.
fn by_name<T: Copy>(
    all: &[T],
    name: fn(T) -> &'static str,
    s: &str,
    config: &'static str,
    expected: &str,
) -> Result<T> {
    all.iter().copied().find(|&t| name(t) == s).ok_or_else(|| {
        FacenetError::config(
            config,
            "name",
            format!("unknown {config} '{s}', expected {expected}"),
        )
    })
}
