//! The adjoint of the fast kernel's model (docs/physics.md §3.6): the gradient of a real loss
//! of the clean signal by every source's quantities, in f32 SIMD lanes, for the differentiable
//! renderer's fitting loop. [`Simulator::gradient`](crate::Simulator::gradient) is its exact
//! `f64` reference, term by term.
//!
//! Per channel (t, r) and source h the term of the sum is a·F_b(u)·exp(−jk_n·L) with
//! a = G_t·G_r·R: G_t and G_r the per-side amplitude factors of the fast kernel's tables,
//! R = diffuse + specular·w(cos^{n_s} θ_H), L = L_t + L_r and, for a facet, u_i = k_c·(B_t,i +
//! B_r,i) its corner phases. For a loss ℓ with signal cotangent s̄ the pair's share of ℓ is
//! Re Σ_b F_b·a·Z_b with Z_b = Σ_{n∈b} conj(s̄_n)·exp(−jk_n·L): per pair one sweep over the
//! frequencies (a phasor recurrence, like the forward kernel's) gives Z_b and Σ k_n·z_n, and
//! from them the cotangents of a, L and u. Those of the per-side quantities (G, n·ω, L, ω·ρ_i,
//! ω) are summed over the partners per (element, source), and turned into the source's
//! gradient in `f64` once per (element, source), so the O(N_t·N_r·N_h) part stays in lanes.
//!
//! Sources run in lanes, blocks of [`CHUNKS`] chunks in parallel (rayon); each block sums its
//! channels in a fixed order, so the result does not depend on the number of threads.

use nalgebra::{Point3, Vector3};
use num_complex::{Complex32, Complex64};
use rayon::prelude::*;

use super::direct::wavenumbers;
use super::fast::{
    Bands, CHUNKS, COS, CornerPhases, Exponent, FREQ_BLOCK, Fields, GAIN, Lane, Lobe, MAX_TERMS,
    P0_IM, P0_RE, STEP_IM, STEP_RE, SideTable, WX, WY, WZ, horner_js, power_whole,
};
use super::lanes::{C32x8, F32x8, LANES};
use super::{Channels, Reflectance, SUB_BANDS, Source, sub_band_of};
use crate::gradient::{SourceCotangent, view};

/// Per-side cotangents, summed over the partners, per (element, chunk of sources): of the
/// table's GAIN, of n·ω (through cos θ_H), of the path, of ω·ρ_0 and ω·ρ_1, of ω through the
/// half vector's length (x, y, z), and (TX side) of the reflectance's diffuse and specular
/// weights.
const G_BAR: usize = 0;
const C_BAR: usize = 1;
const L_BAR: usize = 2;
const B0_BAR: usize = 3;
const B1_BAR: usize = 4;
const OX_BAR: usize = 5;
const DIFFUSE_BAR: usize = 8;
const SPECULAR_BAR: usize = 9;
const BARS: usize = 10;
type Bars = [Lane; BARS];

/// What the cotangent step needs of one kept pair of chunks.
#[derive(Clone, Copy, Default)]
struct Pair {
    /// The chunk's position in the block.
    chunk: usize,
    g_t: Lane,
    g_r: Lane,
    /// R, w(L)·L and ∂R/∂cos θ_H.
    reflectance: Lane,
    windowed: Lane,
    d_reflectance: Lane,
    cos_h: Lane,
    /// |ω_t + ω_r|².
    h_sq: Lane,
    /// Facets: u_0, u_1 and the integral with its derivatives by e_2 and e_3 per sub-band.
    u: [Lane; 2],
    facet: [[C32x8; 3]; SUB_BANDS],
}

/// Per-thread scratch of one block.
struct Scratch {
    pairs: Vec<Pair>,
    phasor: Vec<C32x8>,
    step: Vec<C32x8>,
    /// Per kept pair and sub-band: Σ z_n and Σ n·z_n.
    z: Vec<[[C32x8; 2]; SUB_BANDS]>,
    series: [[Lane; MAX_TERMS]; 3],
}

/// The sources' cotangents for the clean signal's cotangent `cotangent` (`[tx][rx][frequency]`,
/// s̄ = ∂ℓ/∂Re s + j·∂ℓ/∂Im s) through the fast kernel's model of `sources` with `reflectance`
/// (its lobe window included), one per source, in the sources' order.
pub(crate) fn adjoint(
    channels: &Channels,
    sources: &[Source],
    reflectance: &Reflectance,
    cotangent: &[Complex64],
) -> Vec<SourceCotangent> {
    let (n_t, n_r, n_f) = (channels.tx.len(), channels.rx.len(), channels.sweep.steps());
    if sources.is_empty() || n_t * n_r * n_f == 0 {
        return vec![SourceCotangent::default(); sources.len()];
    }
    let facets = sources[0].offsets.is_some();
    let tx = SideTable::build(channels, channels.tx, sources, true);
    let rx = SideTable::build(channels, channels.rx, sources, false);
    let lobe = Lobe::of(reflectance);
    let bands = facets.then(|| Bands::new(channels));
    let band_of = if facets {
        sub_band_of(n_f, FREQ_BLOCK)
    } else {
        vec![0; n_f]
    };
    // conj(s̄_n) and n·conj(s̄_n), per channel.
    let weights: Vec<[Complex32; 2]> = (cotangent.iter().enumerate())
        .map(|(i, s)| {
            let c = Complex32::new(s.re as f32, -s.im as f32);
            [c, c * (i % n_f) as f32]
        })
        .collect();
    let (k0, dk) = wavenumbers(channels);
    let kernel = Kernel {
        channels,
        tx: &tx,
        rx: &rx,
        lobe,
        reflectance: *reflectance,
        bands: bands.as_ref(),
        band_of: &band_of,
        weights: &weights,
        k: (k0 as f32, dk as f32),
    };
    let blocks: Vec<(Vec<Bars>, Vec<Bars>)> = (0..tx.n_chunks.div_ceil(CHUNKS))
        .into_par_iter()
        .map(|b| kernel.block(b * CHUNKS..((b + 1) * CHUNKS).min(tx.n_chunks)))
        .collect();
    // Per source: the per-side sums turned into the source's cotangent, in f64.
    (sources.par_iter().enumerate())
        .map(|(h, s)| {
            let (chunk, lane) = (h / LANES, h % LANES);
            let (block, local) = (chunk / CHUNKS, chunk % CHUNKS);
            let (tx_bars, rx_bars) = &blocks[block];
            let width = tx_bars.len() / n_t;
            let mut out = SourceCotangent::default();
            for (elements, bars, tx_side) in
                [(channels.tx, tx_bars, true), (channels.rx, rx_bars, false)]
            {
                for (e, element) in elements.iter().enumerate() {
                    let b = &bars[e * width + local];
                    let get = |field: usize| f64::from(b[field].0[lane]);
                    side_adjoint(channels, s, element, tx_side, &get, &mut out);
                }
            }
            out
        })
        .collect()
}

/// Adds to `out` the cotangent of source `s` through its table entries for `element` (the TX
/// side carries the weight and the roughness), given the summed pair cotangents `bar`.
fn side_adjoint(
    channels: &Channels,
    s: &Source,
    element: &Point3<f64>,
    tx_side: bool,
    bar: &dyn Fn(usize) -> f64,
    out: &mut SourceCotangent,
) {
    let v = view(channels, element, &s.position);
    let (d, omega) = (v.distance, v.direction);
    let [gain, d_gain_cos, d_gain_size] = v.gain;
    let cos = s.normal.map_or(0.0, |n| n.dot(&omega));
    let facing = if s.normal.is_some() {
        cos.max(0.0)
    } else {
        1.0
    };
    let weight = if tx_side { s.weight } else { 1.0 };
    // GAIN = w·max(0, n·ω)·g/d.
    let g_bar = bar(G_BAR);
    let mut cos_bar = bar(C_BAR);
    if s.normal.is_some() && cos > 0.0 {
        cos_bar += g_bar * weight * gain / d;
    }
    if tx_side {
        out.weight += g_bar * facing * gain / d;
        out.diffuse += bar(DIFFUSE_BAR);
        out.specular += bar(SPECULAR_BAR);
    }
    let gain_bar = g_bar * weight * facing / d;
    let d_bar = bar(L_BAR) - g_bar * weight * facing * gain / (d * d);
    let mut omega_bar = Vector3::new(bar(OX_BAR), bar(OX_BAR + 1), bar(OX_BAR + 2));
    omega_bar.z -= gain_bar * d_gain_cos;
    out.antenna_size_cm += gain_bar * d_gain_size;
    if let Some(n) = s.normal {
        out.normal += omega * cos_bar;
        omega_bar += n * cos_bar;
    }
    if let Some(rho) = s.offsets {
        for (i, field) in [B0_BAR, B1_BAR].into_iter().enumerate() {
            omega_bar += rho[i] * bar(field);
            out.offsets[i] += omega * bar(field);
        }
    }
    // ω = (p_e − P)/d, d = |p_e − P|.
    out.position -= (omega_bar - omega * omega_bar.dot(&omega)) / d + omega * d_bar;
}

/// What every block shares.
struct Kernel<'a> {
    channels: &'a Channels<'a>,
    tx: &'a SideTable,
    rx: &'a SideTable,
    lobe: Lobe,
    /// For its lobe window ([`Reflectance::windowed`]).
    reflectance: Reflectance,
    bands: Option<&'a Bands>,
    band_of: &'a [usize],
    weights: &'a [[Complex32; 2]],
    k: (f32, f32),
}

impl Kernel<'_> {
    /// The per-side sums of one block of chunks: `[element][chunk]` for TX, then RX.
    fn block(&self, chunks: std::ops::Range<usize>) -> (Vec<Bars>, Vec<Bars>) {
        #[cfg(target_arch = "x86_64")]
        if super::fast::has_fma() {
            // SAFETY: has_fma() reports AVX2 and FMA.
            return unsafe { self.block_avx2_fma(chunks) };
        }
        self.block_impl::<false>(chunks)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn block_avx2_fma(&self, chunks: std::ops::Range<usize>) -> (Vec<Bars>, Vec<Bars>) {
        self.block_impl::<true>(chunks)
    }

    #[inline(always)]
    fn block_impl<const FMA: bool>(
        &self,
        chunks: std::ops::Range<usize>,
    ) -> (Vec<Bars>, Vec<Bars>) {
        let (n_t, n_r) = (self.channels.tx.len(), self.channels.rx.len());
        let n_f = self.band_of.len();
        let width = chunks.len();
        let mut tx_bars = vec![[F32x8::default(); BARS]; n_t * width];
        let mut rx_bars = vec![[F32x8::default(); BARS]; n_r * width];
        let mut scratch = Scratch {
            pairs: Vec::with_capacity(width),
            phasor: vec![C32x8::default(); width],
            step: vec![C32x8::default(); width],
            z: vec![[[C32x8::default(); 2]; SUB_BANDS]; width],
            series: [[F32x8::default(); MAX_TERMS]; 3],
        };
        for t in 0..n_t {
            let tx = &self.tx.row(t)[chunks.clone()];
            for r in 0..n_r {
                if !self.channels.is_alive(t, r) {
                    continue;
                }
                let rx = &self.rx.row(r)[chunks.clone()];
                let weights = &self.weights[(t * n_r + r) * n_f..][..n_f];
                self.prepare::<FMA>(tx, rx, &mut scratch);
                self.sweep::<FMA>(weights, &mut scratch);
                let (tx_bars, rx_bars) = (
                    &mut tx_bars[t * width..][..width],
                    &mut rx_bars[r * width..][..width],
                );
                self.cotangents(tx, rx, &scratch, tx_bars, rx_bars);
            }
        }
        (tx_bars, rx_bars)
    }

    /// The kept pairs of chunks of one channel (facets: those with a lobe above the floor in
    /// some lane), with their phasors and steps.
    #[inline(always)]
    fn prepare<const FMA: bool>(&self, tx: &[Fields], rx: &[Fields], scratch: &mut Scratch) {
        scratch.pairs.clear();
        let lobe = &self.lobe;
        for (chunk, (t, r)) in tx.iter().zip(rx).enumerate() {
            let mut pair = Pair {
                chunk,
                g_t: t[GAIN],
                g_r: r[GAIN],
                ..Pair::default()
            };
            if lobe.specular == 0.0 && self.bands.is_none() {
                pair.reflectance = F32x8::splat(lobe.diffuse);
            } else {
                let along = (t[COS] + r[COS]).max(F32x8::default());
                let dot = t[WX] * r[WX] + t[WY] * r[WY] + t[WZ] * r[WZ];
                let h_sq = (F32x8::splat(2.0) + F32x8::splat(2.0) * dot)
                    .max(F32x8::splat(f32::MIN_POSITIVE));
                let cos_h = along.div(h_sq.sqrt()).min(F32x8::splat(1.0));
                let cos_sq = cos_h * cos_h;
                let (power, exponent) = match lobe.exponent {
                    Exponent::Whole(n) if n % 2 == 0 => (power_whole(cos_sq, n / 2), n as f32),
                    Exponent::Whole(n) => (power_whole(cos_sq, n / 2) * cos_h, n as f32),
                    Exponent::Real(e) => (cos_sq.map(|x| x.powf(e / 2.0)), e),
                };
                let (windowed, d_window) = self.window(power);
                if self.bands.is_some() && windowed.0.iter().all(|w| *w == 0.0) {
                    continue;
                }
                // ∂L/∂cos θ_H = n_s·L/cos θ_H (0 where cos θ_H = 0).
                let d_power =
                    power.div(cos_h.max(F32x8::splat(f32::MIN_POSITIVE))) * F32x8::splat(exponent);
                pair.reflectance =
                    F32x8::splat(lobe.diffuse) + F32x8::splat(lobe.specular) * windowed;
                pair.windowed = windowed;
                pair.d_reflectance = F32x8::splat(lobe.specular) * d_window * d_power;
                pair.cos_h = cos_h;
                pair.h_sq = h_sq;
            }
            if let Some(bands) = self.bands {
                self.facet::<FMA>(t, r, bands, &mut pair, &mut scratch.series);
            }
            let k = scratch.pairs.len();
            let complex = |f: &Fields, re: usize, im: usize| C32x8 {
                re: f[re],
                im: f[im],
            };
            scratch.phasor[k] = complex(t, P0_RE, P0_IM).mul::<FMA>(complex(r, P0_RE, P0_IM));
            scratch.step[k] = complex(t, STEP_RE, STEP_IM).mul::<FMA>(complex(r, STEP_RE, STEP_IM));
            scratch.pairs.push(pair);
        }
    }

    /// A facet pair's integral F_b and ∂F_b/∂e_2, ∂F_b/∂e_3 per sub-band: the forward
    /// kernel's series g_m (fast.rs, `prepare_facets`) with its derivatives by e_2 and e_3
    /// from the differentiated recurrence, summed by Horner's rule in j·s_b.
    #[inline(always)]
    fn facet<const FMA: bool>(
        &self,
        t: &Fields,
        r: &Fields,
        bands: &Bands,
        pair: &mut Pair,
        series: &mut [[Lane; MAX_TERMS]; 3],
    ) {
        let phases = CornerPhases::of(t, r, bands);
        let (e2, e3) = (phases.e2, phases.e3);
        let [g, ga, gb] = series;
        g[0] = F32x8::splat(1.0);
        ga[0] = F32x8::default();
        gb[0] = F32x8::default();
        let (mut terms, mut bound) = (1, 1.0f32);
        for m in 1..MAX_TERMS {
            let mf = m as f32;
            let c2 = F32x8::splat(1.0 / ((mf + 1.0) * (mf + 2.0)));
            let c3 = F32x8::splat(1.0 / (mf * (mf + 1.0) * (mf + 2.0)));
            let zero = F32x8::default();
            let back = |s: &[Lane; MAX_TERMS], j: usize| if m >= j { s[m - j] } else { zero };
            // g_m = (−e_2·g_{m−2})·c_2 + e_3·g_{m−3}·c_3, and its derivatives.
            g[m] = -(e2 * back(g, 2)) * c2 + e3 * back(g, 3) * c3;
            ga[m] = -(back(g, 2) + e2 * back(ga, 2)) * c2 + e3 * back(ga, 3) * c3;
            gb[m] = -(e2 * back(gb, 2)) * c2 + (back(g, 3) + e3 * back(gb, 3)) * c3;
            terms = m + 1;
            bound *= phases.largest / mf;
            if m > 5 && bound < 1e-5 {
                break;
            }
        }
        for (out, &s) in pair.facet.iter_mut().zip(&bands.scale) {
            for (o, coefficients) in out.iter_mut().zip([&*g, &*ga, &*gb]) {
                *o = horner_js::<FMA>(&coefficients[..terms], s, phases.keep);
            }
        }
        pair.u = phases.u;
    }

    /// Per kept pair and sub-band, Z_b = Σ_{n∈b} conj(s̄_n)·p_n and Σ_{n∈b} n·conj(s̄_n)·p_n
    /// with the phasors p_n = exp(−jk_n·L) by recurrence.
    #[inline(always)]
    fn sweep<const FMA: bool>(&self, weights: &[[Complex32; 2]], scratch: &mut Scratch) {
        let kept = scratch.pairs.len();
        let Scratch {
            phasor, step, z, ..
        } = scratch;
        let (phasor, step, z) = (&mut phasor[..kept], &step[..kept], &mut z[..kept]);
        z.fill([[C32x8::default(); 2]; SUB_BANDS]);
        for (&[w, wn], &b) in weights.iter().zip(self.band_of) {
            let (w, wn) = (splat(w), splat(wn));
            for ((p, step), z) in phasor.iter_mut().zip(step).zip(z.iter_mut()) {
                z[b][0] += p.mul::<FMA>(w);
                z[b][1] += p.mul::<FMA>(wn);
                *p = p.mul::<FMA>(*step);
            }
        }
    }

    /// [`Reflectance::windowed`] lane by lane: the windowed lobe and its derivative.
    #[inline(always)]
    fn window(&self, lobe: Lane) -> (Lane, Lane) {
        let (mut value, mut derivative) = (lobe, F32x8::splat(1.0));
        if self.reflectance.lobe_floor > 0.0 {
            for l in 0..LANES {
                let (w, d) = self.reflectance.windowed(f64::from(lobe.0[l]));
                (value.0[l], derivative.0[l]) = (w as f32, d as f32);
            }
        }
        (value, derivative)
    }

    /// Each kept pair's cotangents of a, L and u, carried to the per-side sums.
    #[inline(always)]
    fn cotangents(
        &self,
        tx: &[Fields],
        rx: &[Fields],
        scratch: &Scratch,
        tx_bars: &mut [Bars],
        rx_bars: &mut [Bars],
    ) {
        let (k0, dk) = (F32x8::splat(self.k.0), F32x8::splat(self.k.1));
        let specular = self.lobe.specular != 0.0;
        for (pair, z) in scratch.pairs.iter().zip(&scratch.z) {
            let c = pair.chunk;
            let amplitude = pair.g_t * pair.g_r * pair.reflectance;
            let (mut a_bar, mut path, mut e2_bar, mut e3_bar) = (
                F32x8::default(),
                F32x8::default(),
                F32x8::default(),
                F32x8::default(),
            );
            let bands = if self.bands.is_some() { SUB_BANDS } else { 1 };
            for (b, [zb, znb]) in z.iter().enumerate().take(bands) {
                // Σ k_n·z_n = k_0·Z + Δk·Σ n·z_n; ∂/∂L of exp(−jkL) is −jk·exp(−jkL).
                let zk = C32x8 {
                    re: k0 * zb.re + dk * znb.re,
                    im: k0 * zb.im + dk * znb.im,
                };
                match self.bands {
                    None => {
                        a_bar += zb.re;
                        path += zk.im;
                    }
                    Some(_) => {
                        let [f, fa, fb] = pair.facet[b];
                        a_bar += re_product(*zb, f);
                        path += im_product(zk, f);
                        e2_bar += re_product(*zb, fa);
                        e3_bar += re_product(*zb, fb);
                    }
                }
            }
            let path_bar = path * amplitude;
            let (t_bars, r_bars) = (&mut tx_bars[c], &mut rx_bars[c]);
            if let Some(bands) = self.bands {
                let [u0, u1] = pair.u;
                let (e2_bar, e3_bar) = (e2_bar * amplitude, e3_bar * amplitude);
                let k = F32x8::splat(bands.k_centre);
                // e_2 = −(u_0² + u_0·u_1 + u_1²), e_3 = −u_0·u_1·(u_0 + u_1).
                let two = F32x8::splat(2.0);
                let b0 = -(e2_bar * (two * u0 + u1) + e3_bar * u1 * (two * u0 + u1)) * k;
                let b1 = -(e2_bar * (u0 + two * u1) + e3_bar * u0 * (u0 + two * u1)) * k;
                for bars in [&mut *t_bars, &mut *r_bars] {
                    bars[B0_BAR] += b0;
                    bars[B1_BAR] += b1;
                }
            }
            let reflectance_bar = a_bar * pair.g_t * pair.g_r;
            t_bars[G_BAR] += a_bar * pair.g_r * pair.reflectance;
            r_bars[G_BAR] += a_bar * pair.g_t * pair.reflectance;
            t_bars[L_BAR] += path_bar;
            r_bars[L_BAR] += path_bar;
            t_bars[DIFFUSE_BAR] += reflectance_bar;
            t_bars[SPECULAR_BAR] += reflectance_bar * pair.windowed;
            if specular {
                // cos θ_H = (n·ω_t + n·ω_r)/|h|, |h|² = 2 + 2·ω_t·ω_r.
                let cos_h_bar = reflectance_bar * pair.d_reflectance;
                let along_bar = cos_h_bar.div(pair.h_sq.sqrt());
                let dot_bar = -(cos_h_bar * pair.cos_h).div(pair.h_sq);
                t_bars[C_BAR] += along_bar;
                r_bars[C_BAR] += along_bar;
                let (t, r) = (&tx[c], &rx[c]);
                for (i, w) in [WX, WY, WZ].into_iter().enumerate() {
                    t_bars[OX_BAR + i] += dot_bar * r[w];
                    r_bars[OX_BAR + i] += dot_bar * t[w];
                }
            }
        }
    }
}

#[inline(always)]
fn splat(c: Complex32) -> C32x8 {
    C32x8 {
        re: F32x8::splat(c.re),
        im: F32x8::splat(c.im),
    }
}

/// Re(a·b) and Im(a·b), lane-wise.
#[inline(always)]
fn re_product(a: C32x8, b: C32x8) -> Lane {
    a.re * b.re - a.im * b.im
}
#[inline(always)]
fn im_product(a: C32x8, b: C32x8) -> Lane {
    a.re * b.im + a.im * b.re
}
