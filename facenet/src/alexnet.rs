//! An AlexNet-style network (Krizhevsky et al. 2012, torchvision's single-tower variant) adapted
//! to small inputs.
//!
//! Adaptations, for inputs from 32 × 32 pixels: the three 3×3/2 max pools are padded by one
//! pixel so that they accept any size (output ⌈n/2⌉; a 32-pixel side goes 7 → 4 → 2 → 1 after
//! the 11×11/4 convolution); global average pooling replaces the 6×6 adaptive pool, so the
//! classifier reads 4w features; there is no dropout, so training is deterministic. Parameter
//! names keep torchvision's indices (`features.0`, `features.3`, `features.6`, `features.8`,
//! `features.10`, `classifier.1`, `classifier.4`, `classifier.6`).

use candle_core::{DType, Module, ModuleT, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::config::{NetworkConfig, ValidConfig, Validate};
use crate::error::{FacenetError, Result};
use crate::layers::{
    Conv2d, ConvKernel, ConvSpec, global_avg_pool, linear, max_pool_3x3_stride_2,
    pytorch_default_init,
};
use crate::resnet::Head;
use crate::traits::{Encoder, check_images};

/// Configuration of an [`AlexNet`]. Convolutions 11×11/4, 5×5, 3×3, 3×3, 3×3 with w, 3w, 6w, 4w,
/// 4w channels (torchvision, w = 64: 64, 192, 384, 256, 256); classifier 4w → hidden → hidden →
/// outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlexNetConfig {
    /// Image channels C of the input.
    pub in_channels: usize,
    /// Length P of the output vector.
    pub outputs: usize,
    /// Base width w (torchvision: 64).
    pub width: usize,
    /// Width of the two hidden fully connected layers (torchvision: 4096).
    pub hidden: usize,
    /// Output nonlinearity.
    pub head: Head,
    /// Convolution implementation.
    #[serde(default)]
    pub conv_kernel: ConvKernel,
}

impl AlexNetConfig {
    /// Smallest accepted image side in pixels.
    pub const MIN_INPUT_SIZE: usize = 32;

    /// The published widths (w = 64, hidden = 4096) with a linear head.
    pub fn new(in_channels: usize, outputs: usize) -> Self {
        Self {
            in_channels,
            outputs,
            width: 64,
            hidden: 4096,
            head: Head::Linear,
            conv_kernel: ConvKernel::Auto,
        }
    }

    /// The same config with other widths.
    pub fn with_widths(self, width: usize, hidden: usize) -> Self {
        Self {
            width,
            hidden,
            ..self
        }
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

    /// Output channels of the five convolutions.
    fn channels(&self) -> [usize; 5] {
        let w = self.width;
        [w, 3 * w, 6 * w, 4 * w, 4 * w]
    }
}

impl Validate for AlexNetConfig {
    fn validate(&self) -> Result<()> {
        let err = |field, reason: &str| Err(FacenetError::config("AlexNetConfig", field, reason));
        if self.in_channels == 0 {
            return err("in_channels", "must be at least 1");
        }
        if self.outputs == 0 {
            return err("outputs", "must be at least 1");
        }
        if self.width == 0 {
            return err("width", "must be at least 1");
        }
        if self.hidden == 0 {
            return err("hidden", "must be at least 1");
        }
        self.head.validate("AlexNetConfig")
    }
}

/// A small-input AlexNet built from an [`AlexNetConfig`].
#[derive(Debug, Clone)]
pub struct AlexNet {
    convs: Vec<Conv2d>,
    classifier: [candle_nn::Linear; 3],
    config: AlexNetConfig,
    dtype: DType,
}

/// torchvision's indices of the convolutions in `features` and of the layers in `classifier`.
const FEATURE_INDICES: [usize; 5] = [0, 3, 6, 8, 10];
const CLASSIFIER_INDICES: [usize; 3] = [1, 4, 6];
/// Convolutions followed by a max pool.
const POOL_AFTER: [bool; 5] = [true, true, false, false, true];

impl AlexNet {
    /// Builds the network's parameters under `vb`.
    ///
    /// # Errors
    /// A candle error if a parameter exists with another shape.
    pub fn new(config: &ValidConfig<AlexNetConfig>, vb: VarBuilder) -> Result<Self> {
        let c = &**config;
        let channels = c.channels();
        let mut c_in = c.in_channels;
        let mut convs = Vec::with_capacity(5);
        for (i, (&index, &c_out)) in FEATURE_INDICES.iter().zip(&channels).enumerate() {
            let spec = match i {
                // torchvision: 11×11, stride 4, padding 2.
                0 => ConvSpec {
                    padding: 2,
                    ..ConvSpec::new(c_in, c_out, 11, 4)
                },
                1 => ConvSpec::new(c_in, c_out, 5, 1),
                _ => ConvSpec::new(c_in, c_out, 3, 1),
            }
            .with_bias();
            let init = pytorch_default_init(c_in * spec.kernel_size * spec.kernel_size);
            convs.push(Conv2d::new(
                vb.pp(format!("features.{index}")),
                spec,
                init,
                c.conv_kernel,
            )?);
            c_in = c_out;
        }
        let [i1, i4, i6] = CLASSIFIER_INDICES;
        let classifier = [
            linear(vb.pp(format!("classifier.{i1}")), c_in, c.hidden)?,
            linear(vb.pp(format!("classifier.{i4}")), c.hidden, c.hidden)?,
            linear(vb.pp(format!("classifier.{i6}")), c.hidden, c.outputs)?,
        ];
        Ok(Self {
            convs,
            classifier,
            config: c.clone(),
            dtype: vb.dtype(),
        })
    }

    /// The config the network was built from.
    pub fn config(&self) -> &AlexNetConfig {
        &self.config
    }
}

impl ModuleT for AlexNet {
    fn forward_t(&self, x: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        // No BatchNorm and no dropout: training and evaluation compute the same function.
        let mut x = x.clone();
        for (conv, &pool) in self.convs.iter().zip(&POOL_AFTER) {
            x = conv.forward_relu(&x)?;
            if pool {
                x = max_pool_3x3_stride_2(&x)?;
            }
        }
        let [fc1, fc2, fc3] = &self.classifier;
        let x = global_avg_pool(&x)?;
        let x = fc2.forward(&fc1.forward(&x)?.relu()?)?.relu()?;
        self.config.head.apply(&fc3.forward(&x)?)
    }
}

impl Encoder for AlexNet {
    fn encode(&self, images: &Tensor, train: bool) -> Result<Tensor> {
        check_images(
            "AlexNet",
            images,
            self.config.in_channels,
            AlexNetConfig::MIN_INPUT_SIZE,
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

impl NetworkConfig for AlexNetConfig {
    type Module = AlexNet;
    const KIND: &'static str = "alexnet";

    fn build(config: &ValidConfig<Self>, vb: VarBuilder) -> Result<AlexNet> {
        AlexNet::new(config, vb)
    }
}
