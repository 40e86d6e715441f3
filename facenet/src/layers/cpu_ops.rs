//! Fused CPU kernels for the memory-bound layers: 3×3/2 max pooling, nearest ×2 upsampling and
//! BatchNorm (training and evaluation), each with its exact backward.
//!
//! Composed from candle's generic tensor operations these layers cost a dozen passes over the
//! data forward and more backward (broadcasts, masks, concatenations, strided copies), several
//! times the convolutions around them on 2 cores. Here each is one parallel pass forward and one
//! or two backward. Statistics are accumulated in f64 whatever the tensor dtype.

use std::sync::{Arc, Mutex};

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Device, Layout, Shape, Storage, Tensor,
    WithDType,
};
use rayon::prelude::*;

/// The contiguous part of a CPU storage described by `layout`, as a slice of `T`.
pub(crate) fn contiguous_slice<'a, T: WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a [T]> {
    let data = storage.as_slice::<T>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("fused CPU kernel: operand is not contiguous"),
    }
}

/// The contiguous CPU data of a tensor as a slice of `T`, handed to `f`.
pub(crate) fn with_cpu_slice<T: WithDType, R>(
    tensor: &Tensor,
    f: impl FnOnce(&[T]) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let tensor = tensor.contiguous()?;
    let (storage, layout) = tensor.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("fused CPU kernel called on {:?}", tensor.device())
    };
    f(contiguous_slice::<T>(cpu, layout)?)
}

/// Runs `$body` with `$t` bound to the Rust type of `$dtype` (f32 or f64).
macro_rules! dispatch_float {
    ($dtype:expr, $name:expr, $t:ident => $body:expr) => {
        match $dtype {
            candle_core::DType::F32 => {
                type $t = f32;
                $body
            }
            candle_core::DType::F64 => {
                type $t = f64;
                $body
            }
            other => {
                candle_core::bail!("{}: unsupported dtype {other:?} (f32 and f64 only)", $name)
            }
        }
    };
}
pub(crate) use dispatch_float;

fn dims4(layout: &Layout, name: &str) -> candle_core::Result<(usize, usize, usize, usize)> {
    match *layout.dims() {
        [b, c, h, w] => Ok((b, c, h, w)),
        ref other => candle_core::bail!("{name}: expected (B, C, H, W), got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// 3×3 / stride 2 / padding 1 max pooling.

/// Rows (or columns) `2·o − 1 ..= 2·o + 1` of an axis of length `n`, clipped.
fn window(o: usize, n: usize) -> std::ops::Range<usize> {
    (2 * o).saturating_sub(1)..(2 * o + 2).min(n)
}

/// Max pooling, window 3×3, stride 2, padding 1: (B, C, H, W) → (B, C, ⌈H/2⌉, ⌈W/2⌉). The
/// gradient goes to the first maximal element of each window (row-major), as in PyTorch.
pub(crate) struct MaxPool3x3Stride2;

impl MaxPool3x3Stride2 {
    fn forward<T: WithDType>(x: &[T], (b, c, h, w): (usize, usize, usize, usize)) -> Vec<T> {
        let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
        let mut out = vec![T::zero(); b * c * oh * ow];
        out.par_chunks_mut((oh * ow).max(1))
            .zip(x.par_chunks((h * w).max(1)))
            .for_each(|(dst, plane)| {
                for oy in 0..oh {
                    for ox in 0..ow {
                        dst[oy * ow + ox] = window_argmax(plane, w, window(oy, h), window(ox, w)).1;
                    }
                }
            });
        out
    }

    fn backward<T: WithDType>(
        x: &[T],
        grad: &[T],
        (b, c, h, w): (usize, usize, usize, usize),
    ) -> Vec<T> {
        let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
        let mut dx = vec![T::zero(); b * c * h * w];
        dx.par_chunks_mut((h * w).max(1))
            .zip(x.par_chunks((h * w).max(1)))
            .zip(grad.par_chunks((oh * ow).max(1)))
            .for_each(|((dst, plane), g)| {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let (at, _) = window_argmax(plane, w, window(oy, h), window(ox, w));
                        dst[at] += g[oy * ow + ox];
                    }
                }
            });
        dx
    }
}

/// Index (in the plane) and value of the first maximum of a window.
fn window_argmax<T: WithDType>(
    plane: &[T],
    w: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
) -> (usize, T) {
    let mut best = (
        rows.start * w + cols.start,
        plane[rows.start * w + cols.start],
    );
    for y in rows {
        for x in cols.clone() {
            let v = plane[y * w + x];
            if v > best.1 {
                best = (y * w + x, v);
            }
        }
    }
    best
}

impl CustomOp1 for MaxPool3x3Stride2 {
    fn name(&self) -> &'static str {
        "facenet-max-pool-3x3-s2"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = dims4(layout, self.name())?;
        let shape = Shape::from((b, c, h.div_ceil(2), w.div_ceil(2)));
        dispatch_float!(storage.dtype(), self.name(), T => {
            let out = Self::forward::<T>(contiguous_slice(storage, layout)?, (b, c, h, w));
            Ok((T::to_cpu_storage_owned(out), shape))
        })
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (b, c, h, w) = arg.dims4()?;
        let dx = dispatch_float!(arg.dtype(), self.name(), T => {
            let dx = with_cpu_slice::<T, _>(arg, |x| with_cpu_slice::<T, _>(grad, |g| Ok(Self::backward(x, g, (b, c, h, w)))))?;
            Tensor::from_vec(dx, (b, c, h, w), &Device::Cpu)?
        });
        Ok(Some(dx))
    }
}

// ---------------------------------------------------------------------------------------------
// Nearest ×2 upsampling.

/// Nearest-neighbour ×2 upsampling (B, C, H, W) → (B, C, 2H, 2W); the gradient of an input pixel
/// is the sum over its 2×2 block.
pub(crate) struct UpsampleNearest2x;

impl UpsampleNearest2x {
    fn forward<T: WithDType>(x: &[T], (b, c, h, w): (usize, usize, usize, usize)) -> Vec<T> {
        let mut out = vec![T::zero(); b * c * 4 * h * w];
        out.par_chunks_mut((4 * h * w).max(1))
            .zip(x.par_chunks((h * w).max(1)))
            .for_each(|(dst, plane)| {
                for y in 0..2 * h {
                    let src = &plane[(y / 2) * w..][..w];
                    let row = &mut dst[y * 2 * w..][..2 * w];
                    for (x, v) in src.iter().enumerate() {
                        row[2 * x] = *v;
                        row[2 * x + 1] = *v;
                    }
                }
            });
        out
    }

    fn backward<T: WithDType>(grad: &[T], (b, c, h, w): (usize, usize, usize, usize)) -> Vec<T> {
        let mut dx = vec![T::zero(); b * c * h * w];
        dx.par_chunks_mut((h * w).max(1))
            .zip(grad.par_chunks((4 * h * w).max(1)))
            .for_each(|(dst, g)| {
                for y in 0..2 * h {
                    let row = &g[y * 2 * w..][..2 * w];
                    let out = &mut dst[(y / 2) * w..][..w];
                    for (x, d) in out.iter_mut().enumerate() {
                        *d += row[2 * x] + row[2 * x + 1];
                    }
                }
            });
        dx
    }
}

impl CustomOp1 for UpsampleNearest2x {
    fn name(&self) -> &'static str {
        "facenet-upsample-nearest-2x"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = dims4(layout, self.name())?;
        dispatch_float!(storage.dtype(), self.name(), T => {
            let out = Self::forward::<T>(contiguous_slice(storage, layout)?, (b, c, h, w));
            Ok((T::to_cpu_storage_owned(out), Shape::from((b, c, 2 * h, 2 * w))))
        })
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (b, c, h, w) = arg.dims4()?;
        let dx = dispatch_float!(arg.dtype(), self.name(), T => {
            let dx = with_cpu_slice::<T, _>(grad, |g| Ok(Self::backward(g, (b, c, h, w))))?;
            Tensor::from_vec(dx, (b, c, h, w), &Device::Cpu)?
        });
        Ok(Some(dx))
    }
}

// ---------------------------------------------------------------------------------------------
// BatchNorm.

/// Per-channel mean and biased variance of (B, C, H, W) data, and the count per channel.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BatchStatistics {
    pub mean: Vec<f64>,
    pub variance: Vec<f64>,
    pub count: usize,
}

fn batch_statistics<T: WithDType>(
    x: &[T],
    (b, c, h, w): (usize, usize, usize, usize),
) -> BatchStatistics {
    let plane = h * w;
    let count = b * plane;
    let (mean, variance): (Vec<f64>, Vec<f64>) = (0..c)
        .into_par_iter()
        .map(|ch| {
            let planes = || (0..b).map(move |i| &x[(i * c + ch) * plane..][..plane]);
            let sum: f64 = planes().flat_map(|p| p.iter()).map(|v| v.to_f64()).sum();
            let mean = sum / count as f64;
            let squares: f64 = planes()
                .flat_map(|p| p.iter())
                .map(|v| (v.to_f64() - mean).powi(2))
                .sum();
            (mean, squares / count as f64)
        })
        .unzip();
    BatchStatistics {
        mean,
        variance,
        count,
    }
}

/// `y = x · scale[c] + shift[c]` over planes of (B, C, H, W), followed by a ReLU if `relu`.
fn channel_affine<T: WithDType>(
    x: &[T],
    scale: &[f64],
    shift: &[f64],
    (c, plane): (usize, usize),
    relu: bool,
) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(plane.max(1))
        .zip(x.par_chunks(plane.max(1)))
        .enumerate()
        .for_each(|(i, (dst, src))| {
            let (s, t) = (scale[i % c], shift[i % c]);
            for (d, v) in dst.iter_mut().zip(src) {
                let y = v.to_f64() * s + t;
                *d = T::from_f64(if relu { y.max(0.0) } else { y });
            }
        });
    out
}

/// Elements per parallel work unit of the purely elementwise kernels.
const ELEMENTWISE_CHUNK: usize = 1 << 14;

/// `grad` where `out > 0`, else 0: the backward of a ReLU given its output.
fn relu_mask<T: WithDType>(grad: &[T], out: &[T]) -> Vec<T> {
    let mut masked = vec![T::zero(); grad.len()];
    masked
        .par_chunks_mut(ELEMENTWISE_CHUNK)
        .zip(
            grad.par_chunks(ELEMENTWISE_CHUNK)
                .zip(out.par_chunks(ELEMENTWISE_CHUNK)),
        )
        .for_each(|(dst, (g, o))| {
            for ((d, gv), ov) in dst.iter_mut().zip(g).zip(o) {
                if *ov > T::zero() {
                    *d = *gv;
                }
            }
        });
    masked
}

/// `max(a + b, 0)` elementwise.
fn add_relu<T: WithDType>(a: &[T], b: &[T]) -> Vec<T> {
    let mut out = vec![T::zero(); a.len()];
    out.par_chunks_mut(ELEMENTWISE_CHUNK)
        .zip(
            a.par_chunks(ELEMENTWISE_CHUNK)
                .zip(b.par_chunks(ELEMENTWISE_CHUNK)),
        )
        .for_each(|(dst, (a, b))| {
            for ((d, av), bv) in dst.iter_mut().zip(a).zip(b) {
                let y = *av + *bv;
                if y > T::zero() {
                    *d = y;
                }
            }
        });
    out
}

/// `grad` masked by [`relu_masked`] when the op ended in a ReLU, `grad` itself (shared, not
/// copied) otherwise.
fn relu_masked_if(relu: bool, grad: &Tensor, out: &Tensor) -> candle_core::Result<Tensor> {
    if relu {
        relu_masked(grad, out)
    } else {
        Ok(grad.clone())
    }
}

/// The gradient `grad` masked to where the ReLU output `out` is positive.
fn relu_masked(grad: &Tensor, out: &Tensor) -> candle_core::Result<Tensor> {
    dispatch_float!(grad.dtype(), "relu backward", T => {
        let masked = with_cpu_slice::<T, _>(grad, |g| with_cpu_slice::<T, _>(out, |o| Ok(relu_mask(g, o))))?;
        Tensor::from_vec(masked, grad.shape(), &Device::Cpu)
    })
}

/// `relu(a + b)`: the end of a residual block.
pub(crate) struct AddRelu;

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "facenet-add-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            candle_core::bail!(
                "{}: shapes {:?} and {:?} differ",
                self.name(),
                l1.dims(),
                l2.dims()
            );
        }
        dispatch_float!(s1.dtype(), self.name(), T => {
            let out = add_relu::<T>(contiguous_slice(s1, l1)?, contiguous_slice(s2, l2)?);
            Ok((T::to_cpu_storage_owned(out), l1.shape().clone()))
        })
    }

    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = relu_masked(grad, res)?;
        Ok((Some(grad.clone()), Some(grad)))
    }
}

/// Per-channel Σ dy and Σ dy · x̂ with x̂ = (x − offset[c]) · factor[c].
fn channel_sums<T: WithDType>(
    x: &[T],
    dy: &[T],
    offset: &[f64],
    factor: &[f64],
    (b, c, h, w): (usize, usize, usize, usize),
) -> (Vec<f64>, Vec<f64>) {
    let plane = h * w;
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mut sum_dy, mut sum_dy_xhat) = (0.0, 0.0);
            for i in 0..b {
                let start = (i * c + ch) * plane;
                for (xv, gv) in x[start..start + plane]
                    .iter()
                    .zip(&dy[start..start + plane])
                {
                    let g = gv.to_f64();
                    sum_dy += g;
                    sum_dy_xhat += g * (xv.to_f64() - offset[ch]) * factor[ch];
                }
            }
            (sum_dy, sum_dy_xhat)
        })
        .unzip()
}

fn slice_f64<T: WithDType>(values: &[T]) -> Vec<f64> {
    values.iter().map(|v| v.to_f64()).collect()
}

fn channel_tensor(values: Vec<f64>, dtype: DType) -> candle_core::Result<Tensor> {
    let n = values.len();
    Tensor::from_vec(values, n, &Device::Cpu)?.to_dtype(dtype)
}

/// Gradients of training-mode BatchNorm: (dx, dγ, dβ).
fn batch_norm_backward<T: WithDType>(
    x: &[T],
    dy: &[T],
    gamma: &[T],
    eps: f64,
    (b, c, h, w): (usize, usize, usize, usize),
) -> candle_core::Result<(Tensor, Vec<f64>, Vec<f64>)> {
    let stats = batch_statistics(x, (b, c, h, w));
    let inv_std: Vec<f64> = stats
        .variance
        .iter()
        .map(|v| 1.0 / (v + eps).sqrt())
        .collect();
    let (sum_dy, sum_dy_xhat) = channel_sums(x, dy, &stats.mean, &inv_std, (b, c, h, w));
    let n = stats.count as f64;
    let plane = h * w;
    let mut dx = vec![T::zero(); x.len()];
    dx.par_chunks_mut(plane.max(1))
        .enumerate()
        .for_each(|(i, dst)| {
            let ch = i % c;
            let k = gamma[ch].to_f64() * inv_std[ch] / n;
            let src = &x[i * plane..][..plane];
            let grad = &dy[i * plane..][..plane];
            for ((d, xv), gv) in dst.iter_mut().zip(src).zip(grad) {
                let xhat = (xv.to_f64() - stats.mean[ch]) * inv_std[ch];
                *d = T::from_f64(k * (n * gv.to_f64() - sum_dy[ch] - xhat * sum_dy_xhat[ch]));
            }
        });
    Ok((
        Tensor::from_vec(dx, (b, c, h, w), &Device::Cpu)?,
        sum_dy_xhat,
        sum_dy,
    ))
}

/// Gradients of `x · scale[c] + shift[c]`: (dx, dscale, dshift).
fn channel_affine_backward<T: WithDType>(
    x: &[T],
    dy: &[T],
    scale: &[T],
    (b, c, h, w): (usize, usize, usize, usize),
) -> candle_core::Result<(Tensor, Vec<f64>, Vec<f64>)> {
    let zeros = vec![0.0; c];
    let (sum_dy, sum_dy_x) = channel_sums(x, dy, &zeros, &vec![1.0; c], (b, c, h, w));
    let dx = channel_affine(dy, &slice_f64(scale), &zeros, (c, h * w), false);
    Ok((
        Tensor::from_vec(dx, (b, c, h, w), &Device::Cpu)?,
        sum_dy_x,
        sum_dy,
    ))
}

/// BatchNorm in training mode: normalise (B, C, H, W) by the batch statistics of each channel,
/// then `γ · x̂ + β`, then a ReLU if `relu`. The statistics of the last forward pass are left in
/// `statistics` for the caller's running averages.
pub(crate) struct BatchNormTrain {
    pub eps: f64,
    pub relu: bool,
    pub statistics: Arc<Mutex<Option<BatchStatistics>>>,
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "facenet-batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = dims4(xl, self.name())?;
        dispatch_float!(xs.dtype(), self.name(), T => {
            let x = contiguous_slice::<T>(xs, xl)?;
            let gamma = slice_f64(contiguous_slice::<T>(gs, gl)?);
            let beta = slice_f64(contiguous_slice::<T>(bs, bl)?);
            let stats = batch_statistics(x, dims);
            let scale: Vec<f64> = gamma.iter().zip(&stats.variance).map(|(g, v)| g / (v + self.eps).sqrt()).collect();
            let shift: Vec<f64> = beta.iter().zip(&scale).zip(&stats.mean).map(|((b, s), m)| b - m * s).collect();
            let out = channel_affine(x, &scale, &shift, (dims.1, dims.2 * dims.3), self.relu);
            match self.statistics.lock() {
                Ok(mut slot) => *slot = Some(stats),
                Err(poisoned) => *poisoned.into_inner() = Some(stats),
            }
            Ok((T::to_cpu_storage_owned(out), Shape::from(dims)))
        })
    }

    /// With x̂ = (x − μ)/σ over n values per channel: dβ = Σ dy, dγ = Σ dy · x̂ and
    /// dx = γ / (n σ) · (n · dy − Σ dy − x̂ · Σ dy · x̂).
    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, c, h, w) = x.dims4()?;
        let grad = &relu_masked_if(self.relu, grad, res)?;
        let dtype = x.dtype();
        let (dx, d_gamma, d_beta) = dispatch_float!(dtype, self.name(), T => {
            with_cpu_slice::<T, _>(x, |xv| {
                with_cpu_slice::<T, _>(grad, |dy| {
                    with_cpu_slice::<T, _>(gamma, |g| batch_norm_backward(xv, dy, g, self.eps, (b, c, h, w)))
                })
            })?
        });
        Ok((
            Some(dx),
            Some(channel_tensor(d_gamma, dtype)?),
            Some(channel_tensor(d_beta, dtype)?),
        ))
    }
}

/// `y = x · scale[c] + shift[c]` on (B, C, H, W), then a ReLU if `relu`: BatchNorm in evaluation
/// mode (`scale` and `shift` computed from the running statistics by the caller, so that γ and β
/// get gradients through candle's own arithmetic) and a convolution's bias.
pub(crate) struct ChannelAffine {
    pub relu: bool,
}

impl CustomOp3 for ChannelAffine {
    fn name(&self) -> &'static str {
        "facenet-channel-affine"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ss: &CpuStorage,
        sl: &Layout,
        ts: &CpuStorage,
        tl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = dims4(xl, self.name())?;
        dispatch_float!(xs.dtype(), self.name(), T => {
            let scale = slice_f64(contiguous_slice::<T>(ss, sl)?);
            let shift = slice_f64(contiguous_slice::<T>(ts, tl)?);
            let out = channel_affine(contiguous_slice::<T>(xs, xl)?, &scale, &shift, (dims.1, dims.2 * dims.3), self.relu);
            Ok((T::to_cpu_storage_owned(out), Shape::from(dims)))
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        scale: &Tensor,
        _shift: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, c, h, w) = x.dims4()?;
        let grad = &relu_masked_if(self.relu, grad, res)?;
        let dtype = x.dtype();
        let (dx, d_scale, d_shift) = dispatch_float!(dtype, self.name(), T => {
            with_cpu_slice::<T, _>(x, |xv| {
                with_cpu_slice::<T, _>(grad, |dy| {
                    with_cpu_slice::<T, _>(scale, |s| channel_affine_backward(xv, dy, s, (b, c, h, w)))
                })
            })?
        });
        Ok((
            Some(dx),
            Some(channel_tensor(d_scale, dtype)?),
            Some(channel_tensor(d_shift, dtype)?),
        ))
    }
}
