//! A 2-D convolution as a candle custom op: im2col + gemm forward, gemm + col2im backward.
//!
//! candle 0.11 computes the input gradient of `conv2d` with `conv_transpose2d`, which on the CPU
//! is a scalar loop over every output pixel and kernel tap; it dominates a training step. Here
//! both directions are one matrix product each (candle's multithreaded gemm) plus a memory-bound
//! rearrangement (im2col or its adjoint col2im) parallelised with rayon:
//!
//! - forward: `Y (Co, B·N) = W (Co, K) · cols (K, B·N)`, with `K = Ci·kh·kw`, `N = Ho·Wo`;
//! - input gradient: `dcols = Wᵀ · dY`, then `dX = col2im(dcols)` (the adjoint of im2col);
//! - weight gradient: `dW = dY · colsᵀ`, with the columns recomputed from the input.
//!
//! Gradients are only computed for the operands that need them (`track_op`), so a frozen
//! network's weights or a network's input images cost nothing in the backward pass.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Device, Layout, Shape, Tensor, WithDType};

use super::cpu_ops::{contiguous_slice, dispatch_float, with_cpu_slice};
use rayon::prelude::*;

/// Sizes of one convolution: input (B, Ci, H, W), weight (Co, Ci, kh, kw), square stride and
/// zero padding in pixels; no dilation, no groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    pub batch: usize,
    pub c_in: usize,
    pub height: usize,
    pub width: usize,
    pub c_out: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub stride: usize,
    pub padding: usize,
}

impl ConvGeometry {
    fn new(
        input: &[usize],
        weight: &[usize],
        stride: usize,
        padding: usize,
    ) -> candle_core::Result<Self> {
        let (&[batch, c_in, height, width], &[c_out, w_c_in, k_h, k_w]) = (input, weight) else {
            candle_core::bail!(
                "im2col conv2d: expected 4-d input and weight, got {input:?} and {weight:?}"
            )
        };
        if w_c_in != c_in {
            candle_core::bail!("im2col conv2d: input has {c_in} channels, weight expects {w_c_in}")
        }
        if stride == 0 {
            candle_core::bail!("im2col conv2d: stride must be positive")
        }
        if height + 2 * padding < k_h || width + 2 * padding < k_w {
            candle_core::bail!(
                "im2col conv2d: input {height}×{width} with padding {padding} is smaller than the {k_h}×{k_w} kernel"
            )
        }
        Ok(Self {
            batch,
            c_in,
            height,
            width,
            c_out,
            k_h,
            k_w,
            stride,
            padding,
        })
    }

    pub fn out_h(&self) -> usize {
        (self.height + 2 * self.padding - self.k_h) / self.stride + 1
    }

    pub fn out_w(&self) -> usize {
        (self.width + 2 * self.padding - self.k_w) / self.stride + 1
    }

    /// Rows of the column matrix: Ci·kh·kw.
    fn rows(&self) -> usize {
        self.c_in * self.k_h * self.k_w
    }

    /// Output pixels per image: Ho·Wo.
    fn pixels(&self) -> usize {
        self.out_h() * self.out_w()
    }

    /// Range of output indices `o` whose input index `o·stride + tap − padding` lies in
    /// `0..extent`.
    fn valid_range(&self, tap: usize, extent: usize, out_extent: usize) -> std::ops::Range<usize> {
        let (s, p) = (self.stride, self.padding);
        let lo = if p > tap { (p - tap).div_ceil(s) } else { 0 };
        let hi = if extent + p > tap {
            ((extent - 1 + p - tap) / s + 1).min(out_extent)
        } else {
            0
        };
        lo..hi.max(lo)
    }
}

/// The column matrix (Ci·kh·kw, B·Ho·Wo) of a contiguous input (B, Ci, H, W); row
/// `(c, ky, kx)`, column `(b, oy, ox)` holds `x[b, c, oy·s + ky − p, ox·s + kx − p]` or 0.
pub(crate) fn im2col<T: WithDType>(input: &[T], g: &ConvGeometry) -> Vec<T> {
    let (oh, ow, n) = (g.out_h(), g.out_w(), g.pixels());
    let row_len = g.batch * n;
    let mut cols = vec![T::zero(); g.rows() * row_len];
    cols.par_chunks_mut(row_len.max(1))
        .enumerate()
        .for_each(|(row, dst)| {
            let c = row / (g.k_h * g.k_w);
            let ky = (row / g.k_w) % g.k_h;
            let kx = row % g.k_w;
            let ys = g.valid_range(ky, g.height, oh);
            let xs = g.valid_range(kx, g.width, ow);
            if xs.is_empty() {
                return;
            }
            for b in 0..g.batch {
                let plane = &input[(b * g.c_in + c) * g.height * g.width..][..g.height * g.width];
                for oy in ys.clone() {
                    let iy = oy * g.stride + ky - g.padding;
                    let src_row = &plane[iy * g.width..][..g.width];
                    let dst_row = &mut dst[b * n + oy * ow..][xs.clone()];
                    // Input columns of the valid outputs: every stride-th from the first one.
                    let first = xs.start * g.stride + kx - g.padding;
                    let src = src_row[first..].iter().step_by(g.stride);
                    for (d, v) in dst_row.iter_mut().zip(src) {
                        *d = *v;
                    }
                }
            }
        });
    cols
}

/// The adjoint of [`im2col`]: scatters-adds a column matrix (Ci·kh·kw, B·Ho·Wo) back onto a
/// (B, Ci, H, W) image.
pub(crate) fn col2im<T: WithDType>(cols: &[T], g: &ConvGeometry) -> Vec<T> {
    let (oh, ow, n) = (g.out_h(), g.out_w(), g.pixels());
    let row_len = g.batch * n;
    let plane_len = g.height * g.width;
    let mut image = vec![T::zero(); g.batch * g.c_in * plane_len];
    image
        .par_chunks_mut(plane_len.max(1))
        .enumerate()
        .for_each(|(plane_index, plane)| {
            let b = plane_index / g.c_in;
            let c = plane_index % g.c_in;
            for ky in 0..g.k_h {
                let ys = g.valid_range(ky, g.height, oh);
                for kx in 0..g.k_w {
                    let xs = g.valid_range(kx, g.width, ow);
                    if xs.is_empty() {
                        continue;
                    }
                    let row = (c * g.k_h + ky) * g.k_w + kx;
                    let src = &cols[row * row_len + b * n..][..n];
                    for oy in ys.clone() {
                        let iy = oy * g.stride + ky - g.padding;
                        let dst_row = &mut plane[iy * g.width..][..g.width];
                        let src_row = &src[oy * ow..][xs.clone()];
                        let first = xs.start * g.stride + kx - g.padding;
                        let dst = dst_row[first..].iter_mut().step_by(g.stride);
                        for (d, v) in dst.zip(src_row) {
                            *d += *v;
                        }
                    }
                }
            }
        });
    image
}

/// The custom op: `conv2d(input, weight)` with the given stride and zero padding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Im2colConv2d {
    pub stride: usize,
    pub padding: usize,
}

impl Im2colConv2d {
    fn forward_typed<T: WithDType>(
        &self,
        input: &[T],
        weight: &[T],
        g: &ConvGeometry,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (k, bn) = (g.rows(), g.batch * g.pixels());
        let cols = Tensor::from_vec(im2col(input, g), (k, bn), &Device::Cpu)?;
        let weight = Tensor::from_slice(weight, (g.c_out, k), &Device::Cpu)?;
        let out = weight
            .matmul(&cols)?
            .reshape((g.c_out, g.batch, g.pixels()))?
            .transpose(0, 1)?
            .flatten_all()?
            .to_vec1::<T>()?;
        let shape = Shape::from((g.batch, g.c_out, g.out_h(), g.out_w()));
        Ok((T::to_cpu_storage_owned(out), shape))
    }

    fn input_grad<T: WithDType>(
        &self,
        weight: &Tensor,
        grad: &Tensor,
        g: &ConvGeometry,
    ) -> candle_core::Result<Tensor> {
        let dcols = weight.reshape((g.c_out, g.rows()))?.t()?.matmul(grad)?;
        let image = with_cpu_slice::<T, _>(&dcols, |dcols| Ok(col2im(dcols, g)))?;
        Tensor::from_vec(image, (g.batch, g.c_in, g.height, g.width), &Device::Cpu)
    }

    fn weight_grad<T: WithDType>(
        &self,
        input: &Tensor,
        grad: &Tensor,
        g: &ConvGeometry,
    ) -> candle_core::Result<Tensor> {
        let cols = with_cpu_slice::<T, _>(input, |x| Ok(im2col(x, g)))?;
        let cols = Tensor::from_vec(cols, (g.rows(), g.batch * g.pixels()), &Device::Cpu)?;
        grad.matmul(&cols.t()?)?
            .reshape((g.c_out, g.c_in, g.k_h, g.k_w))
    }
}

impl CustomOp2 for Im2colConv2d {
    fn name(&self) -> &'static str {
        "facenet-im2col-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = ConvGeometry::new(l1.dims(), l2.dims(), self.stride, self.padding)?;
        if s1.dtype() != s2.dtype() {
            candle_core::bail!(
                "im2col conv2d: input is {:?}, weight {:?}",
                s1.dtype(),
                s2.dtype()
            );
        }
        dispatch_float!(s1.dtype(), self.name(), T => {
            self.forward_typed::<T>(contiguous_slice(s1, l1)?, contiguous_slice(s2, l2)?, &g)
        })
    }

    fn bwd(
        &self,
        input: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = ConvGeometry::new(input.dims(), weight.dims(), self.stride, self.padding)?;
        // dY as (Co, B·N): the layout both products want.
        let grad = grad_res
            .reshape((g.batch, g.c_out, g.pixels()))?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((g.c_out, g.batch * g.pixels()))?;
        let d_input = if input.track_op() {
            Some(
                dispatch_float!(input.dtype(), self.name(), T => self.input_grad::<T>(weight, &grad, &g)?),
            )
        } else {
            None
        };
        let d_weight = if weight.track_op() {
            Some(
                dispatch_float!(input.dtype(), self.name(), T => self.weight_grad::<T>(input, &grad, &g)?),
            )
        } else {
            None
        };
        Ok((d_input, d_weight))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct definition of the convolution, for comparison.
    fn direct_conv(x: &[f64], w: &[f64], g: &ConvGeometry) -> Vec<f64> {
        let (oh, ow) = (g.out_h(), g.out_w());
        let mut out = vec![0.0; g.batch * g.c_out * oh * ow];
        for b in 0..g.batch {
            for co in 0..g.c_out {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = 0.0;
                        for c in 0..g.c_in {
                            for ky in 0..g.k_h {
                                for kx in 0..g.k_w {
                                    let iy = (oy * g.stride + ky) as isize - g.padding as isize;
                                    let ix = (ox * g.stride + kx) as isize - g.padding as isize;
                                    if iy < 0
                                        || ix < 0
                                        || iy >= g.height as isize
                                        || ix >= g.width as isize
                                    {
                                        continue;
                                    }
                                    let xi = ((b * g.c_in + c) * g.height + iy as usize) * g.width
                                        + ix as usize;
                                    let wi = ((co * g.c_in + c) * g.k_h + ky) * g.k_w + kx;
                                    acc += x[xi] * w[wi];
                                }
                            }
                        }
                        out[((b * g.c_out + co) * oh + oy) * ow + ox] = acc;
                    }
                }
            }
        }
        out
    }

    /// Input (B, Ci, H, W), Co output channels, (kernel side, stride, padding).
    fn geometry(
        (batch, c_in, h, w): (usize, usize, usize, usize),
        c_out: usize,
        (k, s, p): (usize, usize, usize),
    ) -> ConvGeometry {
        ConvGeometry {
            batch,
            c_in,
            height: h,
            width: w,
            c_out,
            k_h: k,
            k_w: k,
            stride: s,
            padding: p,
        }
    }

    #[test]
    fn forward_matches_the_direct_sum() -> candle_core::Result<()> {
        for g in [
            geometry((2, 3, 7, 6), 4, (3, 1, 1)),
            geometry((2, 2, 9, 8), 3, (3, 2, 1)),
            geometry((1, 2, 11, 11), 2, (7, 2, 3)),
            geometry((3, 4, 5, 5), 2, (1, 2, 0)),
            geometry((1, 1, 4, 4), 1, (5, 1, 2)),
            // Taps that miss the image entirely.
            geometry((1, 1, 2, 3), 2, (7, 1, 3)),
            geometry((2, 1, 3, 2), 1, (7, 2, 3)),
        ] {
            let x: Vec<f64> = (0..g.batch * g.c_in * g.height * g.width)
                .map(|i| ((i * 37 % 101) as f64 - 50.0) / 25.0)
                .collect();
            let w: Vec<f64> = (0..g.c_out * g.c_in * g.k_h * g.k_w)
                .map(|i| ((i * 53 % 97) as f64 - 48.0) / 40.0)
                .collect();
            let (storage, shape) = Im2colConv2d {
                stride: g.stride,
                padding: g.padding,
            }
            .forward_typed::<f64>(&x, &w, &g)?;
            assert_eq!(shape.dims(), &[g.batch, g.c_out, g.out_h(), g.out_w()]);
            let got = storage.as_slice::<f64>()?;
            let want = direct_conv(&x, &w, &g);
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "{g:?}: {a} vs {b}");
            }
        }
        Ok(())
    }

    /// col2im is the adjoint of im2col: <im2col(x), c> = <x, col2im(c)> for all x, c.
    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        for g in [
            geometry((2, 3, 7, 6), 1, (3, 1, 1)),
            geometry((2, 2, 9, 8), 1, (3, 2, 1)),
            geometry((1, 2, 11, 10), 1, (7, 2, 3)),
            geometry((2, 2, 5, 5), 1, (1, 2, 0)),
            geometry((1, 1, 2, 3), 1, (7, 1, 3)),
            geometry((2, 1, 3, 2), 1, (7, 2, 3)),
        ] {
            let x: Vec<f64> = (0..g.batch * g.c_in * g.height * g.width)
                .map(|i| ((i * 31 % 17) as f64) - 8.0)
                .collect();
            let c: Vec<f64> = (0..g.rows() * g.batch * g.pixels())
                .map(|i| ((i * 13 % 23) as f64) - 11.0)
                .collect();
            let lhs: f64 = im2col(&x, &g).iter().zip(&c).map(|(a, b)| a * b).sum();
            let rhs: f64 = x.iter().zip(&col2im(&c, &g)).map(|(a, b)| a * b).sum();
            assert_eq!(lhs, rhs, "{g:?}");
        }
    }
}
