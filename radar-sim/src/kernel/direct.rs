//! The golden reference: the sum of docs/physics.md §3 term by term, in f64, with one sin/cos per
//! (tx, rx, frequency, source). O(N_t·N_r·N_f·N_h); for tests and checks.

use num_complex::{Complex32, Complex64};
use rayon::prelude::*;

use super::{Channels, FacetBands, Reflectance, Source};
use crate::SPEED_OF_LIGHT;
use crate::facets::facet_integral;

/// One term: the amplitude a_h(t, r), the effective path L = d_t + d_r − 2δ_h (m) and, for a
/// facet, q·ρ_i at its corners (m), q = ω_i + ω_o.
fn term(
    channels: &Channels,
    reflectance: &Reflectance,
    t: usize,
    r: usize,
    s: &Source,
) -> (f64, f64, Option<[f64; 3]>) {
    let to_tx = channels.view(&channels.tx[t], &s.position);
    let to_rx = channels.view(&channels.rx[r], &s.position);
    let spreading = to_tx.gain * to_rx.gain / (to_tx.distance * to_rx.distance);
    let amplitude = match s.normal {
        Some(n) => {
            let cos_i = n.dot(&to_tx.direction).max(0.0);
            let cos_o = n.dot(&to_rx.direction).max(0.0);
            s.weight
                * reflectance.factor(&n, &to_tx.direction, &to_rx.direction)
                * cos_i
                * cos_o
                * spreading
        }
        None => s.weight * spreading,
    };
    let corners = s.offsets.map(|[a, b]| {
        let q = to_tx.direction + to_rx.direction;
        let (qa, qb) = (q.dot(&a), q.dot(&b));
        [qa, qb, -qa - qb]
    });
    (
        amplitude,
        to_tx.distance + to_rx.distance - 2.0 * s.roughness_m,
        corners,
    )
}

/// s(t, r, f) for every channel, `[tx][rx][frequency]` row-major: the sources of each set with
/// its reflectance (`None`: isotropic points), added. A facet's term is multiplied by its exact
/// normalised integral F(k·q·ρ) at every frequency.
pub(crate) fn simulate(
    channels: &Channels,
    sets: &[(&[Source], Option<Reflectance>)],
) -> Vec<Complex32> {
    (simulate_f64(channels, sets, &FacetBands::exact(channels.sweep)).into_iter())
        .map(|a| Complex32::new(a.re as f32, a.im as f32))
        .collect()
}

/// exp(−j·k_n·L) for the sweep's uniform wavenumbers k_n = k_0 + n·Δk, by recurrence.
pub(crate) fn path_phasors(k0: f64, dk: f64, path: f64, out: &mut [Complex64]) {
    let step = Complex64::from_polar(1.0, -dk * path);
    let mut phasor = Complex64::from_polar(1.0, -k0 * path);
    for o in out {
        *o = phasor;
        phasor *= step;
    }
}

/// [`simulate`] in `f64`, unrounded, with each facet's integral taken once per group of
/// `bands` (one group per frequency: the exact reference; the fast kernel's sub-bands: its
/// model without its `f32` rounding).
pub(crate) fn simulate_f64(
    channels: &Channels,
    sets: &[(&[Source], Option<Reflectance>)],
    bands: &FacetBands,
) -> Vec<Complex64> {
    let (n_rx, n_f) = (channels.rx.len(), channels.sweep.steps());
    let mut out = vec![Complex64::new(0.0, 0.0); channels.tx.len() * n_rx * n_f];
    if n_rx * n_f == 0 {
        return out;
    }
    let (k0, dk) = wavenumbers(channels);
    out.par_chunks_mut(n_rx * n_f)
        .enumerate()
        .for_each(|(t, row)| {
            let mut phasors = vec![Complex64::new(0.0, 0.0); n_f];
            for (r, acc) in row.chunks_mut(n_f).enumerate() {
                if !channels.is_alive(t, r) {
                    continue;
                }
                for (sources, reflectance) in sets {
                    let reflectance = reflectance.unwrap_or(ISOTROPIC);
                    for s in sources.iter() {
                        let (amplitude, path, corners) = term(channels, &reflectance, t, r, s);
                        if amplitude == 0.0 {
                            continue;
                        }
                        path_phasors(k0, dk, path, &mut phasors);
                        match corners {
                            None => (acc.iter_mut().zip(&phasors))
                                .for_each(|(a, p)| *a += p * amplitude),
                            Some(c) => {
                                for (k, members) in &bands.groups {
                                    let facet = facet_integral(c.map(|x| k * x)) * amplitude;
                                    for &n in members {
                                        acc[n] += phasors[n] * facet;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        });
    out
}

/// (k_0, Δk) of the sweep (rad/m).
pub(crate) fn wavenumbers(channels: &Channels) -> (f64, f64) {
    let per_hz = std::f64::consts::TAU / SPEED_OF_LIGHT;
    (
        channels.sweep.start_hz() * per_hz,
        channels.sweep.step_hz() * per_hz,
    )
}

/// Point scatterers: no material factor (their `normal` is `None`, so it is never used).
pub(crate) const ISOTROPIC: Reflectance = Reflectance {
    diffuse: 1.0,
    specular: 0.0,
    exponent: 0.0,
    lobe_floor: 0.0,
};
