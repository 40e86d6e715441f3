//! Building blocks shared by the networks: a convolution with a fast CPU backward, BatchNorm that
//! refuses degenerate batches, a torchvision-initialised linear layer, and the pooling and
//! upsampling operations candle 0.11 cannot differentiate, rebuilt from differentiable ones.

pub(crate) mod cpu_ops;
mod im2col;

use std::sync::Arc;

use std::sync::Mutex;

use candle_core::{CustomOp2, CustomOp3, DType, Device, Module, ModuleT, Tensor, Var};
use candle_nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

use cpu_ops::{AddRelu, BatchNormTrain, ChannelAffine, MaxPool3x3Stride2, UpsampleNearest2x};
use im2col::Im2colConv2d;

/// Which implementation computes convolutions and their gradients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvKernel {
    /// The im2col + gemm custom op on the CPU, candle's own `conv2d` on other devices.
    #[default]
    Auto,
    /// candle's `conv2d`, whose CPU input gradient goes through a slow `conv_transpose2d` loop.
    Candle,
    /// The im2col + gemm custom op (CPU only; an error on other devices).
    Im2col,
}

impl ConvKernel {
    fn uses_im2col(self, device: &Device) -> candle_core::Result<bool> {
        match self {
            Self::Auto => Ok(device.is_cpu()),
            Self::Candle => Ok(false),
            Self::Im2col if device.is_cpu() => Ok(true),
            Self::Im2col => candle_core::bail!(
                "the im2col convolution kernel runs on the CPU only, tensors are on {device:?}"
            ),
        }
    }
}

/// Sizes of a square-kernel convolution layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel side in pixels.
    pub kernel_size: usize,
    /// Stride in pixels.
    pub stride: usize,
    /// Zero padding on every side, in pixels.
    pub padding: usize,
    /// Whether the layer adds a per-channel bias.
    pub bias: bool,
}

impl ConvSpec {
    /// A `k`×`k` convolution from `in_channels` to `out_channels` with "same"-style padding
    /// `k / 2`, stride `stride` and no bias (the ResNet convention: BatchNorm follows).
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: usize, stride: usize) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding: kernel_size / 2,
            bias: false,
        }
    }

    /// The same spec with a bias.
    pub fn with_bias(self) -> Self {
        Self { bias: true, ..self }
    }
}

/// Kaiming normal, fan-out, ReLU gain: torchvision's ResNet convolution initialisation.
pub const KAIMING_NORMAL_FAN_OUT: Init = Init::Kaiming {
    dist: NormalOrUniform::Normal,
    fan: FanInOut::FanOut,
    non_linearity: NonLinearity::ReLU,
};

/// Uniform in ±1/√fan_in: PyTorch's default for linear and convolution weights and biases
/// (`kaiming_uniform_(a = √5)`).
pub fn pytorch_default_init(fan_in: usize) -> Init {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// A 2-D convolution (weight `weight` of shape (Co, Ci, k, k), optional `bias` of shape (Co)).
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    spec: ConvSpec,
    kernel: ConvKernel,
}

impl Conv2d {
    /// Creates the layer's parameters under `vb` (`weight`, and `bias` if the spec asks for one),
    /// the weight initialised with `init`, the bias with PyTorch's default.
    ///
    /// # Errors
    /// A candle error if a parameter exists with another shape.
    pub fn new(
        vb: VarBuilder,
        spec: ConvSpec,
        init: Init,
        kernel: ConvKernel,
    ) -> candle_core::Result<Self> {
        let k = spec.kernel_size;
        let weight =
            vb.get_with_hints((spec.out_channels, spec.in_channels, k, k), "weight", init)?;
        let bias = if spec.bias {
            let fan_in = spec.in_channels * k * k;
            Some(vb.get_with_hints(spec.out_channels, "bias", pytorch_default_init(fan_in))?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            spec,
            kernel,
        })
    }

    /// The layer's sizes.
    pub fn spec(&self) -> ConvSpec {
        self.spec
    }

    /// The weight, (Co, Ci, k, k).
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Conv2d {
    fn forward_act(&self, x: &Tensor, relu: bool) -> candle_core::Result<Tensor> {
        let (stride, padding) = (self.spec.stride, self.spec.padding);
        let y = if self.kernel.uses_im2col(x.device())? {
            let op: Arc<Box<dyn CustomOp2 + Send + Sync>> =
                Arc::new(Box::new(Im2colConv2d { stride, padding }));
            x.contiguous()?
                .apply_op2_arc(&self.weight.contiguous()?, op)?
        } else {
            x.conv2d(&self.weight, padding, stride, 1, 1)?
        };
        match &self.bias {
            Some(bias) if fused_cpu(&y) => {
                let ones = bias.ones_like()?.detach();
                y.apply_op3(&ones, &bias.contiguous()?, ChannelAffine { relu })
            }
            Some(bias) => {
                let y = y.broadcast_add(&bias.reshape((1, self.spec.out_channels, 1, 1))?)?;
                if relu { y.relu() } else { Ok(y) }
            }
            None if relu => y.relu(),
            None => Ok(y),
        }
    }

    /// The convolution followed by a ReLU (bias and ReLU fused on the CPU).
    ///
    /// # Errors
    /// A candle error if the input does not fit the layer.
    pub fn forward_relu(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_act(x, true)
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_act(x, false)
    }
}

/// Whether the fused CPU kernels can run on `x`.
fn fused_cpu(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// 2-D BatchNorm with PyTorch's conventions: ε = 1e-5, momentum 0.1, running variance updated
/// with the unbiased batch variance; parameters `weight` (γ), `bias` (β), `running_mean`,
/// `running_var`. On the CPU it runs as fused kernels; elsewhere as candle's `BatchNorm`. A
/// training-mode batch with a single value per channel is refused rather than turning the
/// running variance into NaN.
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    generic: candle_nn::BatchNorm,
}

impl BatchNorm2d {
    /// ε added to the variance.
    pub const EPS: f64 = 1e-5;
    /// Weight of the newest batch in the running statistics.
    pub const MOMENTUM: f64 = 0.1;

    /// Creates `weight` (1), `bias` (0), `running_mean` (0) and `running_var` (1) under `vb`.
    ///
    /// # Errors
    /// A candle error if a parameter exists with another shape.
    pub fn new(vb: VarBuilder, channels: usize) -> candle_core::Result<Self> {
        let running_mean = vb.get_with_hints(channels, "running_mean", Init::Const(0.0))?;
        let running_var = vb.get_with_hints(channels, "running_var", Init::Const(1.0))?;
        let weight = vb.get_with_hints(channels, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(channels, "bias", Init::Const(0.0))?;
        // Both views share the running statistics' storage (`Var::from_tensor` of a variable).
        let generic = candle_nn::BatchNorm::new_with_momentum(
            channels,
            running_mean.clone(),
            running_var.clone(),
            weight.clone(),
            bias.clone(),
            Self::EPS,
            Self::MOMENTUM,
        )?;
        Ok(Self {
            weight,
            bias,
            running_mean: Var::from_tensor(&running_mean)?,
            running_var: Var::from_tensor(&running_var)?,
            generic,
        })
    }

    fn forward_train_cpu(&self, x: &Tensor, relu: bool) -> candle_core::Result<Tensor> {
        let statistics = std::sync::Arc::new(Mutex::new(None));
        let op: std::sync::Arc<Box<dyn CustomOp3 + Send + Sync>> =
            std::sync::Arc::new(Box::new(BatchNormTrain {
                eps: Self::EPS,
                relu,
                statistics: statistics.clone(),
            }));
        let y = x.contiguous()?.apply_op3_arc(
            &self.weight.contiguous()?,
            &self.bias.contiguous()?,
            op,
        )?;
        let stats = match statistics.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let Some(stats) = stats else {
            candle_core::bail!("BatchNorm: the fused kernel left no batch statistics");
        };
        let n = stats.count as f64;
        let m = Self::MOMENTUM;
        let update = |var: &Var, batch: Vec<f64>| -> candle_core::Result<()> {
            let channels = batch.len();
            let batch = Tensor::from_vec(batch, channels, &Device::Cpu)?.to_dtype(var.dtype())?;
            var.set(&((var.as_detached_tensor() * (1.0 - m))? + (batch * m)?)?)
        };
        update(&self.running_mean, stats.mean)?;
        update(
            &self.running_var,
            stats.variance.iter().map(|v| v * n / (n - 1.0)).collect(),
        )?;
        Ok(y)
    }

    fn forward_eval_cpu(&self, x: &Tensor, relu: bool) -> candle_core::Result<Tensor> {
        let inv_std = (self.running_var.as_detached_tensor() + Self::EPS)?
            .sqrt()?
            .recip()?;
        let scale = (&self.weight * inv_std)?;
        let shift = (&self.bias - (self.running_mean.as_detached_tensor() * &scale)?)?;
        x.contiguous()?.apply_op3(
            &scale.contiguous()?,
            &shift.contiguous()?,
            ChannelAffine { relu },
        )
    }

    /// BatchNorm followed by a ReLU (fused on the CPU).
    ///
    /// # Errors
    /// As [`ModuleT::forward_t`].
    pub fn forward_relu_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.forward_act(x, train, true)
    }

    fn forward_act(&self, x: &Tensor, train: bool, relu: bool) -> candle_core::Result<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        if train && b * h * w < 2 {
            candle_core::bail!(
                "BatchNorm in training mode needs more than one value per channel, got a batch of {b} with {h}×{w} pixels"
            );
        }
        match (fused_cpu(x), train) {
            (true, true) => self.forward_train_cpu(x, relu),
            (true, false) => self.forward_eval_cpu(x, relu),
            (false, _) if relu => self.generic.forward_t(x, train)?.relu(),
            (false, _) => self.generic.forward_t(x, train),
        }
    }
}

impl ModuleT for BatchNorm2d {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.forward_act(x, train, false)
    }
}

/// `relu(a + b)` for tensors of one shape: fused on the CPU.
///
/// # Errors
/// A candle error if the shapes differ.
pub fn add_relu(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    if fused_cpu(a) && a.dims().len() == 4 {
        return a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu);
    }
    (a + b)?.relu()
}

/// A linear layer `y = x Wᵀ + b` with PyTorch's default initialisation (uniform ±1/√in).
///
/// # Errors
/// A candle error if a parameter exists with another shape.
pub fn linear(
    vb: VarBuilder,
    in_features: usize,
    out_features: usize,
) -> candle_core::Result<candle_nn::Linear> {
    let init = pytorch_default_init(in_features);
    let weight = vb.get_with_hints((out_features, in_features), "weight", init)?;
    let bias = vb.get_with_hints(out_features, "bias", init)?;
    Ok(candle_nn::Linear::new(weight, Some(bias)))
}

/// Every `step`-th element of `x` along `dim`, starting at `offset`, `count` of them; built from
/// `narrow` and `reshape` so that it is differentiable.
fn strided_narrow(
    x: &Tensor,
    dim: usize,
    offset: usize,
    count: usize,
    step: usize,
) -> candle_core::Result<Tensor> {
    let window = x.narrow(dim, offset, count * step)?;
    let mut dims = window.dims().to_vec();
    dims[dim] = count;
    dims.insert(dim + 1, step);
    window
        .reshape(dims)?
        .narrow(dim + 1, 0, 1)?
        .squeeze(dim + 1)
}

/// Pads `x` along `dim` with `before` and `after` copies of `value`.
fn pad_with_value(
    x: &Tensor,
    dim: usize,
    before: usize,
    after: usize,
    value: f64,
) -> candle_core::Result<Tensor> {
    let block = |n: usize| -> candle_core::Result<Tensor> {
        let mut dims = x.dims().to_vec();
        dims[dim] = n;
        Tensor::full(value, dims, x.device())?.to_dtype(x.dtype())
    };
    let mut parts = Vec::with_capacity(3);
    if before > 0 {
        parts.push(block(before)?);
    }
    parts.push(x.clone());
    if after > 0 {
        parts.push(block(after)?);
    }
    Tensor::cat(&parts, dim)
}

/// 3-tap, stride-2 max along `dim` with one element of −∞ padding before: output length ⌈n/2⌉.
fn max_3_stride_2(x: &Tensor, dim: usize) -> candle_core::Result<Tensor> {
    let n = x.dim(dim)?;
    let out = n.div_ceil(2);
    // Padded length must cover 2·out + 1 elements: 1 before, 1 + (2·out − n) after.
    let padded = pad_with_value(x, dim, 1, 1 + 2 * out - n, f64::NEG_INFINITY)?;
    let a = strided_narrow(&padded, dim, 0, out, 2)?;
    let b = strided_narrow(&padded, dim, 1, out, 2)?;
    let c = strided_narrow(&padded, dim, 2, out, 2)?;
    a.maximum(&b)?.maximum(&c)
}

/// Max pooling with a 3×3 window, stride 2 and padding 1 (torchvision's ResNet stem pool) on
/// (B, C, H, W): output (B, C, ⌈H/2⌉, ⌈W/2⌉).
///
/// candle 0.11 differentiates `max_pool2d` only when kernel = stride. On the CPU this runs as a
/// fused kernel whose gradient goes to the first maximum of each window (PyTorch's rule); on
/// other devices it is built from shifted strided views and `maximum`, separably (rows, then
/// columns), and ties share the gradient.
///
/// # Errors
/// A candle error if `x` is not 4-d.
pub fn max_pool_3x3_stride_2(x: &Tensor) -> candle_core::Result<Tensor> {
    x.dims4()?;
    if fused_cpu(x) {
        return x.contiguous()?.apply_op1(MaxPool3x3Stride2);
    }
    max_pool_3x3_stride_2_composite(x)
}

/// [`max_pool_3x3_stride_2`] from candle's differentiable operations (any device); ties share
/// the gradient.
fn max_pool_3x3_stride_2_composite(x: &Tensor) -> candle_core::Result<Tensor> {
    let rows = max_3_stride_2(x, 2)?;
    max_3_stride_2(&rows, 3)
}

/// Nearest-neighbour ×2 upsampling of (B, C, H, W) to (B, C, 2H, 2W) whose gradient is the sum
/// over each 2×2 block: a fused kernel on the CPU, a broadcast elsewhere (candle's
/// `upsample_nearest2d` backward overwrites rather than accumulates the input gradient).
///
/// # Errors
/// A candle error if `x` is not 4-d.
pub fn upsample_nearest_2x(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if fused_cpu(x) {
        return x.contiguous()?.apply_op1(UpsampleNearest2x);
    }
    x.reshape((b, c, h, 1, w, 1))?
        .broadcast_as((b, c, h, 2, w, 2))?
        .reshape((b, c, 2 * h, 2 * w))
}

/// Global average pooling: (B, C, H, W) → (B, C).
///
/// # Errors
/// A candle error if `x` is not 4-d.
pub fn global_avg_pool(x: &Tensor) -> candle_core::Result<Tensor> {
    x.dims4()?;
    x.mean((2, 3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    #[test]
    fn max_pool_matches_a_direct_window_maximum() -> candle_core::Result<()> {
        for (h, w) in [(5, 7), (8, 8), (1, 3), (4, 9)] {
            let values: Vec<f32> = (0..2 * h * w)
                .map(|i| ((i * 29 % 31) as f32) - 15.0)
                .collect();
            let x = Tensor::from_vec(values.clone(), (1, 2, h, w), &Device::Cpu)?;
            let y = max_pool_3x3_stride_2(&x)?;
            let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
            assert_eq!(y.dims(), &[1, 2, oh, ow]);
            let got = y.flatten_all()?.to_vec1::<f32>()?;
            for c in 0..2 {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut m = f32::NEG_INFINITY;
                        for dy in 0..3 {
                            for dx in 0..3 {
                                let (iy, ix) =
                                    ((2 * oy + dy) as isize - 1, (2 * ox + dx) as isize - 1);
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    m = m.max(values[(c * h + iy as usize) * w + ix as usize]);
                                }
                            }
                        }
                        assert_eq!(got[(c * oh + oy) * ow + ox], m);
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn upsampling_repeats_pixels_and_sums_gradients() -> candle_core::Result<()> {
        let x = candle_core::Var::from_tensor(
            &Tensor::arange(0f64, 6.0, &Device::Cpu)?.reshape((1, 1, 2, 3))?,
        )?;
        let y = upsample_nearest_2x(x.as_tensor())?;
        assert_eq!(y.dims(), &[1, 1, 4, 6]);
        let rows = y.squeeze(0)?.squeeze(0)?.to_vec2::<f64>()?;
        assert_eq!(rows[1], vec![0.0, 0.0, 1.0, 1.0, 2.0, 2.0]);
        assert_eq!(rows[2], vec![3.0, 3.0, 4.0, 4.0, 5.0, 5.0]);
        // d(sum of squares)/dx = sum over the 2×2 block of 2·y = 8·x.
        let grads = y.sqr()?.sum_all()?.backward()?;
        let g = grads
            .get(x.as_tensor())
            .map(|g| g.flatten_all()?.to_vec1::<f64>());
        let g = g.transpose()?.unwrap_or_default();
        assert_eq!(g, vec![0.0, 8.0, 16.0, 24.0, 32.0, 40.0]);
        Ok(())
    }

    fn random(dims: &[usize], seed: u64) -> candle_core::Result<Tensor> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n: usize = dims.iter().product();
        let values: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        Tensor::from_vec(values, dims, &Device::Cpu)
    }

    /// Output and input gradient of `sum(f(x) · r)`.
    fn value_and_grad(
        f: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
        x: &Tensor,
        seed: u64,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let x = Var::from_tensor(x)?;
        let y = f(x.as_tensor())?;
        let r = random(y.dims(), seed)?;
        let grads = (&y * &r)?.sum_all()?.backward()?;
        let dx = grads.get(x.as_tensor()).cloned();
        Ok((
            y,
            dx.ok_or_else(|| candle_core::Error::Msg("no input gradient".into()))?,
        ))
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> candle_core::Result<f64> {
        (a - b)?.abs()?.max_all()?.to_scalar::<f64>()
    }

    #[test]
    fn fused_pooling_and_upsampling_match_their_composite_forms() -> candle_core::Result<()> {
        for (i, dims) in [[2, 3, 7, 9], [1, 2, 8, 8], [1, 1, 1, 5]]
            .iter()
            .enumerate()
        {
            let x = random(dims, i as u64)?;
            let (y, dx) = value_and_grad(max_pool_3x3_stride_2, &x, 10)?;
            let (y_ref, dx_ref) = value_and_grad(max_pool_3x3_stride_2_composite, &x, 10)?;
            assert_eq!(max_diff(&y, &y_ref)?, 0.0);
            assert!(max_diff(&dx, &dx_ref)? < 1e-12);
            let broadcast = |x: &Tensor| {
                let (b, c, h, w) = x.dims4()?;
                x.reshape((b, c, h, 1, w, 1))?
                    .broadcast_as((b, c, h, 2, w, 2))?
                    .reshape((b, c, 2 * h, 2 * w))
            };
            let (y, dx) = value_and_grad(upsample_nearest_2x, &x, 11)?;
            let (y_ref, dx_ref) = value_and_grad(broadcast, &x, 11)?;
            assert_eq!(max_diff(&y, &y_ref)?, 0.0);
            assert!(max_diff(&dx, &dx_ref)? < 1e-12);
        }
        Ok(())
    }

    #[test]
    fn fused_add_relu_matches_its_composite_form() -> candle_core::Result<()> {
        let (a, b) = (random(&[2, 3, 4, 5], 1)?, random(&[2, 3, 4, 5], 2)?);
        let gradients = |fused: bool| -> candle_core::Result<Vec<Tensor>> {
            let (va, vb) = (Var::from_tensor(&a)?, Var::from_tensor(&b)?);
            let y = if fused {
                add_relu(va.as_tensor(), vb.as_tensor())?
            } else {
                (va.as_tensor() + vb.as_tensor())?.relu()?
            };
            let grads = (&y * random(y.dims(), 3)?)?.sum_all()?.backward()?;
            let grad = |t: &Tensor| {
                grads
                    .get(t)
                    .cloned()
                    .ok_or_else(|| candle_core::Error::Msg("missing gradient".into()))
            };
            Ok(vec![
                y.clone(),
                grad(va.as_tensor())?,
                grad(vb.as_tensor())?,
            ])
        };
        for (f, c) in gradients(true)?.iter().zip(&gradients(false)?) {
            assert!(max_diff(f, c)? < 1e-12);
        }
        Ok(())
    }

    /// The fused BatchNorm against candle's: outputs, gradients of x, γ and β, and the running
    /// statistics after one training step, in both modes.
    #[test]
    fn fused_batch_norm_matches_candles() -> candle_core::Result<()> {
        let build = |seed: u64| -> candle_core::Result<(BatchNorm2d, Var, Var)> {
            let store = crate::params::ParamStore::new();
            let bn = BatchNorm2d::new(
                store.seeded_builder(0, DType::F64, &Device::Cpu).pp("bn"),
                3,
            )?;
            let vars = store.named_vars();
            let find = |name: &str| vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
            let (Some(gamma), Some(beta)) = (find("bn.weight"), find("bn.bias")) else {
                candle_core::bail!("BatchNorm parameters missing");
            };
            gamma.set(&(random(&[3], seed)? + 1.5)?)?;
            beta.set(&random(&[3], seed + 1)?)?;
            Ok((bn, gamma, beta))
        };
        let x = random(&[4, 3, 5, 6], 3)?.affine(2.0, 0.7)?;
        for (train, relu) in [(true, false), (false, false), (true, true), (false, true)] {
            let (fused, g1, b1) = build(20)?;
            let (generic, g2, b2) = build(20)?;
            let run = |bn: &BatchNorm2d,
                       gamma: &Var,
                       beta: &Var,
                       fused_path: bool|
             -> candle_core::Result<Vec<Tensor>> {
                let xv = Var::from_tensor(&x)?;
                let y = match (fused_path, relu) {
                    (true, true) => bn.forward_relu_t(xv.as_tensor(), train)?,
                    (true, false) => bn.forward_t(xv.as_tensor(), train)?,
                    (false, true) => bn.generic.forward_t(xv.as_tensor(), train)?.relu()?,
                    (false, false) => bn.generic.forward_t(xv.as_tensor(), train)?,
                };
                let r = random(y.dims(), 5)?;
                let grads = (&y * &r)?.sum_all()?.backward()?;
                let grad = |t: &Tensor| {
                    grads
                        .get(t)
                        .cloned()
                        .ok_or_else(|| candle_core::Error::Msg("missing gradient".into()))
                };
                Ok(vec![
                    y.clone(),
                    grad(xv.as_tensor())?,
                    grad(gamma.as_tensor())?,
                    grad(beta.as_tensor())?,
                    bn.running_mean.as_tensor().clone(),
                    bn.running_var.as_tensor().clone(),
                ])
            };
            let a = run(&fused, &g1, &b1, true)?;
            let b = run(&generic, &g2, &b2, false)?;
            for (i, (ta, tb)) in a.iter().zip(&b).enumerate() {
                assert!(
                    max_diff(ta, tb)? < 1e-10,
                    "train = {train}, relu = {relu}, output {i}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn batch_norm_refuses_a_single_value_per_channel_in_training() -> candle_core::Result<()> {
        let vars = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let bn = BatchNorm2d::new(vb, 3)?;
        let x = Tensor::ones((1, 3, 1, 1), DType::F32, &Device::Cpu)?;
        assert!(bn.forward_t(&x, true).is_err());
        assert!(bn.forward_t(&x, false).is_ok());
        Ok(())
    }
}
