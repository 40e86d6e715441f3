//! The production path: the same sum as [`direct`](super::direct), exact up to f32 rounding,
//! about two orders of magnitude faster.
//!
//! - The phase separates: exp(−j2πf·L/c) with L = (d_t − 2δ_h) + d_r, so the phasors
//!   exp(−j2πf_0·L/c) and the steps exp(−j2πΔf·L/c) are computed once per (element, source) in
//!   f64 (a table of N_e·N_h entries per side) instead of once per (t, r, f, h).
//! - Per channel and source the amplitude a_h(t, r) comes from the two tables: the Lambert part
//!   is a product of per-element gains, the Blinn-Phong part needs cos θ_H =
//!   (n·ω_i + n·ω_o)/|ω_i + ω_o| with |ω_i + ω_o|² = 2 + 2·ω_i·ω_o.
//! - Over the frequency steps the phasor follows a recurrence: per pass over 4 frequencies,
//!   the outputs are z, z·e, z·e², z·e³ (e = e^{−j2πΔf·L/c}, powers prepared once per channel
//!   and source) and z advances by e⁴. So there is no sin/cos and no long chain of dependent
//!   multiplies in the hot loop: one complex multiply-add per (t, r, f, h) term, done with
//!   three real multiplications (Gauss), i.e. one multiply and two fused multiply-adds.
//! - Sources run in SIMD lanes (8 × f32), frequencies in blocks of 4 whose accumulators stay in
//!   registers; with AVX2 + FMA (detected at run time) the loops use 256-bit fused
//!   multiply-adds, elsewhere plain SIMD arithmetic.
//! - Transmitters run in parallel (rayon); each channel is summed in a fixed order, so the
//!   result does not depend on the number of threads.

use num_complex::Complex32;
use rayon::prelude::*;

use super::lanes::{C32x8, F32x8, LANES, Multiplier};
use super::{Channels, Reflectance, SUB_BANDS, Source, sub_band_of};
use crate::facets::LOBE_FLOOR;
use crate::{SPEED_OF_LIGHT, cis_turns};

/// Chunks of [`LANES`] sources per block: a block's phasors and step powers (14 KiB, see
/// [`Block`]) stay in L1 while every frequency pass runs over them.
pub(super) const CHUNKS: usize = 32;
/// Frequencies per pass over a block; their accumulators stay in registers. [`sweep`] is
/// written out for this value.
pub(crate) const FREQ_BLOCK: usize = 4;

pub(super) type Lane = F32x8;

/// Fields per (element, source) in a [`SideTable`], and their order.
const FIELDS: usize = 11;
pub(super) const GAIN: usize = 0;
pub(super) const COS: usize = 1;
pub(super) const WX: usize = 2;
pub(super) const WY: usize = 3;
pub(super) const WZ: usize = 4;
pub(super) const P0_RE: usize = 5;
pub(super) const P0_IM: usize = 6;
pub(super) const STEP_RE: usize = 7;
pub(super) const STEP_IM: usize = 8;
pub(super) const B0: usize = 9;
pub(super) const B1: usize = 10;

/// Bytes of working memory per (element, source) pair.
pub(crate) const BYTES_PER_ELEMENT_SOURCE: u64 = (FIELDS * std::mem::size_of::<f32>()) as u64;

/// The fields of one chunk of sources for one element, indexed by [`GAIN`] … [`STEP_IM`]:
/// - GAIN: the amplitude factor, (w_h on the TX side)·max(0, n·ω)·g/d for a hit,
///   (σ on the TX side)·g/d for a point;
/// - COS: n·ω (0 for points); WX, WY, WZ: ω, the unit vector from the source to the element;
/// - P0: exp(−j2πf_0·L/c); STEP: exp(−j2πΔf·L/c);
/// - B0, B1: ω·ρ_0 and ω·ρ_1, a facet's corners 0 and 1 (relative to its centroid) along ω
///   (0 for hits and points).
pub(super) type Fields = [Lane; FIELDS];

/// One side (TX or RX) of the separable factors, per element and source, sources padded to
/// whole lanes with zero gain. Layout `[element][chunk][field][lane]`: one element's row is
/// one contiguous stream.
pub(super) struct SideTable {
    pub(super) n_chunks: usize,
    data: Vec<Fields>,
}

/// One element's row of a [`SideTable`] (or a range of its chunks).
pub(super) type Row<'a> = &'a [Fields];

impl SideTable {
    /// The table of `elements` against `sources`. The TX side carries the source's weight and
    /// roughness (L = d_t − 2δ_h); the RX side only its distance (L = d_r).
    pub(super) fn build(
        channels: &Channels,
        elements: &[nalgebra::Point3<f64>],
        sources: &[Source],
        tx_side: bool,
    ) -> Self {
        let n_chunks = sources.len().div_ceil(LANES);
        let mut data = vec![[F32x8::default(); FIELDS]; elements.len() * n_chunks];
        // Cycles per metre of path at the first frequency and per step.
        let (f0, df) = (
            channels.sweep.start_hz() / SPEED_OF_LIGHT,
            channels.sweep.step_hz() / SPEED_OF_LIGHT,
        );
        if n_chunks == 0 {
            return Self { n_chunks, data };
        }
        data.par_chunks_mut(n_chunks)
            .zip(elements)
            .for_each(|(row, element)| {
                for (h, s) in sources.iter().enumerate() {
                    let fields = &mut row[h / LANES];
                    let mut put = |field: usize, value: f64| {
                        fields[field].0[h % LANES] = value as f32;
                    };
                    let view = channels.view(element, &s.position);
                    let (cos, facing) = match s.normal {
                        Some(n) => {
                            let c = n.dot(&view.direction);
                            (c, c.max(0.0))
                        }
                        None => (0.0, 1.0),
                    };
                    let (weight, path) = if tx_side {
                        (s.weight, view.distance - 2.0 * s.roughness_m)
                    } else {
                        (1.0, view.distance)
                    };
                    put(GAIN, weight * facing * view.gain / view.distance);
                    put(COS, cos);
                    put(WX, view.direction.x);
                    put(WY, view.direction.y);
                    put(WZ, view.direction.z);
                    // exp(−j2πf₀L/c) and exp(−j2πΔf·L/c).
                    let (first, step) = (cis_turns(-f0 * path), cis_turns(-df * path));
                    put(P0_RE, first.re);
                    put(P0_IM, first.im);
                    put(STEP_RE, step.re);
                    put(STEP_IM, step.im);
                    if let Some([a, b]) = s.offsets {
                        put(B0, view.direction.dot(&a));
                        put(B1, view.direction.dot(&b));
                    }
                }
            });
        Self { n_chunks, data }
    }

    pub(super) fn row(&self, e: usize) -> Row<'_> {
        &self.data[e * self.n_chunks..(e + 1) * self.n_chunks]
    }
}

/// The angular factor of the amplitude: f_mat = diffuse + specular·(cos θ_H)^exponent.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lobe {
    pub(super) diffuse: f32,
    pub(super) specular: f32,
    pub(super) exponent: Exponent,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Exponent {
    /// Whole exponents (the usual n_s = 50): powers of cos² θ_H by repeated squaring, in SIMD
    /// (one square root more for odd exponents).
    Whole(u32),
    /// Any other exponent: `powf` per term (slower).
    Real(f32),
}

impl Lobe {
    pub(super) fn of(reflectance: &Reflectance) -> Self {
        let n_s = reflectance.exponent;
        let exponent = if n_s.fract() == 0.0 && n_s <= u32::MAX as f64 {
            Exponent::Whole(n_s as u32)
        } else {
            Exponent::Real(n_s as f32)
        };
        Self {
            diffuse: reflectance.diffuse as f32,
            specular: reflectance.specular as f32,
            exponent,
        }
    }

    /// Point scatterers: no material factor.
    fn isotropic() -> Self {
        Self {
            diffuse: 1.0,
            specular: 0.0,
            exponent: Exponent::Whole(0),
        }
    }
}

/// One block of sources for one channel, chunk-major: the phasors z (advanced in place over
/// the frequency passes) and the powers e^{−j2πkΔf·L/c}, k = 1..=FREQ_BLOCK, of the per-step
/// factor. Within a pass the FREQ_BLOCK outputs z·e^{…k…} are independent products, so there
/// is no chain of dependent multiplies; z itself advances by the last power once per pass.
/// 32 chunks × (64 B + 4 × 96 B) = 14 KiB: it stays in L1.
struct Block {
    z: [C32x8; CHUNKS],
    pow: [[Multiplier; FREQ_BLOCK]; CHUNKS],
    /// Facet sets only: each facet's normalised integral F per sub-band.
    facet: [[C32x8; SUB_BANDS]; CHUNKS],
    /// Facet sets only: the series coefficients g_m of one chunk (scratch, written before read).
    series: [F32x8; MAX_TERMS],
    /// The position in the table rows of each kept chunk.
    active: [usize; CHUNKS],
}

/// Per-thread scratch.
struct Scratch {
    block: Box<Block>,
    /// Per frequency, the lane-wise running sums of the current channel.
    acc: Vec<C32x8>,
}

impl Scratch {
    fn new(n_freq: usize) -> Self {
        Self {
            block: Box::new(Block {
                z: [C32x8::default(); CHUNKS],
                pow: [[Multiplier::default(); FREQ_BLOCK]; CHUNKS],
                facet: [[C32x8::default(); SUB_BANDS]; CHUNKS],
                series: [F32x8::default(); MAX_TERMS],
                active: [0; CHUNKS],
            }),
            acc: vec![C32x8::default(); n_freq],
        }
    }
}

/// A set of sources ready for the kernel: both side tables and the lobe they share.
pub(crate) struct SourceSet {
    tx: SideTable,
    rx: SideTable,
    lobe: Lobe,
    /// Facets: the sub-bands of their integral. `None` for hits and points.
    bands: Option<Bands>,
}

impl SourceSet {
    /// Surface hits or facets (`reflectance` applies) or point scatterers
    /// (`reflectance = None`). Facets are sources with `offsets`; a set is all facets or none.
    pub fn new(channels: &Channels, sources: &[Source], reflectance: Option<&Reflectance>) -> Self {
        let facets = sources.first().is_some_and(|s| s.offsets.is_some());
        Self {
            tx: SideTable::build(channels, channels.tx, sources, true),
            rx: SideTable::build(channels, channels.rx, sources, false),
            lobe: reflectance.map_or_else(Lobe::isotropic, Lobe::of),
            bands: facets.then(|| Bands::new(channels)),
        }
    }
}

/// The sub-bands of a facet set: which sub-band each frequency pass uses, and each sub-band's
/// mean wavenumber over the reference k_c (the sweep's centre), at which a facet's integral is
/// taken for the whole sub-band. Within a sub-band of width Δk the integral moves by at most
/// Δk/2·max|q·ρ| (docs/physics.md §3.5).
pub(super) struct Bands {
    /// k_c (rad/m): u_i = k_c·q·ρ_i.
    pub(super) k_centre: f32,
    /// The sub-band of each full pass of FREQ_BLOCK frequencies, then of each tail frequency.
    of_pass: Vec<usize>,
    /// k_b/k_c per sub-band.
    pub(super) scale: [f32; SUB_BANDS],
}

impl Bands {
    pub(super) fn new(channels: &Channels) -> Self {
        let frequencies = channels.sweep.frequencies();
        let n_f = frequencies.len();
        let of_frequency = sub_band_of(n_f, FREQ_BLOCK);
        let passes = n_f / FREQ_BLOCK;
        let of_pass: Vec<usize> = (0..passes)
            .map(|p| of_frequency[p * FREQ_BLOCK])
            .chain(of_frequency[passes * FREQ_BLOCK..].iter().copied())
            .collect();
        let f_centre = 0.5 * (channels.sweep.start_hz() + channels.sweep.stop_hz());
        let (mut sum, mut count) = ([0.0f64; SUB_BANDS], [0usize; SUB_BANDS]);
        for (f, &b) in frequencies.iter().zip(&of_frequency) {
            sum[b] += f / f_centre;
            count[b] += 1;
        }
        Self {
            k_centre: (2.0 * std::f64::consts::PI * f_centre / SPEED_OF_LIGHT) as f32,
            of_pass,
            scale: std::array::from_fn(|b| {
                if count[b] == 0 {
                    1.0
                } else {
                    (sum[b] / count[b] as f64) as f32
                }
            }),
        }
    }
}

/// Adds the signal of `sets` to `out` (`[tx][rx][frequency]` row-major, zeroed by the caller).
pub(crate) fn simulate(channels: &Channels, sets: &[SourceSet], out: &mut [Complex32]) {
    simulate_with(channels, sets, out, has_fma());
}

/// [`simulate`] with the AVX2 + FMA kernel (`fma`, only where the CPU has it) or the portable
/// one.
fn simulate_with(channels: &Channels, sets: &[SourceSet], out: &mut [Complex32], fma: bool) {
    let fma = fma && has_fma();
    let (n_rx, n_f) = (channels.rx.len(), channels.sweep.steps());
    if n_rx * n_f == 0 {
        return;
    }
    out.par_chunks_mut(n_rx * n_f)
        .enumerate()
        .for_each(|(t, row)| {
            let mut scratch = Scratch::new(n_f);
            for set in sets.iter().filter(|s| s.tx.n_chunks > 0) {
                let tx = set.tx.row(t);
                for (r, samples) in row.chunks_mut(n_f).enumerate() {
                    if channels.is_alive(t, r) {
                        channel(fma, tx, set.rx.row(r), set, &mut scratch, samples);
                    }
                }
            }
        });
}

/// Whether the CPU runs the AVX2 + FMA version of the kernel.
pub(super) fn has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One channel: adds Σ_h a_h·z_h(f) to `out` (one entry per frequency).
fn channel(
    fma: bool,
    tx: Row,
    rx: Row,
    set: &SourceSet,
    scratch: &mut Scratch,
    out: &mut [Complex32],
) {
    #[cfg(target_arch = "x86_64")]
    if fma {
        // SAFETY: `fma` is true only where the CPU reports AVX2 and FMA (`has_fma`).
        unsafe { channel_avx2_fma(tx, rx, set, scratch, out) };
        return;
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = fma;
    channel_impl::<false>(tx, rx, set, scratch, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn channel_avx2_fma(
    tx: Row,
    rx: Row,
    set: &SourceSet,
    scratch: &mut Scratch,
    out: &mut [Complex32],
) {
    channel_impl::<true>(tx, rx, set, scratch, out);
}

#[inline(always)]
fn channel_impl<const FMA: bool>(
    tx: Row,
    rx: Row,
    set: &SourceSet,
    scratch: &mut Scratch,
    out: &mut [Complex32],
) {
    let n_chunks = tx.len();
    let Scratch { block, acc } = scratch;
    acc.fill(C32x8::default());
    // Facets whose lobe is below the floor in every lane of a chunk are left out.
    let floor = (set.bands.as_ref()).map(|_| set.lobe.specular * LOBE_FLOOR as f32);
    for start in (0..n_chunks).step_by(CHUNKS) {
        let range = start..(start + CHUNKS).min(n_chunks);
        let (tx, rx) = (&tx[range.clone()], &rx[range]);
        let chunks = prepare::<FMA>(tx, rx, &set.lobe, floor, block);
        if let Some(bands) = &set.bands {
            prepare_facets::<FMA>(tx, rx, chunks, bands, block);
        }
        let Block { z, pow, facet, .. } = &mut **block;
        let (z, pow) = (&mut z[..chunks], &pow[..chunks]);
        let (blocked, rest) = acc.as_chunks_mut::<FREQ_BLOCK>();
        match &set.bands {
            None => {
                for acc in blocked {
                    sweep::<FMA>(z, pow, |_, v| v, acc);
                }
                for acc in rest {
                    sweep_one::<FMA>(z, pow, |_, v| v, acc);
                }
            }
            Some(bands) => {
                let (full, tail) = bands.of_pass.split_at(blocked.len());
                for (acc, &b) in blocked.iter_mut().zip(full) {
                    sweep::<FMA>(z, pow, |c, v| v.mul::<FMA>(facet[c][b]), acc);
                }
                for (acc, &b) in rest.iter_mut().zip(tail) {
                    sweep_one::<FMA>(z, pow, |c, v| v.mul::<FMA>(facet[c][b]), acc);
                }
            }
        }
    }
    for (o, a) in out.iter_mut().zip(acc.iter()) {
        *o += Complex32::new(a.re.sum(), a.im.sum());
    }
}

/// Fills the block with z_h = a_h(t, r)·exp(−j2πf_0·L/c) and the powers of the step
/// exp(−j2πΔf·L/c), L = L_t + L_r, for the chunks of `tx`/`rx`, and returns how many it kept.
/// With a `floor` (facet sets), a chunk whose lobe is below it in every lane is left out, and
/// the kept chunks are packed at the front of the block, their positions in `b.active`.
#[inline(always)]
fn prepare<const FMA: bool>(
    tx: Row,
    rx: Row,
    lobe: &Lobe,
    floor: Option<f32>,
    b: &mut Block,
) -> usize {
    let complex = |f: &Fields, re: usize, im: usize| C32x8 {
        re: f[re],
        im: f[im],
    };
    let mut kept = 0;
    for (i, (t, r)) in tx.iter().zip(rx).enumerate() {
        let factor = material_factor(t, r, lobe);
        if let Some(floor) = floor
            && factor.0.iter().all(|f| *f < floor)
        {
            continue;
        }
        let amplitude = t[GAIN] * r[GAIN] * factor;
        let phasor = complex(t, P0_RE, P0_IM).mul::<FMA>(complex(r, P0_RE, P0_IM));
        b.z[kept] = phasor.scale(amplitude);
        let step = complex(t, STEP_RE, STEP_IM).mul::<FMA>(complex(r, STEP_RE, STEP_IM));
        let mut power = step;
        for p in b.pow[kept].iter_mut() {
            *p = Multiplier::new(power);
            power = power.mul::<FMA>(step);
        }
        b.active[kept] = i;
        kept += 1;
    }
    kept
}

/// f_mat for one chunk: diffuse + specular·(cos θ_H)^n_s.
#[inline(always)]
fn material_factor(t: &Fields, r: &Fields, lobe: &Lobe) -> Lane {
    if lobe.specular == 0.0 {
        return F32x8::splat(lobe.diffuse);
    }
    // cos θ_H = n·(ω_i + ω_o)/|ω_i + ω_o|, |ω_i + ω_o|² = 2 + 2·ω_i·ω_o; the guards keep
    // zero-gain terms (and padding) finite.
    let along = (t[COS] + r[COS]).max(F32x8::default());
    let dot = t[WX] * r[WX] + t[WY] * r[WY] + t[WZ] * r[WZ];
    let norm_sq =
        (F32x8::splat(2.0) + F32x8::splat(2.0) * dot).max(F32x8::splat(f32::MIN_POSITIVE));
    // cos² θ_H, so that even exponents need no square root.
    let cos_sq = (along * along).div(norm_sq).min(F32x8::splat(1.0));
    let power = match lobe.exponent {
        Exponent::Whole(n) if n % 2 == 0 => power_whole(cos_sq, n / 2),
        Exponent::Whole(n) => power_whole(cos_sq, n / 2) * cos_sq.sqrt(),
        Exponent::Real(e) => cos_sq.map(|x| x.powf(e / 2.0)),
    };
    F32x8::splat(lobe.diffuse) + F32x8::splat(lobe.specular) * power
}

/// x^n lane-wise by repeated squaring.
#[inline(always)]
pub(super) fn power_whole(mut base: Lane, n: u32) -> Lane {
    let mut result = F32x8::splat(1.0);
    let mut e = n;
    while e > 0 {
        if e & 1 == 1 {
            result = result * base;
        }
        e >>= 1;
        base = base * base;
    }
    result
}

/// FREQ_BLOCK = 4 frequency steps over the chunks of `z` and `pow`:
/// acc[j] += w·e^{−j2πjΔf·L/c} (lane-wise) for j in 0..4, then z ← z·e^{−j2π4Δf·L/c}, where
/// w = `weigh`(chunk, z) is what is accumulated: z itself for hits and points, z·F_b (the
/// facet integral of the pass's sub-band) for facets.
#[inline(always)]
fn sweep<const FMA: bool>(
    z: &mut [C32x8],
    pow: &[[Multiplier; FREQ_BLOCK]],
    weigh: impl Fn(usize, C32x8) -> C32x8,
    acc: &mut [C32x8; FREQ_BLOCK],
) {
    let [mut a0, mut a1, mut a2, mut a3] = [C32x8::default(); FREQ_BLOCK];
    for (c, (z, [p1, p2, p3, p4])) in z.iter_mut().zip(pow).enumerate() {
        let v = weigh(c, *z);
        let sum = v.re + v.im;
        a0 += v;
        a1 += p1.times::<FMA>(v, sum);
        a2 += p2.times::<FMA>(v, sum);
        a3 += p3.times::<FMA>(v, sum);
        *z = p4.times::<FMA>(*z, z.re + z.im);
    }
    for (acc, a) in acc.iter_mut().zip([a0, a1, a2, a3]) {
        *acc += a;
    }
}

/// One frequency step: acc += `weigh`(chunk, z), z ← z·e^{−j2πΔf·L/c}.
#[inline(always)]
fn sweep_one<const FMA: bool>(
    z: &mut [C32x8],
    pow: &[[Multiplier; FREQ_BLOCK]],
    weigh: impl Fn(usize, C32x8) -> C32x8,
    acc: &mut C32x8,
) {
    let mut a = C32x8::default();
    for (c, (z, pow)) in z.iter_mut().zip(pow).enumerate() {
        a += weigh(c, *z);
        *z = pow[0].times::<FMA>(*z, z.re + z.im);
    }
    *acc += a;
}

/// The largest number of series terms of a facet integral (r ≤ 8 needs ~30 for 1e-6).
pub(super) const MAX_TERMS: usize = 40;
/// The largest phase spread r = max|u_i| (rad) of a facet integral in f32: the series' largest
/// term, r^r/r! ≈ 400 at r = 8, keeps its rounding error near 3e-5. Facets past it, which the
/// sampling splits so that only terms with a negligible lobe reach it (docs/physics.md §3.5),
/// are left out.
pub(crate) const MAX_PHASE_SPREAD: f32 = 8.0;

/// Fills `b.facet` with each facet's normalised integral F per sub-band, in f32 lanes: u_i =
/// k_c·q·ρ_i from the tables (q·ρ_i = ω_t·ρ_i + ω_r·ρ_i, ρ_2 = −ρ_0 − ρ_1), then the series
/// F(s·u) = Σ_m g_m·(j·s)^m of [`facet_integral`](crate::facets::facet_integral), with g_m =
/// 2·h_m/(m + 2)! by the scaled recurrence g_m = −e_2·g_{m−2}/((m+1)(m+2)) +
/// e_3·g_{m−3}/(m(m+1)(m+2)) (no overflow) and Horner's rule in j·s per sub-band. The number
/// of terms is the same for a chunk's lanes: until r^m/m! < 1e-4, r the chunk's largest
/// s·|u_i|. Lanes with r > [`MAX_PHASE_SPREAD`] get F = 0.
#[inline(always)]
fn prepare_facets<const FMA: bool>(tx: Row, rx: Row, kept: usize, bands: &Bands, b: &mut Block) {
    let g = &mut b.series;
    for (facet, &i) in b.facet.iter_mut().zip(&b.active[..kept]) {
        let phases = CornerPhases::of(&tx[i], &rx[i], bands);
        let (e2, e3) = (phases.e2, phases.e3);
        g[0] = F32x8::splat(1.0);
        let (mut terms, mut bound) = (1, 1.0f32);
        for m in 1..MAX_TERMS {
            let mf = m as f32;
            let back2 = if m >= 2 { g[m - 2] } else { F32x8::default() };
            let mut next = -(e2 * back2) * F32x8::splat(1.0 / ((mf + 1.0) * (mf + 2.0)));
            if m >= 3 {
                next += e3 * g[m - 3] * F32x8::splat(1.0 / (mf * (mf + 1.0) * (mf + 2.0)));
            }
            g[m] = next;
            terms = m + 1;
            bound *= phases.largest / mf;
            if m > 3 && bound < 1e-4 {
                break;
            }
        }
        for (out, &s) in facet.iter_mut().zip(&bands.scale) {
            *out = horner_js::<FMA>(&g[..terms], s, phases.keep);
        }
    }
}

/// A facet pair's corner phases u_0, u_1 (u_2 = −u_0 − u_1) at k_c, their symmetric functions
/// e_2 and e_3, which lanes the series keeps (1) or leaves out (0: spread past
/// [`MAX_PHASE_SPREAD`]), and the largest kept spread r = s_max·max|u_i|, which sets the
/// number of terms.
pub(super) struct CornerPhases {
    pub u: [Lane; 2],
    pub e2: Lane,
    pub e3: Lane,
    pub keep: Lane,
    pub largest: f32,
}

impl CornerPhases {
    /// u_i = k_c·(ω_t·ρ_i + ω_r·ρ_i) from the tables' B fields of one TX and one RX chunk.
    #[inline(always)]
    pub fn of(t: &Fields, r: &Fields, bands: &Bands) -> Self {
        let k = F32x8::splat(bands.k_centre);
        let s_max = bands.scale.iter().fold(1.0f32, |m, s| m.max(*s));
        let u0 = k * (t[B0] + r[B0]);
        let u1 = k * (t[B1] + r[B1]);
        let u2 = -(u0 + u1);
        let spread =
            u0.map(f32::abs).max(u1.map(f32::abs)).max(u2.map(f32::abs)) * F32x8::splat(s_max);
        let keep = spread.map(|r| if r <= MAX_PHASE_SPREAD { 1.0 } else { 0.0 });
        Self {
            u: [u0, u1],
            e2: u0 * u1 + (u0 + u1) * u2,
            e3: u0 * u1 * u2,
            keep,
            largest: (0..LANES).fold(0.0f32, |m, l| m.max(spread.0[l] * keep.0[l])),
        }
    }
}

/// Σ_m c_m·(j·s)^m by Horner's rule in z = j·s ((a + jb)·(js) = −b·s + j·a·s), times `keep`.
#[inline(always)]
pub(super) fn horner_js<const FMA: bool>(coefficients: &[Lane], s: f32, keep: Lane) -> C32x8 {
    let s = F32x8::splat(s);
    let (last, rest) = coefficients.split_last().expect("at least one series term");
    let (mut re, mut im) = (*last, F32x8::default());
    for &c in rest.iter().rev() {
        let next_re = (-im).mul_add::<FMA>(s, c);
        im = re * s;
        re = next_re;
    }
    C32x8 {
        re: re * keep,
        im: im * keep,
    }
}

#[cfg(test)]
mod tests {
    use nalgebra::{Point3, Vector3};

    use super::*;
    use crate::{ElementPattern, FrequencySweep};

    /// Both kernels against the direct sum, on sizes that exercise the padding of the last
    /// lane chunk (37 sources) and the frequency tail (11 = 2·4 + 3 steps).
    #[test]
    fn portable_and_fma_kernels_agree_with_the_direct_sum() {
        let sweep = FrequencySweep::new(72e9, 82e9, 11).unwrap();
        let pattern = ElementPattern::default();
        let tx = [Point3::new(-0.05, 0.01, 0.0), Point3::new(0.05, -0.02, 0.0)];
        let rx = [
            Point3::new(0.0, 0.06, 0.0),
            Point3::new(0.01, -0.06, 0.0),
            Point3::origin(),
        ];
        let channels = Channels {
            tx: &tx,
            rx: &rx,
            mask: None,
            sweep: &sweep,
            pattern: &pattern,
        };
        let sources: Vec<Source> = (0..37)
            .map(|k| {
                let a = k as f64 * 0.7;
                Source {
                    position: Point3::new(0.03 * a.cos(), 0.04 * a.sin(), 0.25 + 0.001 * k as f64),
                    normal: Some(Vector3::new(0.1 * a.sin(), 0.1 * a.cos(), -1.0).normalize()),
                    weight: 1e-6,
                    roughness_m: 1e-4 * a.sin(),
                    offsets: None,
                }
            })
            .collect();
        let reflectance = Reflectance::of(&crate::Material::default());
        let sets = [SourceSet::new(&channels, &sources, Some(&reflectance))];
        let reference = super::super::direct::simulate(&channels, &[(&sources, Some(reflectance))]);
        let norm: f32 = reference.iter().map(|s| s.norm_sqr()).sum();
        for fma in [false, true] {
            let mut out = vec![Complex32::new(0.0, 0.0); reference.len()];
            simulate_with(&channels, &sets, &mut out, fma);
            let error: f32 = out
                .iter()
                .zip(&reference)
                .map(|(a, b)| (a - b).norm_sqr())
                .sum();
            assert!(
                (error / norm).sqrt() < 1e-5,
                "fma = {fma}: {}",
                (error / norm).sqrt()
            );
        }
    }
}
