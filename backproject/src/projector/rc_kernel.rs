//! The inner loop of the range-compressed method: for the voxels of one tile, the sum over
//! TX/RX pairs of carrier × interpolated range profile.
//!
//! Two kernels compute the same sum:
//! - a portable one that reads the profiles by index (vectorised into gathers where the CPU
//!   has them), and
//! - an AVX-512 one that loads, per pair and tile, a window of 32 profile bins into two
//!   registers per part and picks samples out of it with a permutation (`vpermi2ps`) instead
//!   of gathering them from memory. It applies where every pair's samples for the whole tile
//!   fall in one window, which the tiles are sized for (4 × 4 × 8 voxels at the default
//!   spacing span about 13 bins); other tiles take the portable kernel.
//!
//! Both are compiled for AVX-512, AVX2+FMA and the baseline instruction set, chosen at run
//! time.

use nalgebra::Point3;

use super::bytes_of;
use crate::phasor::cis_turns_f32;

/// The shape of a tile along x, y, z (voxels).
pub(super) const TILE_SHAPE: [usize; 3] = [4, 4, 8];
/// Voxels per tile.
pub(super) const TILE: usize = TILE_SHAPE[0] * TILE_SHAPE[1] * TILE_SHAPE[2];
/// Voxels per vector of the AVX-512 kernel.
const LANES: usize = 16;
/// Vectors per tile.
const VECTORS: usize = TILE / LANES;
/// Profile bins in one permutation window (two AVX-512 registers).
const WINDOW: usize = 32;
/// The window kernel applies while the bins of one TX and one RX over a tile span at most
/// this much together: a linear look-up reads bins floor(x − w0) and floor(x − w0) + 1 with
/// x − w0 < span + 1, which must stay below the window's 32 with a margin for rounding.
const MAX_WINDOW_SPAN: f32 = (WINDOW - 4) as f32;

/// The kept range profiles of every pair, planar: pair `p` (= t·N_r + r) holds its real parts
/// at `[2p·stride, 2p·stride + stride)` and its imaginary parts in the next `stride` values.
/// Bins past `len` are zero, so a window of [`WINDOW`] bins from any kept bin stays inside.
pub(super) struct Profiles {
    data: Vec<f32>,
    stride: usize,
    len: usize,
}

impl Profiles {
    /// Values per pair and part for `len` kept bins.
    fn stride_for(len: usize) -> usize {
        (len + WINDOW).next_multiple_of(LANES)
    }
    /// Bytes needed for `n_pairs` profiles of `len` kept bins.
    pub(super) fn bytes(n_pairs: usize, len: usize) -> u64 {
        bytes_of::<f32>(2 * Self::stride_for(len)).saturating_mul(n_pairs as u64)
    }
    /// Zeroed profiles.
    pub(super) fn zeros(n_pairs: usize, len: usize) -> Self {
        let stride = Self::stride_for(len);
        Self {
            data: vec![0.0; 2 * stride * n_pairs],
            stride,
            len,
        }
    }
    /// Values of one pair (real parts, then imaginary parts): `2·stride`.
    pub(super) fn pair_values(&self) -> usize {
        2 * self.stride
    }
    /// All values, pair-major, with the splitter of one pair's values.
    pub(super) fn values_mut(&mut self) -> (&mut [f32], PairSplitter) {
        let splitter = PairSplitter {
            stride: self.stride,
            len: self.len,
        };
        (&mut self.data, splitter)
    }
}

/// Splits the values of one pair into its kept real and imaginary parts.
#[derive(Debug, Clone, Copy)]
pub(super) struct PairSplitter {
    stride: usize,
    len: usize,
}

impl PairSplitter {
    /// `(re, im)`, `len` values each.
    pub(super) fn split<'p>(&self, pair: &'p mut [f32]) -> (&'p mut [f32], &'p mut [f32]) {
        let (re, im) = pair.split_at_mut(self.stride);
        (&mut re[..self.len], &mut im[..self.len])
    }
}

/// What every tile shares: the profiles and the geometry that indexes them.
pub(super) struct TileContext<'a> {
    pub profiles: &'a Profiles,
    pub tx: &'a [Point3<f64>],
    pub rx: &'a [Point3<f64>],
    /// First kept bin of each TX and RX (pair (t, r) keeps bins from `tx[t] + rx[r]`).
    pub tx_first_bin: &'a [i64],
    pub rx_first_bin: &'a [i64],
    /// Profile bins per metre of path.
    pub bins_per_m: f64,
    /// Carrier turns per metre of path: f_c/c.
    pub carrier_turns_per_m: f64,
}

/// Per-element tables over the voxels of one tile: the path length in profile bins (minus the
/// element's first kept bin), its minimum over the tile, and the carrier phasor
/// exp(j2π·f_c·d/c) split into real and imaginary parts.
pub(super) struct TileTables {
    bins: Vec<[f32; TILE]>,
    min: Vec<f32>,
    re: Vec<[f32; TILE]>,
    im: Vec<[f32; TILE]>,
    /// The largest spread of `bins` over the tile, any element.
    span: f32,
}

impl TileTables {
    pub(super) fn new(n_elements: usize) -> Self {
        Self {
            bins: vec![[0.0; TILE]; n_elements],
            min: vec![0.0; n_elements],
            re: vec![[0.0; TILE]; n_elements],
            im: vec![[0.0; TILE]; n_elements],
            span: 0.0,
        }
    }
    pub(super) fn bytes(n_elements: usize) -> u64 {
        bytes_of::<[f32; TILE]>(3 * n_elements).saturating_add(bytes_of::<f32>(n_elements))
    }
    #[inline(always)]
    fn fill(
        &mut self,
        elements: &[Point3<f64>],
        first_bins: &[i64],
        voxels: &[Point3<f64>; TILE],
        bins_per_m: f64,
        carrier_turns_per_m: f64,
    ) {
        let mut span = 0.0f32;
        for (e, (p, &first)) in elements.iter().zip(first_bins).enumerate() {
            let (bins, re, im) = (&mut self.bins[e], &mut self.re[e], &mut self.im[e]);
            for v in 0..TILE {
                let d = (voxels[v] - p).norm();
                bins[v] = (d * bins_per_m - first as f64) as f32;
                let turns = d * carrier_turns_per_m;
                let (c, s) = cis_turns_f32((turns - turns.floor()) as f32);
                re[v] = c;
                im[v] = s;
            }
            let (lo, hi) = bins
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &b| {
                    (lo.min(b), hi.max(b))
                });
            self.min[e] = lo;
            span = span.max(hi - lo);
        }
        self.span = span;
    }
}

/// Fills both tables for a tile.
#[inline(always)]
fn fill_tables(
    ctx: &TileContext<'_>,
    voxels: &[Point3<f64>; TILE],
    tx_tables: &mut TileTables,
    rx_tables: &mut TileTables,
) {
    tx_tables.fill(
        ctx.tx,
        ctx.tx_first_bin,
        voxels,
        ctx.bins_per_m,
        ctx.carrier_turns_per_m,
    );
    rx_tables.fill(
        ctx.rx,
        ctx.rx_first_bin,
        voxels,
        ctx.bins_per_m,
        ctx.carrier_turns_per_m,
    );
}

/// Multiply-add, fused where the CPU has FMA (chosen at compile time per kernel copy).
trait MulAdd {
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}
/// a·b + c with one rounding (a hardware FMA in the kernels compiled for it).
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
struct Fused;
impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}
/// a·b + c with two roundings, for CPUs without FMA (where `f32::mul_add` is a library call).
#[cfg_attr(target_arch = "aarch64", allow(dead_code))]
struct Unfused;
impl MulAdd for Unfused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// The portable kernel: Σ_tr exp(j2π·f_c·τ)·interp(q_tr, τ) over the voxels of one tile
/// (not yet normalised), reading the profiles by index.
#[inline(always)]
fn gather_sum<F: MulAdd, const LINEAR: bool>(
    ctx: &TileContext<'_>,
    tx_tables: &TileTables,
    rx_tables: &TileTables,
) -> ([f32; TILE], [f32; TILE]) {
    let profiles = ctx.profiles;
    let len = profiles.len;
    // Clamping keeps every look-up inside its profile whatever the rounding (and whatever
    // NaN); by construction of the layout it never changes a value.
    let last = (len - 2) as f32;
    let n_rx = ctx.rx.len();
    let mut sum_re = [0.0f32; TILE];
    let mut sum_im = [0.0f32; TILE];
    for (t, tx_profiles) in profiles
        .data
        .chunks_exact(profiles.pair_values() * n_rx)
        .enumerate()
    {
        let a = &tx_tables.bins[t];
        let mut acc_re = [0.0f32; TILE];
        let mut acc_im = [0.0f32; TILE];
        for (r, pair) in tx_profiles.chunks_exact(profiles.pair_values()).enumerate() {
            let (q_re, q_im) = pair.split_at(profiles.stride);
            let (q_re, q_im) = (&q_re[..len], &q_im[..len]);
            let (b, b_re, b_im) = (&rx_tables.bins[r], &rx_tables.re[r], &rx_tables.im[r]);
            for v in 0..TILE {
                let x = a[v] + b[v];
                let (p_re, p_im) = if LINEAR {
                    // `max` then `min` (unlike `clamp`) also bring NaN into range.
                    let floor = x.floor().max(0.0).min(last);
                    let frac = x - floor;
                    // SAFETY: `floor` is an integer in [0, len − 2] (exact in f32: `len` ≤
                    // `MAX_PROFILE_LEN`), so the conversion is exact and both `i` and
                    // `i + 1` index into `q_re` and `q_im`, of length `len`. Unchecked reads
                    // let the loop vectorise into gathers.
                    let (re0, re1, im0, im1) = unsafe {
                        let i = floor.to_int_unchecked::<i32>() as usize;
                        (
                            *q_re.get_unchecked(i),
                            *q_re.get_unchecked(i + 1),
                            *q_im.get_unchecked(i),
                            *q_im.get_unchecked(i + 1),
                        )
                    };
                    (
                        F::mul_add(frac, re1 - re0, re0),
                        F::mul_add(frac, im1 - im0, im0),
                    )
                } else {
                    let nearest = (x + 0.5).floor().max(0.0).min(last + 1.0);
                    // SAFETY: `nearest` is an integer in [0, len − 1], as above.
                    unsafe {
                        let i = nearest.to_int_unchecked::<i32>() as usize;
                        (*q_re.get_unchecked(i), *q_im.get_unchecked(i))
                    }
                };
                acc_re[v] = F::mul_add(p_re, b_re[v], F::mul_add(-p_im, b_im[v], acc_re[v]));
                acc_im[v] = F::mul_add(p_re, b_im[v], F::mul_add(p_im, b_re[v], acc_im[v]));
            }
        }
        let (a_re, a_im) = (&tx_tables.re[t], &tx_tables.im[t]);
        for v in 0..TILE {
            sum_re[v] = F::mul_add(
                a_re[v],
                acc_re[v],
                F::mul_add(-a_im[v], acc_im[v], sum_re[v]),
            );
            sum_im[v] = F::mul_add(
                a_re[v],
                acc_im[v],
                F::mul_add(a_im[v], acc_re[v], sum_im[v]),
            );
        }
    }
    (sum_re, sum_im)
}

/// The AVX-512 window kernel.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{LANES, TILE, TileContext, TileTables, VECTORS, WINDOW};

    /// Loads 16 floats.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn load(values: &[f32; LANES]) -> __m512 {
        // SAFETY: 16 readable floats; unaligned loads are allowed.
        unsafe { _mm512_loadu_ps(values.as_ptr()) }
    }

    /// The 16-voxel vectors of a table row.
    #[inline(always)]
    fn vectors(row: &[f32; TILE]) -> &[[f32; LANES]] {
        row.as_chunks::<LANES>().0
    }

    /// The window of [`WINDOW`] bins of one profile part from bin `first`, as two registers.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn window(part: &[f32], first: usize) -> (__m512, __m512) {
        let halves = part[first..first + WINDOW].as_chunks::<LANES>().0;
        (load(&halves[0]), load(&halves[1]))
    }

    /// Pairs between a window's prefetch and its use: the profiles live in the last-level
    /// cache, and each pair's compute is too short to hide its latency alone.
    const PREFETCH_PAIRS: usize = 6;

    /// Asks for the window of pair (t, r) — r may run past the last RX into the next TX —
    /// to be brought into the cache.
    #[inline(always)]
    fn prefetch_window(
        ctx: &TileContext<'_>,
        tx_tables: &TileTables,
        rx_tables: &TileTables,
        t: usize,
        r: usize,
    ) {
        let n_rx = rx_tables.min.len();
        let (t, r) = if r < n_rx { (t, r) } else { (t + 1, r - n_rx) };
        let (Some(a_min), Some(b_min)) = (tx_tables.min.get(t), rx_tables.min.get(r)) else {
            return;
        };
        let profiles = ctx.profiles;
        let start = (t * n_rx + r) * profiles.pair_values() + (a_min + b_min).floor() as usize;
        // A window of each part covers 128 bytes: at most three cache lines.
        for offset in [
            0,
            16,
            31,
            profiles.stride,
            profiles.stride + 16,
            profiles.stride + 31,
        ] {
            let address = profiles.data.as_ptr().wrapping_add(start + offset);
            // SAFETY: SSE is part of x86_64; a prefetch is a hint that never faults nor
            // reads into the program, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(address.cast()) };
        }
    }

    /// As [`super::gather_sum`], for tiles whose spans fit the window.
    #[target_feature(enable = "avx512f")]
    pub(super) fn window_sum<const LINEAR: bool>(
        ctx: &TileContext<'_>,
        tx_tables: &TileTables,
        rx_tables: &TileTables,
    ) -> ([f32; TILE], [f32; TILE]) {
        let profiles = ctx.profiles;
        let (stride, pair_values) = (profiles.stride, profiles.pair_values());
        let n_rx = ctx.rx.len();
        let one = _mm512_set1_epi32(1);
        let mut sum_re = [_mm512_setzero_ps(); VECTORS];
        let mut sum_im = [_mm512_setzero_ps(); VECTORS];
        for (t, tx_profiles) in profiles.data.chunks_exact(pair_values * n_rx).enumerate() {
            let a = vectors(&tx_tables.bins[t]);
            let a_min = tx_tables.min[t];
            let mut acc_re = [_mm512_setzero_ps(); VECTORS];
            let mut acc_im = [_mm512_setzero_ps(); VECTORS];
            for (r, pair) in tx_profiles.chunks_exact(pair_values).enumerate() {
                prefetch_window(ctx, tx_tables, rx_tables, t, r + PREFETCH_PAIRS);
                // The window starts at the lowest bin any voxel of the tile can read:
                // a + b ≥ a_min + b_min, and rounding is monotone.
                let first = (a_min + rx_tables.min[r]).floor();
                let (re_lo, re_hi) = window(&pair[..stride], first as usize);
                let (im_lo, im_hi) = window(&pair[stride..], first as usize);
                let first = _mm512_set1_ps(first);
                let (b, b_re, b_im) = (
                    vectors(&rx_tables.bins[r]),
                    vectors(&rx_tables.re[r]),
                    vectors(&rx_tables.im[r]),
                );
                for k in 0..VECTORS {
                    let x = _mm512_sub_ps(_mm512_add_ps(load(&a[k]), load(&b[k])), first);
                    // Permutation indices use their low 5 bits only: whatever x, no read
                    // leaves the window.
                    let (p_re, p_im) = if LINEAR {
                        let floor = _mm512_roundscale_ps::<
                            { _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC },
                        >(x);
                        let frac = _mm512_sub_ps(x, floor);
                        let i0 = _mm512_cvttps_epi32(floor);
                        let i1 = _mm512_add_epi32(i0, one);
                        let re0 = _mm512_permutex2var_ps(re_lo, i0, re_hi);
                        let re1 = _mm512_permutex2var_ps(re_lo, i1, re_hi);
                        let im0 = _mm512_permutex2var_ps(im_lo, i0, im_hi);
                        let im1 = _mm512_permutex2var_ps(im_lo, i1, im_hi);
                        (
                            _mm512_fmadd_ps(frac, _mm512_sub_ps(re1, re0), re0),
                            _mm512_fmadd_ps(frac, _mm512_sub_ps(im1, im0), im0),
                        )
                    } else {
                        let nearest = _mm512_cvtps_epi32(_mm512_roundscale_ps::<
                            { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
                        >(x));
                        (
                            _mm512_permutex2var_ps(re_lo, nearest, re_hi),
                            _mm512_permutex2var_ps(im_lo, nearest, im_hi),
                        )
                    };
                    let (c_re, c_im) = (load(&b_re[k]), load(&b_im[k]));
                    acc_re[k] =
                        _mm512_fmadd_ps(p_re, c_re, _mm512_fnmadd_ps(p_im, c_im, acc_re[k]));
                    acc_im[k] = _mm512_fmadd_ps(p_re, c_im, _mm512_fmadd_ps(p_im, c_re, acc_im[k]));
                }
            }
            let (a_re, a_im) = (vectors(&tx_tables.re[t]), vectors(&tx_tables.im[t]));
            for k in 0..VECTORS {
                let (c_re, c_im) = (load(&a_re[k]), load(&a_im[k]));
                sum_re[k] = _mm512_fmadd_ps(
                    c_re,
                    acc_re[k],
                    _mm512_fnmadd_ps(c_im, acc_im[k], sum_re[k]),
                );
                sum_im[k] =
                    _mm512_fmadd_ps(c_re, acc_im[k], _mm512_fmadd_ps(c_im, acc_re[k], sum_im[k]));
            }
        }
        let mut out_re = [0.0f32; TILE];
        let mut out_im = [0.0f32; TILE];
        let (re_vectors, im_vectors) = (
            out_re.as_chunks_mut::<LANES>().0,
            out_im.as_chunks_mut::<LANES>().0,
        );
        for k in 0..VECTORS {
            // SAFETY: 16 writable floats each.
            unsafe {
                _mm512_storeu_ps(re_vectors[k].as_mut_ptr(), sum_re[k]);
                _mm512_storeu_ps(im_vectors[k].as_mut_ptr(), sum_im[k]);
            }
        }
        (out_re, out_im)
    }
}

/// The instruction sets the tile kernel is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    Baseline,
}

impl Isa {
    /// Every instruction set this CPU can run the kernel with.
    #[cfg(test)]
    pub(super) fn available() -> Vec<Self> {
        let mut all = vec![Self::Baseline];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                all.push(Self::Avx2Fma);
            }
            if Self::detect() == Self::Avx512 {
                all.push(Self::Avx512);
            }
        }
        all
    }

    /// The best instruction set of this CPU.
    pub(super) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
            {
                return Self::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Self::Avx2Fma;
            }
        }
        Self::Baseline
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn tile_sum_avx512<const LINEAR: bool>(
    ctx: &TileContext<'_>,
    voxels: &[Point3<f64>; TILE],
    tx_tables: &mut TileTables,
    rx_tables: &mut TileTables,
) -> ([f32; TILE], [f32; TILE]) {
    fill_tables(ctx, voxels, tx_tables, rx_tables);
    if tx_tables.span + rx_tables.span <= MAX_WINDOW_SPAN {
        avx512::window_sum::<LINEAR>(ctx, tx_tables, rx_tables)
    } else {
        gather_sum::<Fused, LINEAR>(ctx, tx_tables, rx_tables)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn tile_sum_avx2<const LINEAR: bool>(
    ctx: &TileContext<'_>,
    voxels: &[Point3<f64>; TILE],
    tx_tables: &mut TileTables,
    rx_tables: &mut TileTables,
) -> ([f32; TILE], [f32; TILE]) {
    fill_tables(ctx, voxels, tx_tables, rx_tables);
    gather_sum::<Fused, LINEAR>(ctx, tx_tables, rx_tables)
}

fn tile_sum_baseline<const LINEAR: bool>(
    ctx: &TileContext<'_>,
    voxels: &[Point3<f64>; TILE],
    tx_tables: &mut TileTables,
    rx_tables: &mut TileTables,
) -> ([f32; TILE], [f32; TILE]) {
    fill_tables(ctx, voxels, tx_tables, rx_tables);
    #[cfg(target_arch = "aarch64")]
    return gather_sum::<Fused, LINEAR>(ctx, tx_tables, rx_tables);
    #[cfg(not(target_arch = "aarch64"))]
    return gather_sum::<Unfused, LINEAR>(ctx, tx_tables, rx_tables);
}

/// Σ_tr exp(j2π·f_c·τ)·interp(q_tr, τ) over the voxels of one tile (not yet normalised):
/// real and imaginary parts. `tx_tables` and `rx_tables` are scratch space sized for the
/// array.
pub(super) fn tile_sum(
    isa: Isa,
    linear: bool,
    ctx: &TileContext<'_>,
    voxels: &[Point3<f64>; TILE],
    tx_tables: &mut TileTables,
    rx_tables: &mut TileTables,
) -> ([f32; TILE], [f32; TILE]) {
    match (isa, linear) {
        // SAFETY (all x86_64 arms): `Isa::detect` found these features on this CPU.
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, true) => unsafe {
            tile_sum_avx512::<true>(ctx, voxels, tx_tables, rx_tables)
        },
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, false) => unsafe {
            tile_sum_avx512::<false>(ctx, voxels, tx_tables, rx_tables)
        },
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx2Fma, true) => unsafe { tile_sum_avx2::<true>(ctx, voxels, tx_tables, rx_tables) },
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx2Fma, false) => unsafe {
            tile_sum_avx2::<false>(ctx, voxels, tx_tables, rx_tables)
        },
        (Isa::Baseline, true) => tile_sum_baseline::<true>(ctx, voxels, tx_tables, rx_tables),
        (Isa::Baseline, false) => tile_sum_baseline::<false>(ctx, voxels, tx_tables, rx_tables),
    }
}
