//! The direct form: the reference.

use num_complex::{Complex32, Complex64};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{BackProjector, Problem, bytes_of, distances_into, voxel_position};
use crate::phasor::cis_turns_f64;
use crate::{Result, Volume};

/// The direct form of docs/physics.md §4, the reference every faster method is tested against:
/// for every voxel and every TX/RX pair, the sum over frequency in `f64`,
///
/// Σ_n s_n·exp(j2π f_n τ) = exp(j2π f_0 τ) · Σ_n s_n·z^n,  z = exp(j2π Δf τ),  τ = (d_t + d_r)/c,
///
/// evaluated by Horner's rule (the same sum, term by term, with no approximation; stable
/// because |z| = 1). Cost O(N_t·N_r·N_f·N_v); parallel over voxels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Direct;

impl BackProjector for Direct {
    fn name(&self) -> &'static str {
        "direct"
    }

    fn working_memory_bytes(&self, problem: &Problem<'_>) -> u64 {
        // Per thread: the distances to every element.
        let per_thread = bytes_of::<f64>(problem.tx().len() + problem.rx().len());
        per_thread.saturating_mul(rayon::current_num_threads() as u64)
    }

    fn project(&self, problem: &Problem<'_>) -> Result<Volume> {
        let grid = *problem.grid();
        let (tx, rx) = (problem.tx(), problem.rx());
        let (f0_per_m, df_per_m) = problem.cycles_per_metre();
        let norm = problem.normalisation();
        let mut samples = vec![Complex32::new(0.0, 0.0); grid.n_voxels()];
        samples.par_iter_mut().enumerate().for_each_init(
            || (vec![0.0; tx.len()], vec![0.0; rx.len()]),
            |(d_tx, d_rx), (index, out)| {
                let v = voxel_position(&grid, index);
                distances_into(&v, tx, d_tx);
                distances_into(&v, rx, d_rx);
                let mut sum = Complex64::new(0.0, 0.0);
                for (t, &dt) in d_tx.iter().enumerate() {
                    for (r, &dr) in d_rx.iter().enumerate() {
                        let path = dt + dr;
                        let z = cis_turns_f64(df_per_m * path);
                        let horner = problem
                            .pair_samples(t, r)
                            .iter()
                            .rev()
                            .fold(Complex64::new(0.0, 0.0), |acc, s| {
                                acc * z + Complex64::new(s.re as f64, s.im as f64)
                            });
                        sum += cis_turns_f64(f0_per_m * path) * horner;
                    }
                }
                let i = sum * norm;
                *out = Complex32::new(i.re as f32, i.im as f32);
            },
        );
        Volume::from_vec(grid, samples)
    }
}
