//! Several encoders side by side on the same images, their outputs concatenated: the paper's face
//! encoder (§3.3: two ResNets for shape and expression, an AlexNet for pose and the rendering
//! parameters) is one instance.

use std::ops::Range;

use candle_core::{ModuleT, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::alexnet::{AlexNet, AlexNetConfig};
use crate::config::{NetworkConfig, ValidConfig, Validate};
use crate::error::{FacenetError, Result};
use crate::resnet::{Head, ResNet, ResNetConfig};
use crate::traits::{Encoder, check_images};

/// The architecture of one branch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "architecture")]
pub enum BranchArchitecture {
    /// A [`ResNet`].
    #[serde(rename = "resnet")]
    ResNet(ResNetConfig),
    /// An [`AlexNet`].
    #[serde(rename = "alexnet")]
    AlexNet(AlexNetConfig),
}

impl BranchArchitecture {
    /// Length of the branch's output.
    pub fn outputs(&self) -> usize {
        match self {
            Self::ResNet(c) => c.outputs,
            Self::AlexNet(c) => c.outputs,
        }
    }

    fn in_channels(&self) -> usize {
        match self {
            Self::ResNet(c) => c.in_channels,
            Self::AlexNet(c) => c.in_channels,
        }
    }

    fn min_input_size(&self) -> usize {
        match self {
            Self::ResNet(_) => ResNetConfig::MIN_INPUT_SIZE,
            Self::AlexNet(_) => AlexNetConfig::MIN_INPUT_SIZE,
        }
    }

    fn validate(&self) -> Result<()> {
        match self {
            Self::ResNet(c) => c.validate(),
            Self::AlexNet(c) => c.validate(),
        }
    }
}

/// One named branch: its parameters live under `{name}.` (e.g. `shape.layer1.0.conv1.weight`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderBranch {
    /// Name of the branch and prefix of its parameters; letters, digits and `_` only.
    pub name: String,
    /// Its network.
    pub network: BranchArchitecture,
}

/// Configuration of a [`BranchedEncoder`]: the output is the concatenation of the branches'
/// outputs in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BranchedEncoderConfig {
    /// The branches, in output order.
    pub branches: Vec<EncoderBranch>,
}

impl BranchedEncoderConfig {
    /// The paper's face encoder: branches `shape` and `expression` (ResNets, whose heads should be
    /// `3 · tanh`) and `pose` (an AlexNet predicting everything else). Output: [shape |
    /// expression | pose], of lengths given by the three configs.
    pub fn face(shape: ResNetConfig, expression: ResNetConfig, pose: AlexNetConfig) -> Self {
        Self {
            branches: vec![
                EncoderBranch {
                    name: "shape".into(),
                    network: BranchArchitecture::ResNet(shape),
                },
                EncoderBranch {
                    name: "expression".into(),
                    network: BranchArchitecture::ResNet(expression),
                },
                EncoderBranch {
                    name: "pose".into(),
                    network: BranchArchitecture::AlexNet(pose),
                },
            ],
        }
    }

    /// Total output length P.
    pub fn output_dim(&self) -> usize {
        self.branches.iter().map(|b| b.network.outputs()).sum()
    }

    /// Each branch's name and its columns of the output.
    pub fn output_groups(&self) -> Vec<(String, Range<usize>)> {
        let mut start = 0;
        self.branches
            .iter()
            .map(|b| {
                let end = start + b.network.outputs();
                let group = (b.name.clone(), start..end);
                start = end;
                group
            })
            .collect()
    }

    /// The same config with every branch's head replaced by `head` where `select(name)` holds.
    pub fn with_head_where(mut self, head: Head, select: impl Fn(&str) -> bool) -> Self {
        for branch in &mut self.branches {
            if select(&branch.name) {
                match &mut branch.network {
                    BranchArchitecture::ResNet(c) => c.head = head,
                    BranchArchitecture::AlexNet(c) => c.head = head,
                }
            }
        }
        self
    }

    /// The same config with every branch using `kernel` for its convolutions.
    pub fn with_conv_kernel(mut self, kernel: crate::layers::ConvKernel) -> Self {
        for branch in &mut self.branches {
            match &mut branch.network {
                BranchArchitecture::ResNet(c) => c.conv_kernel = kernel,
                BranchArchitecture::AlexNet(c) => c.conv_kernel = kernel,
            }
        }
        self
    }
}

impl Validate for BranchedEncoderConfig {
    fn validate(&self) -> Result<()> {
        let err = |field, reason: String| {
            Err(FacenetError::config("BranchedEncoderConfig", field, reason))
        };
        let Some(first) = self.branches.first() else {
            return err("branches", "needs at least one branch".into());
        };
        let channels = first.network.in_channels();
        for (i, branch) in self.branches.iter().enumerate() {
            let name = &branch.name;
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return err(
                    "branches",
                    format!("branch {i} name '{name}' must be non-empty letters, digits and '_'"),
                );
            }
            if self.branches[..i].iter().any(|b| &b.name == name) {
                return err("branches", format!("branch name '{name}' appears twice"));
            }
            if branch.network.in_channels() != channels {
                return err(
                    "branches",
                    format!(
                        "branch '{name}' reads {} channels, branch '{}' reads {channels}",
                        branch.network.in_channels(),
                        first.name
                    ),
                );
            }
            branch.network.validate()?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum BranchNetwork {
    ResNet(ResNet),
    AlexNet(AlexNet),
}

impl ModuleT for BranchNetwork {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        match self {
            Self::ResNet(n) => n.forward_t(x, train),
            Self::AlexNet(n) => n.forward_t(x, train),
        }
    }
}

/// Encoders side by side, built from a [`BranchedEncoderConfig`].
#[derive(Debug, Clone)]
pub struct BranchedEncoder {
    branches: Vec<BranchNetwork>,
    config: BranchedEncoderConfig,
    dtype: candle_core::DType,
}

impl BranchedEncoder {
    /// Builds every branch under `vb.pp(name)`.
    ///
    /// # Errors
    /// As the branches' constructors.
    pub fn new(config: &ValidConfig<BranchedEncoderConfig>, vb: VarBuilder) -> Result<Self> {
        let branches = config
            .branches
            .iter()
            .map(|branch| {
                let vb = vb.pp(&branch.name);
                Ok(match &branch.network {
                    BranchArchitecture::ResNet(c) => {
                        BranchNetwork::ResNet(ResNet::new(&c.clone().check()?, vb)?)
                    }
                    BranchArchitecture::AlexNet(c) => {
                        BranchNetwork::AlexNet(AlexNet::new(&c.clone().check()?, vb)?)
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            branches,
            config: (**config).clone(),
            dtype: vb.dtype(),
        })
    }

    /// The config the network was built from.
    pub fn config(&self) -> &BranchedEncoderConfig {
        &self.config
    }
}

impl ModuleT for BranchedEncoder {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let outputs = self
            .branches
            .iter()
            .map(|b| b.forward_t(x, train))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Tensor::cat(&outputs, 1)
    }
}

impl Encoder for BranchedEncoder {
    fn encode(&self, images: &Tensor, train: bool) -> Result<Tensor> {
        let min_size = self
            .config
            .branches
            .iter()
            .map(|b| b.network.min_input_size())
            .max()
            .unwrap_or(0);
        check_images(
            "BranchedEncoder",
            images,
            self.input_channels(),
            min_size,
            self.dtype,
        )?;
        Ok(self.forward_t(images, train)?)
    }

    fn output_dim(&self) -> usize {
        self.config.output_dim()
    }

    fn input_channels(&self) -> usize {
        self.config
            .branches
            .first()
            .map_or(0, |b| b.network.in_channels())
    }
}

impl NetworkConfig for BranchedEncoderConfig {
    type Module = BranchedEncoder;
    const KIND: &'static str = "branched_encoder";

    fn build(config: &ValidConfig<Self>, vb: VarBuilder) -> Result<BranchedEncoder> {
        BranchedEncoder::new(config, vb)
    }
}
