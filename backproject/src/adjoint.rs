//! Gradients through imaging (docs/physics.md §4.5): from the level and depth images back to
//! the signal cube.
//!
//! The images depend on a volume only through a few voxels: per pixel the maximum of its
//! (pooled) column and, for the depth's parabola, the two voxels beside it; and, for the 0 dB
//! normalisation, the brightest voxel. Which voxels those are is a discrete choice. An
//! [`ImageTape`] records it from one forward pass and then holds it fixed, so the images become
//! smooth functions of those voxels' values ([`ImageTape::images`]) with an exact gradient
//! ([`ImageTape::backward`]), the subgradient of the maxima. Back-projection is linear, so a
//! [`SparseProjection`] evaluates it at just those voxels, in `f64`, and carries a cotangent
//! back to the signal with its exact adjoint ([`SparseProjection::adjoint`]).
//!
//! Cotangents of complex values follow one convention throughout: for a real loss ℓ and a
//! complex z, z̄ = ∂ℓ/∂Re z + j·∂ℓ/∂Im z. Then for y = A·x, x̄ = Aᴴ·ȳ, and a change dz
//! changes ℓ by Re(conj(z̄)·dz).

use std::collections::HashMap;
use std::f64::consts::LN_10;
use std::sync::Arc;

use nalgebra::Point3;
use ndarray::Array2;
use num_complex::Complex64;
use radar_sim::{ArrayGeometry, FrequencySweep, SPEED_OF_LIGHT};
use rayon::prelude::*;
use rustfft::{Fft, FftPlanner};

/// One thread's buffers: a range profile and the FFT's scratch.
type Scratch = (Vec<Complex64>, Vec<Complex64>);

/// Groups of pairs that [`SparseProjection::project`] sums in parallel, then in order.
const PAIR_GROUPS: usize = 16;

use crate::phasor::cis_turns_f64;
use crate::{
    BackprojectError, Interpolation, ProjectionMethod, Result, Volume, VoxelGrid,
    projector::RangeCompressed,
};

/// Where one pixel's values come from, as indices into [`ImageTape::voxels`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PixelSource {
    /// The z index of the column's maximum.
    iz: usize,
    /// The maximum itself.
    peak: usize,
    /// The voxels before and after it along z, where both exist (the parabola refinement).
    neighbours: Option<[usize; 2]>,
}

/// The discrete choices of one imaging pass (docs/physics.md §4.5): which voxel each pixel of
/// the (max-pooled) level and depth images shows, and which voxel is the brightest. Recorded
/// from a volume by [`ImageTape::record`]; the images of any other values at those voxels are
/// then [`ImageTape::images`], and their gradient [`ImageTape::backward`].
#[derive(Debug, Clone, PartialEq)]
pub struct ImageTape {
    shape: (usize, usize),
    z_start_m: f64,
    z_step_m: f64,
    voxels: Vec<[usize; 3]>,
    pixels: Vec<PixelSource>,
    brightest: usize,
}

/// Level (dB) and depth (m) images in `f64`, `[row, col]`, as [`ImageTape::images`] makes them.
#[derive(Debug, Clone, PartialEq)]
pub struct TapedImages {
    /// L = 20·log10(|I_peak| / |I_brightest|) (dB).
    pub level_db: Array2<f64>,
    /// z* (m), the parabola-refined depth of each pixel's maximum.
    pub depth_m: Array2<f64>,
}

/// 20/ln 10: d(20·log10|z|)/d|z| = (20/ln 10)/|z|.
const DB_PER_NEPER: f64 = 20.0 / LN_10;

/// 20·log10|z| in dB (−∞ for 0).
fn decibels(z: Complex64) -> f64 {
    10.0 * z.norm_sqr().log10()
}

/// The cotangent of z for ℓ = g·20·log10|z|: g·(20/ln 10)·z/|z|² (0 where z = 0, whose level is
/// −∞ and has no gradient).
fn decibel_cotangent(z: Complex64, g: f64) -> Complex64 {
    let p = z.norm_sqr();
    if p > 0.0 && g != 0.0 {
        z * (g * DB_PER_NEPER / p)
    } else {
        Complex64::new(0.0, 0.0)
    }
}

/// The parabola vertex offset o = (a − c)/(2κ), κ = a − 2b + c, within ±½, and its partial
/// derivatives by (a, b, c); `None` where the refinement does not move the depth smoothly
/// (no maximum: κ ≥ 0 or not finite; or the offset clamped at ±½).
fn parabola(a: f64, b: f64, c: f64) -> (f64, Option<[f64; 3]>) {
    let kappa = a - 2.0 * b + c;
    if !(kappa < 0.0 && kappa.is_finite()) {
        return (0.0, None);
    }
    let o = (a - c) / (2.0 * kappa);
    if o.abs() > 0.5 {
        return (o.clamp(-0.5, 0.5), None);
    }
    let k2 = 2.0 * kappa * kappa;
    (
        o,
        Some([
            (kappa - (a - c)) / k2,
            2.0 * (a - c) / k2,
            (-kappa - (a - c)) / k2,
        ]),
    )
}

impl ImageTape {
    /// Records the choices of `volume`'s images max-pooled over `pool × pool` blocks (1: no
    /// pooling), the same choices as [`ImageProducts::from_volume`](crate::ImageProducts) and
    /// [`max_pooled`](crate::ImageProducts::max_pooled) make (the first maximum on ties).
    /// Errors: a pool that does not divide the image, or a volume that is zero everywhere.
    pub fn record(volume: &Volume, pool: usize) -> Result<Self> {
        let grid = volume.grid();
        let (rows, cols) = grid.image_shape();
        if pool == 0 || !rows.is_multiple_of(pool) || !cols.is_multiple_of(pool) {
            return Err(BackprojectError::config(
                "pooling",
                format!("a {rows} × {cols} image does not split into {pool} × {pool} blocks"),
            ));
        }
        let nz = grid.z().len();
        // Per image pixel, the column's maximum |I| and its z index (the first on ties).
        let peak = |row: usize, col: usize| {
            let (ix, iy) = grid.pixel_to_column(row, col);
            let line = volume.data().slice(ndarray::s![ix, iy, ..]);
            let mut best = (f32::NEG_INFINITY, 0);
            for (k, c) in line.iter().enumerate() {
                if c.norm() > best.0 {
                    best = (c.norm(), k);
                }
            }
            (best.0, [ix, iy, best.1])
        };
        let mut index: HashMap<[usize; 3], usize> = HashMap::new();
        let mut voxels = Vec::new();
        let mut slot = |v: [usize; 3]| {
            *index.entry(v).or_insert_with(|| {
                voxels.push(v);
                voxels.len() - 1
            })
        };
        let mut pixels = Vec::with_capacity(rows * cols / (pool * pool));
        let mut brightest = (f32::NEG_INFINITY, 0);
        for r in 0..rows / pool {
            for c in 0..cols / pool {
                let mut best = (f32::NEG_INFINITY, [0; 3]);
                for i in r * pool..(r + 1) * pool {
                    for j in c * pool..(c + 1) * pool {
                        let candidate = peak(i, j);
                        if candidate.0 > best.0 {
                            best = candidate;
                        }
                    }
                }
                let [ix, iy, iz] = best.1;
                let source = PixelSource {
                    iz,
                    peak: slot(best.1),
                    neighbours: (iz > 0 && iz + 1 < nz)
                        .then(|| [slot([ix, iy, iz - 1]), slot([ix, iy, iz + 1])]),
                };
                if best.0 > brightest.0 {
                    brightest = (best.0, source.peak);
                }
                pixels.push(source);
            }
        }
        if !(brightest.0 > 0.0 && brightest.0.is_finite()) {
            return Err(BackprojectError::ZeroVolume {
                max_magnitude: brightest.0,
            });
        }
        Ok(Self {
            shape: (rows / pool, cols / pool),
            z_start_m: grid.z().start_m(),
            z_step_m: grid.z().step_m(),
            voxels,
            pixels,
            brightest: brightest.1,
        })
    }

    /// The voxels `[ix, iy, iz]` the images read, in the order [`ImageTape::images`] and
    /// [`ImageTape::backward`] take their values.
    pub fn voxels(&self) -> &[[usize; 3]] {
        &self.voxels
    }

    /// (rows, columns) of the images.
    pub fn shape(&self) -> (usize, usize) {
        self.shape
    }

    fn check_values(&self, values: &[Complex64]) -> Result<()> {
        if values.len() != self.voxels.len() {
            return Err(BackprojectError::Shape {
                what: "voxel values of an image tape",
                expected: format!("{} values, one per taped voxel", self.voxels.len()),
                actual: format!("{} values", values.len()),
            });
        }
        let brightest = values[self.brightest].norm();
        if !(brightest > 0.0 && brightest.is_finite()) {
            return Err(BackprojectError::ZeroVolume {
                max_magnitude: brightest as f32,
            });
        }
        Ok(())
    }

    /// The level and depth images of `values` at [`ImageTape::voxels`], with the recorded
    /// choices held fixed. For the values of the recorded volume they are its (pooled) image
    /// products, in `f64`. Errors: a wrong number of values, or a zero brightest voxel.
    pub fn images(&self, values: &[Complex64]) -> Result<TapedImages> {
        self.check_values(values)?;
        let reference = decibels(values[self.brightest]);
        let mut level_db = Array2::zeros(self.shape);
        let mut depth_m = Array2::zeros(self.shape);
        for ((pixel, level), depth) in self.pixels.iter().zip(&mut level_db).zip(&mut depth_m) {
            let b = decibels(values[pixel.peak]);
            *level = b - reference;
            let offset = pixel.neighbours.map_or(0.0, |[before, after]| {
                parabola(decibels(values[before]), b, decibels(values[after])).0
            });
            *depth = self.z_start_m + (pixel.iz as f64 + offset) * self.z_step_m;
        }
        Ok(TapedImages { level_db, depth_m })
    }

    /// The cotangents of `values` (one per [`ImageTape::voxels`]) for a loss whose gradients by
    /// the level image (per dB) and by the depth image (per m) are `d_level` and `d_depth`: the
    /// exact gradient of [`ImageTape::images`]. Errors: shapes that disagree with the tape, or
    /// a zero brightest voxel.
    pub fn backward(
        &self,
        values: &[Complex64],
        d_level: &Array2<f64>,
        d_depth: &Array2<f64>,
    ) -> Result<Vec<Complex64>> {
        self.check_values(values)?;
        for (what, g) in [
            ("level-image gradient", d_level),
            ("depth-image gradient", d_depth),
        ] {
            if g.dim() != self.shape {
                return Err(BackprojectError::Shape {
                    what,
                    expected: format!("{:?}, the tape's image", self.shape),
                    actual: format!("{:?}", g.dim()),
                });
            }
        }
        let mut out = vec![Complex64::new(0.0, 0.0); values.len()];
        let mut reference = 0.0;
        for ((pixel, &g_level), &g_depth) in self.pixels.iter().zip(d_level).zip(d_depth) {
            // L = dB(peak) − dB(brightest).
            let mut g_peak = g_level;
            reference += g_level;
            if let Some([before, after]) = pixel.neighbours {
                let (a, b, c) = (
                    decibels(values[before]),
                    decibels(values[pixel.peak]),
                    decibels(values[after]),
                );
                if let (_, Some([da, db, dc])) = parabola(a, b, c) {
                    let g = g_depth * self.z_step_m;
                    out[before] += decibel_cotangent(values[before], g * da);
                    out[after] += decibel_cotangent(values[after], g * dc);
                    g_peak += g * db;
                }
            }
            out[pixel.peak] += decibel_cotangent(values[pixel.peak], g_peak);
        }
        out[self.brightest] += decibel_cotangent(values[self.brightest], -reference);
        Ok(out)
    }
}

/// How a [`SparseProjection`] sums over one TX/RX pair.
#[derive(Clone)]
enum PairSum {
    /// [`Direct`](crate::Direct): Σ_n s_n·exp(j2π f_n τ).
    Direct { f0_per_m: f64, df_per_m: f64 },
    /// [`RangeCompressed`], in `f64`.
    RangeCompressed {
        fft_len: usize,
        bins_per_m: f64,
        /// exp(−j2π·n_c·m/M) for m mod 2M (n_c is a whole or half number, so 2M is a period).
        recentre: Vec<Complex64>,
        weights: Vec<f64>,
        linear: bool,
        inverse: Arc<dyn Fft<f64>>,
        forward: Arc<dyn Fft<f64>>,
        legs: Legs,
    },
}

/// Per element and voxel, `[element][voxel]`: one leg of the path, its length d (m) and its
/// carrier phasor exp(j2π·f_c·d/c). A pair's path is the sum of its TX and RX legs and its
/// carrier their product, so the N_t·N_r pairs need only (N_t + N_r) square roots and phasors
/// per voxel.
#[derive(Clone)]
struct Legs {
    tx: Vec<Leg>,
    rx: Vec<Leg>,
}

/// One leg: its length (m) and its carrier phasor.
type Leg = (f64, Complex64);

impl Legs {
    fn new(
        tx: &[Point3<f64>],
        rx: &[Point3<f64>],
        voxels: &[Point3<f64>],
        carrier_turns_per_m: f64,
    ) -> Self {
        let legs = |elements: &[Point3<f64>]| -> Vec<Leg> {
            (elements.par_iter())
                .flat_map_iter(|e| {
                    voxels.iter().map(move |v| {
                        let d = (v - e).norm();
                        (d, cis_turns_f64(carrier_turns_per_m * d))
                    })
                })
                .collect()
        };
        Self {
            tx: legs(tx),
            rx: legs(rx),
        }
    }

    /// The legs of TX `t` and RX `r` to every voxel (`n` of them).
    fn of(&self, t: usize, r: usize, n: usize) -> (&[Leg], &[Leg]) {
        (&self.tx[t * n..(t + 1) * n], &self.rx[r * n..(r + 1) * n])
    }
}

/// A back-projection evaluated at a few voxels in `f64` ([`SparseProjection::project`]), with
/// its exact adjoint ([`SparseProjection::adjoint`]), for gradients through imaging
/// (docs/physics.md §4.5). It computes the same sums as the [`Direct`](crate::Direct) and
/// [`RangeCompressed`] projectors, without their `f32` rounding.
#[derive(Clone)]
pub struct SparseProjection {
    tx: Vec<Point3<f64>>,
    rx: Vec<Point3<f64>>,
    steps: usize,
    voxels: Vec<Point3<f64>>,
    sum: PairSum,
}

impl std::fmt::Debug for SparseProjection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let method = match self.sum {
            PairSum::Direct { .. } => "direct",
            PairSum::RangeCompressed { .. } => "range-compressed",
        };
        f.debug_struct("SparseProjection")
            .field("method", &method)
            .field("pairs", &(self.tx.len() * self.rx.len()))
            .field("steps", &self.steps)
            .field("voxels", &self.voxels.len())
            .finish()
    }
}

impl SparseProjection {
    /// The back-projection `method` of `array` and `sweep` at the voxels `voxels` of `grid`.
    /// Errors: an invalid array, a voxel outside the grid, or the separable method (no
    /// adjoint yet: use the direct or range-compressed one).
    pub fn new(
        method: &ProjectionMethod,
        array: &dyn ArrayGeometry,
        sweep: &FrequencySweep,
        grid: &VoxelGrid,
        voxels: &[[usize; 3]],
    ) -> Result<Self> {
        radar_sim::validate_array(array)?;
        let (nx, ny, nz) = grid.shape();
        if let Some(v) = voxels
            .iter()
            .find(|[x, y, z]| *x >= nx || *y >= ny || *z >= nz)
        {
            return Err(BackprojectError::config(
                "sparse projection",
                format!("voxel {v:?} lies outside the {nx} × {ny} × {nz} grid"),
            ));
        }
        let positions: Vec<Point3<f64>> = (voxels.iter())
            .map(|&[x, y, z]| grid.position(x, y, z))
            .collect();
        let sum = match method {
            ProjectionMethod::Direct(_) => PairSum::Direct {
                f0_per_m: sweep.start_hz() / SPEED_OF_LIGHT,
                df_per_m: sweep.step_hz() / SPEED_OF_LIGHT,
            },
            ProjectionMethod::RangeCompressed(rc) => {
                let carrier_turns_per_m = sweep.centre_hz() / SPEED_OF_LIGHT;
                let legs = Legs::new(array.tx(), array.rx(), &positions, carrier_turns_per_m);
                Self::range_compressed(rc, sweep, legs)
            }
            ProjectionMethod::Separable(_) => {
                return Err(BackprojectError::config(
                    "sparse projection",
                    "the separable back-projection has no adjoint; image with the direct or \
                     range-compressed method to take gradients",
                ));
            }
        };
        Ok(Self {
            tx: array.tx().to_vec(),
            rx: array.rx().to_vec(),
            steps: sweep.steps(),
            voxels: positions,
            sum,
        })
    }

    fn range_compressed(rc: &RangeCompressed, sweep: &FrequencySweep, legs: Legs) -> PairSum {
        let fft_len = rc.fft_len(sweep.steps());
        let mut planner = FftPlanner::new();
        let centre_step = (sweep.steps() as f64 - 1.0) / 2.0;
        PairSum::RangeCompressed {
            inverse: planner.plan_fft_inverse(fft_len),
            forward: planner.plan_fft_forward(fft_len),
            fft_len,
            bins_per_m: fft_len as f64 * sweep.step_hz() / SPEED_OF_LIGHT,
            recentre: (0..2 * fft_len)
                .map(|m| cis_turns_f64(-centre_step * m as f64 / fft_len as f64))
                .collect(),
            weights: (rc.window().weights(sweep.steps()).iter())
                .map(|&w| f64::from(w))
                .collect(),
            linear: rc.interpolation() == Interpolation::Linear,
            legs,
        }
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.voxels.len()
    }
    /// Whether there are no voxels.
    pub fn is_empty(&self) -> bool {
        self.voxels.is_empty()
    }
    /// Values of a signal cube: N_t·N_r·N_f, `[tx][rx][frequency]` row-major.
    pub fn signal_len(&self) -> usize {
        self.tx.len() * self.rx.len() * self.steps
    }

    fn check(&self, what: &'static str, len: usize, expected: usize) -> Result<()> {
        if len == expected {
            return Ok(());
        }
        Err(BackprojectError::Shape {
            what,
            expected: expected.to_string(),
            actual: len.to_string(),
        })
    }

    /// The voxels' values of `signal` (`[tx][rx][frequency]` row-major, as
    /// [`SparseProjection::signal_len`] says), normalised by the pair count as every projector
    /// is. Errors: a signal of the wrong length.
    pub fn project(&self, signal: &[Complex64]) -> Result<Vec<Complex64>> {
        self.check(
            "signal of a sparse projection",
            signal.len(),
            self.signal_len(),
        )?;
        let n_pairs = self.tx.len() * self.rx.len();
        let norm = 1.0 / n_pairs as f64;
        // Fixed groups of pairs, summed in order: the result does not depend on the threads.
        let group = n_pairs.div_ceil(PAIR_GROUPS).max(1);
        let partial: Vec<Vec<Complex64>> = (0..n_pairs.div_ceil(group))
            .into_par_iter()
            .map(|g| {
                let mut acc = vec![Complex64::new(0.0, 0.0); self.voxels.len()];
                let mut scratch = self.scratch();
                for pair in g * group..((g + 1) * group).min(n_pairs) {
                    let samples = &signal[pair * self.steps..(pair + 1) * self.steps];
                    self.pair_forward(pair, samples, &mut scratch, &mut acc);
                }
                acc
            })
            .collect();
        let mut sum = vec![Complex64::new(0.0, 0.0); self.voxels.len()];
        for acc in partial {
            sum.iter_mut().zip(acc).for_each(|(s, a)| *s += a);
        }
        Ok(sum.into_iter().map(|v| v * norm).collect())
    }

    /// The adjoint: the signal's cotangent (`[tx][rx][frequency]` row-major) for the voxels'
    /// cotangents `cotangent` (docs/physics.md §4.5), so that Re⟨project(s), y⟩ =
    /// Re⟨s, adjoint(y)⟩ for every s and y. Errors: a wrong number of cotangents.
    pub fn adjoint(&self, cotangent: &[Complex64]) -> Result<Vec<Complex64>> {
        self.check(
            "voxel cotangents of a sparse projection",
            cotangent.len(),
            self.voxels.len(),
        )?;
        let norm = 1.0 / (self.tx.len() * self.rx.len()) as f64;
        let mut out = vec![Complex64::new(0.0, 0.0); self.signal_len()];
        out.par_chunks_mut(self.steps.max(1))
            .enumerate()
            .for_each_init(
                || self.scratch(),
                |scratch, (pair, samples)| {
                    self.pair_adjoint(pair, cotangent, scratch, samples);
                    samples.iter_mut().for_each(|s| *s *= norm);
                },
            );
        Ok(out)
    }

    /// Buffers for one pair's range profile and its FFTs (empty for the direct sum).
    fn scratch(&self) -> Scratch {
        let zeros = |n| vec![Complex64::new(0.0, 0.0); n];
        match &self.sum {
            PairSum::Direct { .. } => (Vec::new(), Vec::new()),
            PairSum::RangeCompressed {
                fft_len,
                inverse,
                forward,
                ..
            } => (
                zeros(*fft_len),
                zeros((inverse.get_inplace_scratch_len()).max(forward.get_inplace_scratch_len())),
            ),
        }
    }

    /// The path d_t + d_r (m) from pair `pair` to voxel `v`.
    fn path(&self, pair: usize, v: &Point3<f64>) -> f64 {
        let n_rx = self.rx.len();
        (v - self.tx[pair / n_rx]).norm() + (v - self.rx[pair % n_rx]).norm()
    }

    /// For a range-compressed sum: the bins read at path `path` (mod M) and their weights,
    /// with the carrier exp(j2π·f_c·path/c) `carrier` and the re-centring factors, so that
    /// the value is Σ weight·profile[bin].
    fn taps(&self, path: f64, carrier: Complex64) -> [(usize, Complex64); 2] {
        let PairSum::RangeCompressed {
            fft_len,
            bins_per_m,
            recentre,
            linear,
            ..
        } = &self.sum
        else {
            unreachable!("taps of a range-compressed sum only");
        };
        let x = path * bins_per_m;
        // q(m) = p(m mod M)·exp(−j2π·n_c·m/M).
        // M and 2M are powers of two: m mod them is a mask (also for negative m).
        let q = |m: f64, w: f64| {
            let m = m as i64;
            let shift = recentre[(m & (2 * *fft_len as i64 - 1)) as usize];
            ((m & (*fft_len as i64 - 1)) as usize, carrier * shift * w)
        };
        if *linear {
            let m = x.floor();
            let frac = x - m;
            [q(m, 1.0 - frac), q(m + 1.0, frac)]
        } else {
            [q((x + 0.5).floor(), 1.0), (0, Complex64::new(0.0, 0.0))]
        }
    }

    fn pair_forward(
        &self,
        pair: usize,
        samples: &[Complex64],
        (profile, fft_scratch): &mut Scratch,
        acc: &mut [Complex64],
    ) {
        match &self.sum {
            PairSum::Direct { f0_per_m, df_per_m } => {
                for (a, v) in acc.iter_mut().zip(&self.voxels) {
                    let path = self.path(pair, v);
                    let z = cis_turns_f64(df_per_m * path);
                    let horner =
                        (samples.iter().rev()).fold(Complex64::new(0.0, 0.0), |h, s| h * z + s);
                    *a += cis_turns_f64(f0_per_m * path) * horner;
                }
            }
            PairSum::RangeCompressed {
                weights,
                inverse,
                legs,
                ..
            } => {
                profile.fill(Complex64::new(0.0, 0.0));
                for ((p, s), w) in profile.iter_mut().zip(samples).zip(weights) {
                    *p = s * w;
                }
                inverse.process_with_scratch(profile, fft_scratch);
                let n_rx = self.rx.len();
                let (tx, rx) = legs.of(pair / n_rx, pair % n_rx, self.voxels.len());
                for (a, ((dt, ct), (dr, cr))) in acc.iter_mut().zip(tx.iter().zip(rx)) {
                    for (m, w) in self.taps(dt + dr, ct * cr) {
                        *a += w * profile[m];
                    }
                }
            }
        }
    }

    fn pair_adjoint(
        &self,
        pair: usize,
        cotangent: &[Complex64],
        (profile, fft_scratch): &mut Scratch,
        out: &mut [Complex64],
    ) {
        match &self.sum {
            PairSum::Direct { f0_per_m, df_per_m } => {
                for (g, v) in cotangent.iter().zip(&self.voxels) {
                    let path = self.path(pair, v);
                    // s̄_n += conj(exp(j2π f_n τ))·ḡ.
                    let step = cis_turns_f64(-df_per_m * path);
                    let mut phasor = cis_turns_f64(-f0_per_m * path) * g;
                    for o in out.iter_mut() {
                        *o += phasor;
                        phasor *= step;
                    }
                }
            }
            PairSum::RangeCompressed {
                weights,
                forward,
                legs,
                ..
            } => {
                profile.fill(Complex64::new(0.0, 0.0));
                let n_rx = self.rx.len();
                let (tx, rx) = legs.of(pair / n_rx, pair % n_rx, self.voxels.len());
                for (g, ((dt, ct), (dr, cr))) in cotangent.iter().zip(tx.iter().zip(rx)) {
                    for (m, w) in self.taps(dt + dr, ct * cr) {
                        profile[m] += w.conj() * g;
                    }
                }
                // The adjoint of the unnormalised inverse DFT is the forward DFT.
                forward.process_with_scratch(profile, fft_scratch);
                for ((o, p), w) in out.iter_mut().zip(profile.iter()).zip(weights) {
                    *o = p * w;
                }
            }
        }
    }
}
