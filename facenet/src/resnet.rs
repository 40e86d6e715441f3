//! ResNet (He et al. 2016) with torchvision's layout and parameter names, any depth and width,
//! any number of input channels, for inputs of at least 32 × 32 pixels.

use candle_core::{DType, Module, ModuleT, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::config::{NetworkConfig, ValidConfig, Validate};
use crate::error::{FacenetError, Result};
use crate::layers::{
    BatchNorm2d, Conv2d, ConvKernel, ConvSpec, KAIMING_NORMAL_FAN_OUT, add_relu, global_avg_pool,
    linear, max_pool_3x3_stride_2, upsample_nearest_2x,
};
use crate::traits::{Encoder, check_images};

/// The residual block of a ResNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// Two 3×3 convolutions (ResNet-18/34); expansion 1.
    Basic,
    /// 1×1 reduce, 3×3, 1×1 expand (ResNet-50 and deeper); expansion 4.
    Bottleneck,
}

impl BlockKind {
    /// Ratio of a block's output channels to its "planes" (its inner width).
    pub fn expansion(self) -> usize {
        match self {
            Self::Basic => 1,
            Self::Bottleneck => 4,
        }
    }
}

/// What is applied to the final fully connected layer's output.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Head {
    /// The linear output as is.
    Linear,
    /// `scale · tanh(x)`: outputs bounded to (−scale, scale). The paper uses scale 3 for shape
    /// and expression coefficients, the range that holds 99.8 % of its N(0, 1) samples.
    TanhScaled {
        /// The bound of the outputs.
        scale: f64,
    },
}

impl Head {
    /// The paper's head for shape and expression coefficients: `3 · tanh(x)`.
    pub const PAPER_TANH: Head = Head::TanhScaled { scale: 3.0 };

    pub(crate) fn apply(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match *self {
            Head::Linear => Ok(x.clone()),
            Head::TanhScaled { scale } => x.tanh()? * scale,
        }
    }

    pub(crate) fn validate(&self, config: &'static str) -> Result<()> {
        match *self {
            Head::Linear => Ok(()),
            Head::TanhScaled { scale } if scale.is_finite() && scale > 0.0 => Ok(()),
            Head::TanhScaled { scale } => Err(FacenetError::config(
                config,
                "head",
                format!("tanh scale must be finite and positive, got {scale}"),
            )),
        }
    }
}

/// A ResNet: 7×7/2 stem convolution, 3×3/2 max pool, four stages of residual blocks (stride 1,
/// 2, 2, 2; widths w, 2w, 4w, 8w times the block expansion), global average pooling and a fully
/// connected layer to `outputs`, followed by `head`.
///
/// ```
/// use facenet::{ResNetConfig, Validate};
/// let config = ResNetConfig::new(50, 2, 17)?.with_base_width(16);
/// assert_eq!(config.feature_channels(), 16 * 8 * 4);
/// assert!(config.check().is_ok());
/// # Ok::<(), facenet::FacenetError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Block type of every stage.
    pub block: BlockKind,
    /// Blocks per stage (ResNet-50: [3, 4, 6, 3]).
    pub layers: [usize; 4],
    /// Channels of the stem and planes of the first stage (torchvision: 64).
    pub base_width: usize,
    /// Image channels C of the input.
    pub in_channels: usize,
    /// Length P of the output vector.
    pub outputs: usize,
    /// Output nonlinearity.
    pub head: Head,
    /// Convolution implementation.
    #[serde(default)]
    pub conv_kernel: ConvKernel,
}

impl ResNetConfig {
    /// Smallest accepted image side in pixels: five halvings leave one pixel.
    pub const MIN_INPUT_SIZE: usize = 32;

    /// The standard ResNet of `depth` 18, 34, 50, 101 or 152 with torchvision's width 64 and a
    /// linear head.
    ///
    /// # Errors
    /// [`FacenetError::Config`] for any other depth.
    pub fn new(depth: usize, in_channels: usize, outputs: usize) -> Result<Self> {
        let (block, layers) = match depth {
            18 => (BlockKind::Basic, [2, 2, 2, 2]),
            34 => (BlockKind::Basic, [3, 4, 6, 3]),
            50 => (BlockKind::Bottleneck, [3, 4, 6, 3]),
            101 => (BlockKind::Bottleneck, [3, 4, 23, 3]),
            152 => (BlockKind::Bottleneck, [3, 8, 36, 3]),
            other => {
                return Err(FacenetError::config(
                    "ResNetConfig",
                    "depth",
                    format!(
                        "standard depths are 18, 34, 50, 101 and 152, got {other}; set `block` and `layers` for others"
                    ),
                ));
            }
        };
        Ok(Self {
            block,
            layers,
            base_width: 64,
            in_channels,
            outputs,
            head: Head::Linear,
            conv_kernel: ConvKernel::Auto,
        })
    }

    /// The same config with another base width.
    pub fn with_base_width(self, base_width: usize) -> Self {
        Self { base_width, ..self }
    }

    /// The same config with another head.
    pub fn with_head(self, head: Head) -> Self {
        Self { head, ..self }
    }

    /// The same config with another convolution implementation.
    pub fn with_conv_kernel(self, conv_kernel: ConvKernel) -> Self {
        Self {
            conv_kernel,
            ..self
        }
    }

    /// Channels of the last stage, which the fully connected layer reads: 8 · w · expansion.
    pub fn feature_channels(&self) -> usize {
        8 * self.base_width * self.block.expansion()
    }
}

impl Validate for ResNetConfig {
    fn validate(&self) -> Result<()> {
        let err = |field, reason: String| Err(FacenetError::config("ResNetConfig", field, reason));
        if self.base_width == 0 {
            return err("base_width", "must be at least 1".into());
        }
        if self.in_channels == 0 {
            return err("in_channels", "must be at least 1".into());
        }
        if self.outputs == 0 {
            return err("outputs", "must be at least 1".into());
        }
        if self.layers.contains(&0) {
            return err(
                "layers",
                format!(
                    "every stage needs at least one block, got {:?}",
                    self.layers
                ),
            );
        }
        self.head.validate("ResNetConfig")
    }
}

/// How a residual block changes the spatial size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resample {
    /// Same size.
    Keep,
    /// Stride 2 in the block's 3×3 convolution and shortcut: ⌈n/2⌉.
    Down,
    /// Nearest ×2 upsampling of the block's input, cropped to `height` × `width`.
    Up { height: usize, width: usize },
}

/// A residual block (basic or bottleneck) from `c_in` to `c_out` channels with `planes` inner
/// channels, shared by the ResNet encoder and the reversed-ResNet decoder.
#[derive(Debug, Clone)]
pub(crate) struct ResidualBlock {
    convs: Vec<(Conv2d, BatchNorm2d)>,
    shortcut: Option<(Conv2d, BatchNorm2d)>,
    resample: Resample,
}

/// The parameters of one residual block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockSpec {
    pub kind: BlockKind,
    pub c_in: usize,
    pub planes: usize,
    pub c_out: usize,
    pub resample: Resample,
    pub conv_kernel: ConvKernel,
}

impl ResidualBlock {
    /// Builds the block under `vb`: `conv1`/`bn1`, `conv2`/`bn2` (and `conv3`/`bn3` for a
    /// bottleneck); a projection shortcut `{shortcut_name}.0` (1×1 conv) and `{shortcut_name}.1`
    /// (BatchNorm) when the size or channel count changes.
    pub fn new(vb: VarBuilder, spec: BlockSpec, shortcut_name: &str) -> candle_core::Result<Self> {
        let stride = if spec.resample == Resample::Down {
            2
        } else {
            1
        };
        let conv = |i: usize,
                    c_in: usize,
                    c_out: usize,
                    k: usize,
                    s: usize|
         -> candle_core::Result<(Conv2d, BatchNorm2d)> {
            Ok((
                Conv2d::new(
                    vb.pp(format!("conv{i}")),
                    ConvSpec::new(c_in, c_out, k, s),
                    KAIMING_NORMAL_FAN_OUT,
                    spec.conv_kernel,
                )?,
                BatchNorm2d::new(vb.pp(format!("bn{i}")), c_out)?,
            ))
        };
        let convs = match spec.kind {
            BlockKind::Basic => vec![
                conv(1, spec.c_in, spec.planes, 3, stride)?,
                conv(2, spec.planes, spec.c_out, 3, 1)?,
            ],
            // torchvision ResNet v1.5: the stride sits in the 3×3 convolution.
            BlockKind::Bottleneck => vec![
                conv(1, spec.c_in, spec.planes, 1, 1)?,
                conv(2, spec.planes, spec.planes, 3, stride)?,
                conv(3, spec.planes, spec.c_out, 1, 1)?,
            ],
        };
        let shortcut = if stride != 1 || spec.c_in != spec.c_out {
            let vb = vb.pp(shortcut_name);
            Some((
                Conv2d::new(
                    vb.pp("0"),
                    ConvSpec::new(spec.c_in, spec.c_out, 1, stride),
                    KAIMING_NORMAL_FAN_OUT,
                    spec.conv_kernel,
                )?,
                BatchNorm2d::new(vb.pp("1"), spec.c_out)?,
            ))
        } else {
            None
        };
        Ok(Self {
            convs,
            shortcut,
            resample: spec.resample,
        })
    }
}

impl ModuleT for ResidualBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let x = match self.resample {
            Resample::Up { height, width } => upsample_nearest_2x(x)?
                .narrow(2, 0, height)?
                .narrow(3, 0, width)?,
            Resample::Keep | Resample::Down => x.clone(),
        };
        let mut y = x.clone();
        let last = self.convs.len() - 1;
        for (i, (conv, bn)) in self.convs.iter().enumerate() {
            let z = conv.forward(&y)?;
            y = if i == last {
                bn.forward_t(&z, train)?
            } else {
                bn.forward_relu_t(&z, train)?
            };
        }
        let identity = match &self.shortcut {
            Some((conv, bn)) => bn.forward_t(&conv.forward(&x)?, train)?,
            None => x,
        };
        add_relu(&y, &identity)
    }
}

/// The stages of residual blocks: `layer{1..4}.{j}`.
pub(crate) type Stages = Vec<Vec<ResidualBlock>>;

pub(crate) fn forward_stages(
    stages: &Stages,
    x: &Tensor,
    train: bool,
) -> candle_core::Result<Tensor> {
    let mut x = x.clone();
    for block in stages.iter().flatten() {
        x = block.forward_t(&x, train)?;
    }
    Ok(x)
}

/// A ResNet built from a [`ResNetConfig`]; parameters named as in torchvision (`conv1.weight`,
/// `layer2.0.downsample.0.weight`, `fc.bias`, ...).
#[derive(Debug, Clone)]
pub struct ResNet {
    stem: (Conv2d, BatchNorm2d),
    stages: Stages,
    fc: candle_nn::Linear,
    config: ResNetConfig,
    dtype: DType,
}

impl ResNet {
    /// Builds the network's parameters under `vb`.
    ///
    /// # Errors
    /// A candle error if a parameter exists with another shape.
    pub fn new(config: &ValidConfig<ResNetConfig>, vb: VarBuilder) -> Result<Self> {
        let c = &**config;
        let w = c.base_width;
        let stem = (
            Conv2d::new(
                vb.pp("conv1"),
                ConvSpec::new(c.in_channels, w, 7, 2),
                KAIMING_NORMAL_FAN_OUT,
                c.conv_kernel,
            )?,
            BatchNorm2d::new(vb.pp("bn1"), w)?,
        );
        let e = c.block.expansion();
        let mut c_in = w;
        let mut stages = Vec::with_capacity(4);
        for (stage, &blocks) in c.layers.iter().enumerate() {
            let planes = w << stage;
            let vb_stage = vb.pp(format!("layer{}", stage + 1));
            let mut stage_blocks = Vec::with_capacity(blocks);
            for j in 0..blocks {
                let resample = if stage > 0 && j == 0 {
                    Resample::Down
                } else {
                    Resample::Keep
                };
                let spec = BlockSpec {
                    kind: c.block,
                    c_in,
                    planes,
                    c_out: planes * e,
                    resample,
                    conv_kernel: c.conv_kernel,
                };
                stage_blocks.push(ResidualBlock::new(vb_stage.pp(j), spec, "downsample")?);
                c_in = planes * e;
            }
            stages.push(stage_blocks);
        }
        let fc = linear(vb.pp("fc"), c_in, c.outputs)?;
        Ok(Self {
            stem,
            stages,
            fc,
            config: c.clone(),
            dtype: vb.dtype(),
        })
    }

    /// The config the network was built from.
    pub fn config(&self) -> &ResNetConfig {
        &self.config
    }

    /// The pooled features before the fully connected layer: (B, [`ResNetConfig::feature_channels`]).
    ///
    /// # Errors
    /// A candle error from the forward pass.
    pub fn features_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let (conv, bn) = &self.stem;
        let x = bn.forward_relu_t(&conv.forward(x)?, train)?;
        let x = max_pool_3x3_stride_2(&x)?;
        let x = forward_stages(&self.stages, &x, train)?;
        global_avg_pool(&x)
    }
}

impl ModuleT for ResNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let features = self.features_t(x, train)?;
        self.config.head.apply(&self.fc.forward(&features)?)
    }
}

impl Encoder for ResNet {
    fn encode(&self, images: &Tensor, train: bool) -> Result<Tensor> {
        check_images(
            "ResNet",
            images,
            self.config.in_channels,
            ResNetConfig::MIN_INPUT_SIZE,
            self.dtype,
        )?;
        Ok(self.forward_t(images, train)?)
    }

    fn output_dim(&self) -> usize {
        self.config.outputs
    }

    fn input_channels(&self) -> usize {
        self.config.in_channels
    }
}

impl NetworkConfig for ResNetConfig {
    type Module = ResNet;
    const KIND: &'static str = "resnet";

    fn build(config: &ValidConfig<Self>, vb: VarBuilder) -> Result<ResNet> {
        ResNet::new(config, vb)
    }
}
