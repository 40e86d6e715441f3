//! The learned renderer: a ResNet run backwards, from a parameter vector to an image (§3.4 of
//! the paper: "a ResNet-50, with its layers ordered in the opposite direction. A fully connected
//! layer is employed to map the input to the first convolutional layer").

use candle_core::{DType, Module, ModuleT, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::config::{ImageShape, NetworkConfig, ValidConfig, Validate};
use crate::error::{FacenetError, Result};
use crate::layers::{
    BatchNorm2d, Conv2d, ConvKernel, ConvSpec, KAIMING_NORMAL_FAN_OUT, linear,
    pytorch_default_init, upsample_nearest_2x,
};
use crate::resnet::{BlockKind, BlockSpec, Resample, ResidualBlock, Stages, forward_stages};
use crate::traits::{ImageDecoder, check_vectors};

/// Configuration of a [`Decoder`]: the mirror image of a [`crate::ResNetConfig`] encoder with the
/// same `block`, `layers` and `base_width` for images of shape `output`.
///
/// The encoder's spatial sizes are s₀ = H, sₖ₊₁ = ⌈sₖ/2⌉ (stem convolution, max pool, stages 2–4).
/// The decoder starts from s₅ and retraces them: `fc` maps the P inputs to an 8w·e × s₅ feature
/// map; stages 4, 3, 2 end with a block that upsamples (nearest ×2, cropped to sₖ) and narrows
/// the channels to those of the stage before; stage 1 ends narrowing to w; then nearest ×2, a
/// 3×3 convolution + BatchNorm + ReLU (`conv1`/`bn1`), nearest ×2 and a 3×3 convolution with bias
/// to C output channels (`conv_out`), with a linear output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecoderConfig {
    /// Length P of the input vector.
    pub params: usize,
    /// Shape (C, H, W) of the output images.
    pub output: ImageShape,
    /// Block type of every stage.
    pub block: BlockKind,
    /// Blocks per stage, in the encoder's order (stage 1 first); run in reverse.
    pub layers: [usize; 4],
    /// Channels of the last convolutions and planes of stage 1.
    pub base_width: usize,
    /// Convolution implementation.
    #[serde(default)]
    pub conv_kernel: ConvKernel,
}

impl DecoderConfig {
    /// The reversed ResNet-50 of the paper (bottleneck, [3, 4, 6, 3], width 64).
    pub fn new(params: usize, output: ImageShape) -> Self {
        Self {
            params,
            output,
            block: BlockKind::Bottleneck,
            layers: [3, 4, 6, 3],
            base_width: 64,
            conv_kernel: ConvKernel::Auto,
        }
    }

    /// The same config with another block type, stage depths and width.
    pub fn with_blocks(self, block: BlockKind, layers: [usize; 4], base_width: usize) -> Self {
        Self {
            block,
            layers,
            base_width,
            ..self
        }
    }

    /// The same config with another convolution implementation.
    pub fn with_conv_kernel(self, conv_kernel: ConvKernel) -> Self {
        Self {
            conv_kernel,
            ..self
        }
    }

    /// The encoder's spatial sizes s₀ … s₅ as (height, width).
    pub fn spatial_sizes(&self) -> [(usize, usize); 6] {
        let mut sizes = [(self.output.height, self.output.width); 6];
        for k in 1..6 {
            let (h, w) = sizes[k - 1];
            sizes[k] = (h.div_ceil(2), w.div_ceil(2));
        }
        sizes
    }
}

impl Validate for DecoderConfig {
    fn validate(&self) -> Result<()> {
        let err = |field, reason: String| Err(FacenetError::config("DecoderConfig", field, reason));
        if self.params == 0 {
            return err("params", "must be at least 1".into());
        }
        let ImageShape {
            channels,
            height,
            width,
        } = self.output;
        if channels == 0 || height == 0 || width == 0 {
            return err(
                "output",
                format!("every dimension must be at least 1, got {}", self.output),
            );
        }
        if self.base_width == 0 {
            return err("base_width", "must be at least 1".into());
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
        Ok(())
    }
}

/// The reversed-ResNet decoder built from a [`DecoderConfig`].
#[derive(Debug, Clone)]
pub struct Decoder {
    fc: candle_nn::Linear,
    stages: Stages,
    stem: (Conv2d, BatchNorm2d),
    conv_out: Conv2d,
    config: DecoderConfig,
    sizes: [(usize, usize); 6],
    dtype: DType,
}

impl Decoder {
    /// Builds the network's parameters under `vb`.
    ///
    /// # Errors
    /// A candle error if a parameter exists with another shape.
    pub fn new(config: &ValidConfig<DecoderConfig>, vb: VarBuilder) -> Result<Self> {
        let c = &**config;
        let sizes = c.spatial_sizes();
        let (w, e) = (c.base_width, c.block.expansion());
        let top_channels = 8 * w * e;
        let (h5, w5) = sizes[5];
        let fc = linear(vb.pp("fc"), c.params, top_channels * h5 * w5)?;
        // Stage k (1-based) of the encoder runs at size s_{k+1} (stage 1 at s₂); its reverse ends
        // at the size and channel count the encoder stage started from.
        let mut stages = vec![Vec::new(); 4];
        for stage in (0..4).rev() {
            let planes = w << stage;
            let c_stage = planes * e;
            let c_next = if stage == 0 {
                w
            } else {
                (w << (stage - 1)) * e
            };
            let vb_stage = vb.pp(format!("layer{}", stage + 1));
            let n = c.layers[stage];
            let mut blocks = Vec::with_capacity(n);
            for j in 0..n {
                let last = j + 1 == n;
                let resample = match (last, stage) {
                    (true, s) if s > 0 => {
                        let (height, width) = sizes[s + 1];
                        Resample::Up { height, width }
                    }
                    _ => Resample::Keep,
                };
                let spec = BlockSpec {
                    kind: c.block,
                    c_in: c_stage,
                    planes,
                    c_out: if last { c_next } else { c_stage },
                    resample,
                    conv_kernel: c.conv_kernel,
                };
                blocks.push(ResidualBlock::new(vb_stage.pp(j), spec, "upsample")?);
            }
            stages[3 - stage] = blocks;
        }
        let stem = (
            Conv2d::new(
                vb.pp("conv1"),
                ConvSpec::new(w, w, 3, 1),
                KAIMING_NORMAL_FAN_OUT,
                c.conv_kernel,
            )?,
            BatchNorm2d::new(vb.pp("bn1"), w)?,
        );
        let conv_out = Conv2d::new(
            vb.pp("conv_out"),
            ConvSpec::new(w, c.output.channels, 3, 1).with_bias(),
            pytorch_default_init(w * 9),
            c.conv_kernel,
        )?;
        Ok(Self {
            fc,
            stages,
            stem,
            conv_out,
            config: c.clone(),
            sizes,
            dtype: vb.dtype(),
        })
    }

    /// The config the network was built from.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }
}

/// Nearest ×2 upsampling cropped to `size`.
fn upsample_to(x: &Tensor, (height, width): (usize, usize)) -> candle_core::Result<Tensor> {
    upsample_nearest_2x(x)?
        .narrow(2, 0, height)?
        .narrow(3, 0, width)
}

impl ModuleT for Decoder {
    fn forward_t(&self, params: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let batch = params.dim(0)?;
        let (h5, w5) = self.sizes[5];
        let top_channels = 8 * self.config.base_width * self.config.block.expansion();
        let x = self
            .fc
            .forward(params)?
            .reshape((batch, top_channels, h5, w5))?
            .relu()?;
        let x = forward_stages(&self.stages, &x, train)?;
        let (conv, bn) = &self.stem;
        let x = upsample_to(&x, self.sizes[1])?;
        let x = bn.forward_relu_t(&conv.forward(&x)?, train)?;
        let x = upsample_to(&x, self.sizes[0])?;
        self.conv_out.forward(&x)
    }
}

impl ImageDecoder for Decoder {
    fn decode(&self, params: &Tensor, train: bool) -> Result<Tensor> {
        check_vectors("Decoder", params, self.config.params, self.dtype)?;
        Ok(self.forward_t(params, train)?)
    }

    fn input_dim(&self) -> usize {
        self.config.params
    }

    fn output_shape(&self) -> ImageShape {
        self.config.output
    }
}

impl NetworkConfig for DecoderConfig {
    type Module = Decoder;
    const KIND: &'static str = "decoder";

    fn build(config: &ValidConfig<Self>, vb: VarBuilder) -> Result<Decoder> {
        Decoder::new(config, vb)
    }
}
