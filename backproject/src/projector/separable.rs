//! The separable form: one complex matrix product per frequency.

use nalgebra::Point3;
use ndarray::{Array2, Zip, linalg::general_mat_mul};
use num_complex::{Complex32, Complex64};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{BackProjector, Problem, bytes_of, voxel_position};
use crate::phasor::cis_turns_f64;
use crate::{BackprojectError, Result, Volume};

/// The separable form of docs/physics.md §4, exact: exp(jk(d_t + d_r)) = exp(jk·d_t)·exp(jk·d_r),
/// so for each frequency, over a block of voxels,
///
/// Y = S_f · E_R  (N_t × N_r times N_r × N_v, one complex GEMM),  I_f(v) = Σ_t E_T[t, v]·Y[t, v],
///
/// with E_T[t, v] = exp(jk_f·|v − p_t|), E_R[r, v] = exp(jk_f·|v − p_r|). The phasor tables
/// advance from one frequency to the next by an `f64` recurrence (multiplication by
/// exp(jΔk·d)), so no sine or cosine is evaluated inside the frequency loop; the GEMM runs in
/// complex `f32` (`matrixmultiply` through `ndarray`), the sum over frequency in `f64`.
/// Parallel over voxel blocks; memory per thread grows with the block size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SeparableSpec", into = "SeparableSpec")]
pub struct Separable {
    voxels_per_block: usize,
}

/// The serialised form of [`Separable`], validated on the way in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct SeparableSpec {
    voxels_per_block: usize,
}

impl TryFrom<SeparableSpec> for Separable {
    type Error = BackprojectError;
    fn try_from(s: SeparableSpec) -> Result<Self> {
        Self::new(s.voxels_per_block)
    }
}
impl From<Separable> for SeparableSpec {
    fn from(s: Separable) -> Self {
        Self {
            voxels_per_block: s.voxels_per_block,
        }
    }
}

impl Separable {
    /// The default block: 256 voxels (the GEMM's column count).
    pub const DEFAULT_VOXELS_PER_BLOCK: usize = 256;

    /// Blocks of `voxels_per_block` voxels (at least 1): larger blocks make longer matrix
    /// products and use more memory per thread.
    pub fn new(voxels_per_block: usize) -> Result<Self> {
        if voxels_per_block == 0 {
            return Err(BackprojectError::config(
                "separable back-projection",
                "0 voxels per block: a block needs at least one voxel",
            ));
        }
        Ok(Self { voxels_per_block })
    }
    /// Voxels per block.
    pub fn voxels_per_block(&self) -> usize {
        self.voxels_per_block
    }
}

impl Default for Separable {
    fn default() -> Self {
        Self {
            voxels_per_block: Self::DEFAULT_VOXELS_PER_BLOCK,
        }
    }
}

/// exp(j2π·f_0·d/c) and exp(j2π·Δf·d/c) for every element (rows) and voxel (columns).
struct PhasorTables {
    current: Array2<Complex64>,
    step: Array2<Complex64>,
}

impl PhasorTables {
    fn new(elements: &[Point3<f64>], voxels: &[Point3<f64>], f0_per_m: f64, df_per_m: f64) -> Self {
        let shape = (elements.len(), voxels.len());
        let d = Array2::from_shape_fn(shape, |(e, v)| (voxels[v] - elements[e]).norm());
        Self {
            current: d.mapv(|d| cis_turns_f64(f0_per_m * d)),
            step: d.mapv(|d| cis_turns_f64(df_per_m * d)),
        }
    }
    /// Moves every phasor on to the next frequency.
    fn advance(&mut self) {
        Zip::from(&mut self.current)
            .and(&self.step)
            .for_each(|c, s| *c *= s);
    }
}

impl BackProjector for Separable {
    fn name(&self) -> &'static str {
        "separable"
    }

    fn working_memory_bytes(&self, problem: &Problem<'_>) -> u64 {
        let (nt, nr, nf) = (
            problem.tx().len(),
            problem.rx().len(),
            problem.sweep().steps(),
        );
        let nb = self.voxels_per_block.min(problem.grid().n_voxels());
        let per_frequency_matrices = bytes_of::<Complex32>(nt * nr * nf);
        let per_thread = bytes_of::<Complex64>(2 * (nt + nr) * nb) // current and step tables
            .saturating_add(bytes_of::<f64>((nt + nr) * nb)) // distances
            .saturating_add(bytes_of::<Complex32>((nt + nr) * nb)) // E_R and Y
            .saturating_add(bytes_of::<Complex64>(nb))
            .saturating_add(bytes_of::<Point3<f64>>(nb));
        per_frequency_matrices
            .saturating_add(per_thread.saturating_mul(rayon::current_num_threads() as u64))
    }

    fn project(&self, problem: &Problem<'_>) -> Result<Volume> {
        let grid = *problem.grid();
        let (tx, rx) = (problem.tx(), problem.rx());
        let (f0_per_m, df_per_m) = problem.cycles_per_metre();
        let norm = problem.normalisation();
        // S_f, N_t × N_r, for every frequency.
        let signal: Vec<Array2<Complex32>> = (0..problem.sweep().steps())
            .map(|n| {
                Array2::from_shape_fn((tx.len(), rx.len()), |(t, r)| problem.pair_samples(t, r)[n])
            })
            .collect();
        let mut samples = vec![Complex32::new(0.0, 0.0); grid.n_voxels()];
        samples
            .par_chunks_mut(self.voxels_per_block)
            .enumerate()
            .for_each(|(block, out)| {
                let first = block * self.voxels_per_block;
                let voxels: Vec<Point3<f64>> = (first..first + out.len())
                    .map(|i| voxel_position(&grid, i))
                    .collect();
                let mut e_tx = PhasorTables::new(tx, &voxels, f0_per_m, df_per_m);
                let mut e_rx = PhasorTables::new(rx, &voxels, f0_per_m, df_per_m);
                let mut e_rx32 = Array2::<Complex32>::zeros((rx.len(), voxels.len()));
                let mut y = Array2::<Complex32>::zeros((tx.len(), voxels.len()));
                let mut sum = vec![Complex64::new(0.0, 0.0); voxels.len()];
                for s_f in &signal {
                    Zip::from(&mut e_rx32)
                        .and(&e_rx.current)
                        .for_each(|e, c| *e = Complex32::new(c.re as f32, c.im as f32));
                    general_mat_mul(
                        Complex32::new(1.0, 0.0),
                        s_f,
                        &e_rx32,
                        Complex32::new(0.0, 0.0),
                        &mut y,
                    );
                    for (e_t, y_t) in e_tx.current.rows().into_iter().zip(y.rows()) {
                        for ((acc, e), y) in sum.iter_mut().zip(e_t).zip(y_t) {
                            *acc += e * Complex64::new(y.re as f64, y.im as f64);
                        }
                    }
                    e_tx.advance();
                    e_rx.advance();
                }
                for (o, s) in out.iter_mut().zip(&sum) {
                    *o = Complex32::new((s.re * norm) as f32, (s.im * norm) as f32);
                }
            });
        Volume::from_vec(grid, samples)
    }
}
