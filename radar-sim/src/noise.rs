//! Complex white Gaussian receiver noise at a given SNR (docs/physics.md §3).

use num_complex::Complex32;
use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::hits::{Stream, rng};
use crate::kernel::Channels;

/// The mean power E|s|² of the working channels of a `[tx][rx][frequency]` signal. Row sums
/// in f64, combined in row order, so the value does not depend on the thread count.
pub(crate) fn mean_power(channels: &Channels, signal: &[Complex32]) -> f64 {
    let (n_rx, n_f) = (channels.rx.len(), channels.sweep.steps());
    if n_rx * n_f == 0 {
        return 0.0;
    }
    let rows: Vec<(f64, usize)> = signal
        .par_chunks(n_rx * n_f)
        .enumerate()
        .map(|(t, row)| {
            (row.chunks(n_f).enumerate())
                .filter(|(r, _)| channels.is_alive(t, *r))
                .fold((0.0, 0), |(sum, n), (_, samples)| {
                    let power: f64 = samples.iter().map(|s| s.norm_sqr() as f64).sum();
                    (sum + power, n + samples.len())
                })
        })
        .collect();
    let (sum, n) = rows
        .iter()
        .fold((0.0, 0), |(s, n), (rs, rn)| (s + rs, n + rn));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Adds complex white Gaussian noise of power E|n|² = `noise_power` to every sample: each of
/// the real and imaginary parts ~ N(0, noise_power/2). Transmitter row t draws from its own
/// random stream, so the noise does not depend on the thread count (nor on the channel mask).
pub(crate) fn add_noise(
    channels: &Channels,
    signal: &mut [Complex32],
    noise_power: f64,
    seed: u64,
) {
    let (n_rx, n_f) = (channels.rx.len(), channels.sweep.steps());
    if n_rx * n_f == 0 || noise_power <= 0.0 {
        return;
    }
    let sigma = (noise_power / 2.0).sqrt();
    signal
        .par_chunks_mut(n_rx * n_f)
        .enumerate()
        .for_each(|(t, row)| {
            let mut rng = rng(seed, Stream::Noise, t as u64);
            for s in row.iter_mut() {
                let re: f64 = rng.sample(StandardNormal);
                let im: f64 = rng.sample(StandardNormal);
                *s += Complex32::new((sigma * re) as f32, (sigma * im) as f32);
            }
        });
}

/// Zeros the dead channels.
pub(crate) fn apply_mask(channels: &Channels, signal: &mut [Complex32]) {
    let (n_rx, n_f) = (channels.rx.len(), channels.sweep.steps());
    if channels.mask.is_none() || n_rx * n_f == 0 {
        return;
    }
    for (t, row) in signal.chunks_mut(n_rx * n_f).enumerate() {
        for (r, samples) in row.chunks_mut(n_f).enumerate() {
            if !channels.is_alive(t, r) {
                samples.fill(Complex32::new(0.0, 0.0));
            }
        }
    }
}
