//! The golden reference: the sum of docs/physics.md §3 term by term, in f64, with one sin/cos per
//! (tx, rx, frequency, source). O(N_t·N_r·N_f·N_h); for tests and checks.

use num_complex::{Complex32, Complex64};
use rayon::prelude::*;

use super::{Channels, Source};
use crate::{Material, SPEED_OF_LIGHT};

/// The amplitude a_h(t, r) and the effective path L = d_t + d_r − 2δ_h (m) of one term.
fn term(channels: &Channels, material: &Material, t: usize, r: usize, s: &Source) -> (f64, f64) {
    let to_tx = channels.view(&channels.tx[t], &s.position);
    let to_rx = channels.view(&channels.rx[r], &s.position);
    let spreading = to_tx.gain * to_rx.gain / (to_tx.distance * to_rx.distance);
    let amplitude = match s.normal {
        Some(n) => {
            let cos_i = n.dot(&to_tx.direction).max(0.0);
            let cos_o = n.dot(&to_rx.direction).max(0.0);
            s.weight
                * material.brdf(&n, &to_tx.direction, &to_rx.direction)
                * cos_i
                * cos_o
                * spreading
        }
        None => s.weight * spreading,
    };
    (
        amplitude,
        to_tx.distance + to_rx.distance - 2.0 * s.roughness_m,
    )
}

/// s(t, r, f) for every channel, `[tx][rx][frequency]` row-major.
pub(crate) fn simulate(
    channels: &Channels,
    material: &Material,
    sources: &[Source],
) -> Vec<Complex32> {
    let (n_rx, n_f) = (channels.rx.len(), channels.sweep.steps());
    let frequencies = channels.sweep.frequencies();
    let mut out = vec![Complex32::new(0.0, 0.0); channels.tx.len() * n_rx * n_f];
    if n_rx * n_f == 0 {
        return out;
    }
    out.par_chunks_mut(n_rx * n_f)
        .enumerate()
        .for_each(|(t, row)| {
            let mut acc = vec![Complex64::new(0.0, 0.0); n_f];
            for (r, samples) in row.chunks_mut(n_f).enumerate() {
                if !channels.is_alive(t, r) {
                    continue;
                }
                acc.fill(Complex64::new(0.0, 0.0));
                for s in sources {
                    let (amplitude, path) = term(channels, material, t, r, s);
                    if amplitude == 0.0 {
                        continue;
                    }
                    for (a, f) in acc.iter_mut().zip(&frequencies) {
                        let phase = -2.0 * std::f64::consts::PI * f * path / SPEED_OF_LIGHT;
                        *a += Complex64::from_polar(amplitude, phase);
                    }
                }
                for (out, a) in samples.iter_mut().zip(&acc) {
                    *out = Complex32::new(a.re as f32, a.im as f32);
                }
            }
        });
    out
}
