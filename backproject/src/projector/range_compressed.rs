//! The range-compressed form: one zero-padded IFFT per TX/RX pair, then an interpolated
//! look-up per pair and voxel.

use std::sync::Arc;

use nalgebra::Point3;
use num_complex::Complex32;
use radar_sim::SPEED_OF_LIGHT;
use rayon::prelude::*;
use rustfft::{Fft, FftPlanner};
use serde::{Deserialize, Serialize};

use super::rc_kernel::{Isa, Profiles, TILE, TILE_SHAPE, TileContext, TileTables, tile_sum};
use super::{BackProjector, Problem, bytes_of};
use crate::phasor::cis_turns_f64;
use crate::{BackprojectError, Result, Volume, VoxelGrid};

/// A taper w_n over the sweep's N steps, applied before the range IFFT. It lowers the range
/// sidelobes at the cost of a wider main lobe and a lower peak (the image is scaled by the
/// window's mean).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrequencyWindow {
    /// w_n = 1: the range-compressed image then approximates the direct form itself.
    #[default]
    Rectangular,
    /// w_n = 0.5 − 0.5·cos(2πn/(N − 1)).
    Hann,
    /// w_n = 0.54 − 0.46·cos(2πn/(N − 1)).
    Hamming,
}

impl FrequencyWindow {
    /// The weights w_n, n = 0..n_steps.
    pub fn weights(&self, n_steps: usize) -> Vec<f32> {
        let denominator = n_steps.saturating_sub(1).max(1) as f64;
        (0..n_steps)
            .map(|n| {
                let c = (std::f64::consts::TAU * n as f64 / denominator).cos();
                (match self {
                    Self::Rectangular => 1.0,
                    Self::Hann => 0.5 - 0.5 * c,
                    Self::Hamming => 0.54 - 0.46 * c,
                }) as f32
            })
            .collect()
    }
}

/// How a range profile is read between its samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    /// The nearest sample: fastest, phase errors up to π/(2·padding) at the band edges.
    Nearest,
    /// Linear between the two neighbouring samples (the default).
    #[default]
    Linear,
}

/// The range-compressed form of docs/physics.md §4 (approximate, O(N_t·N_r·N_v)).
///
/// For each pair a zero-padded inverse FFT of length M (the smallest power of two ≥
/// `padding`·N) gives the range profile p_tr(τ_m) = Σ_n w_n·s(t, r, f_n)·exp(+j2π·nΔf·τ_m) at
/// τ_m = m/(M·Δf). It is stored re-centred on the band centre,
/// q_tr(τ) = exp(−j2π·n_c·Δf·τ)·p_tr(τ) with n_c = (N − 1)/2, so that it varies at most at
/// ±B/2 and interpolates well; the image is then
///
/// I(v) = 1/(N_t·N_r) · Σ_tr exp(+j2π·f_c·τ_tr(v)) · interp(q_tr, τ_tr(v)),  f_c = f_0 + n_c·Δf,
///
/// which is the same as docs/physics.md's exp(+j2π·f_0·τ)·interp(p_tr, τ) up to the interpolation
/// error. With a rectangular window and linear interpolation it correlates with the direct
/// form above 0.999.
///
/// The carrier exp(j2π·f_c·τ) = exp(j2π·f_c·d_t/c)·exp(j2π·f_c·d_r/c) comes from per-TX and
/// per-RX tables built once per tile of voxels, so the inner loop over (pair, voxel) is one
/// add, one interpolated look-up, one complex multiply-accumulate: no sine or cosine. Only the
/// part of each profile that the grid can reach is stored. Parallel over tiles of 4 × 4 × 8
/// voxels (rayon); memory is the kept profiles (≈ 12 MB for the QAR50 on the default grid),
/// small per-thread tables and the volume. On CPUs with AVX-512 the look-up picks samples out
/// of a 32-bin window of each profile held in registers (no gathers), with the next pairs'
/// windows prefetched; elsewhere it gathers, compiled for AVX2+FMA where present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RangeCompressedSpec", into = "RangeCompressedSpec")]
pub struct RangeCompressed {
    padding: usize,
    window: FrequencyWindow,
    interpolation: Interpolation,
}

/// The serialised form of [`RangeCompressed`], validated on the way in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct RangeCompressedSpec {
    padding: usize,
    window: FrequencyWindow,
    interpolation: Interpolation,
}

impl TryFrom<RangeCompressedSpec> for RangeCompressed {
    type Error = BackprojectError;
    fn try_from(s: RangeCompressedSpec) -> Result<Self> {
        Self::new(s.padding, s.window, s.interpolation)
    }
}
impl From<RangeCompressed> for RangeCompressedSpec {
    fn from(s: RangeCompressed) -> Self {
        Self {
            padding: s.padding,
            window: s.window,
            interpolation: s.interpolation,
        }
    }
}

impl Default for RangeCompressed {
    /// 8× padding, rectangular window, linear interpolation.
    fn default() -> Self {
        Self {
            padding: Self::MIN_PADDING,
            window: FrequencyWindow::Rectangular,
            interpolation: Interpolation::Linear,
        }
    }
}

impl RangeCompressed {
    /// The least zero-padding factor allowed.
    pub const MIN_PADDING: usize = 8;
    /// The largest zero-padding factor allowed.
    pub const MAX_PADDING: usize = 1024;

    /// A range-compressed projector with zero-padding factor `padding` (between
    /// [`MIN_PADDING`](Self::MIN_PADDING) and [`MAX_PADDING`](Self::MAX_PADDING)), a frequency
    /// window and an interpolation.
    pub fn new(
        padding: usize,
        window: FrequencyWindow,
        interpolation: Interpolation,
    ) -> Result<Self> {
        if !(Self::MIN_PADDING..=Self::MAX_PADDING).contains(&padding) {
            return Err(BackprojectError::config(
                "range-compressed padding",
                format!(
                    "{padding}× zero-padding: it must lie between {}× and {}×",
                    Self::MIN_PADDING,
                    Self::MAX_PADDING
                ),
            ));
        }
        Ok(Self {
            padding,
            window,
            interpolation,
        })
    }
    /// The zero-padding factor.
    pub fn padding(&self) -> usize {
        self.padding
    }
    /// The frequency window.
    pub fn window(&self) -> FrequencyWindow {
        self.window
    }
    /// The interpolation.
    pub fn interpolation(&self) -> Interpolation {
        self.interpolation
    }
    /// The IFFT length M for a sweep of `n_steps` steps: the smallest power of two ≥
    /// `padding`·`n_steps`.
    pub fn fft_len(&self, n_steps: usize) -> usize {
        (self.padding * n_steps).next_power_of_two()
    }
}

/// The most profile bins kept per pair: indices up to this are exact in `f32`.
const MAX_PROFILE_LEN: usize = 1 << 24;

/// Which part of every range profile is kept. Profile bins are τ_m = m/(M·Δf); pair (t, r)
/// keeps `len` bins from m = `tx_first_bin[t] + rx_first_bin[r]`.
#[derive(Debug)]
struct ProfileLayout {
    fft_len: usize,
    /// Profile bins per metre of path d_t + d_r: M·Δf/c.
    bins_per_m: f64,
    tx_first_bin: Vec<i64>,
    rx_first_bin: Vec<i64>,
    len: usize,
}

impl ProfileLayout {
    fn new(problem: &Problem<'_>, fft_len: usize) -> Self {
        let bins_per_m = fft_len as f64 * problem.sweep().step_hz() / SPEED_OF_LIGHT;
        let (lo, hi) = problem.grid().bounds();
        // For each element, the first bin it can reach and how many bins past it.
        let reach = |elements: &[Point3<f64>]| -> (Vec<i64>, f64) {
            let mut span = 0.0f64;
            let first = elements
                .iter()
                .map(|p| {
                    let nearest = Point3::new(
                        p.x.clamp(lo.x, hi.x),
                        p.y.clamp(lo.y, hi.y),
                        p.z.clamp(lo.z, hi.z),
                    );
                    // Per coordinate, the box face farther from the element.
                    let far = |c: f64, lo: f64, hi: f64| {
                        if (c - lo).abs() > (c - hi).abs() {
                            lo
                        } else {
                            hi
                        }
                    };
                    let farthest = Point3::new(
                        far(p.x, lo.x, hi.x),
                        far(p.y, lo.y, hi.y),
                        far(p.z, lo.z, hi.z),
                    );
                    let first = ((nearest - p).norm() * bins_per_m).floor();
                    span = span.max((farthest - p).norm() * bins_per_m - first);
                    first as i64
                })
                .collect();
            (first, span)
        };
        let (tx_first_bin, tx_span) = reach(problem.tx());
        let (rx_first_bin, rx_span) = reach(problem.rx());
        Self {
            fft_len,
            bins_per_m,
            tx_first_bin,
            rx_first_bin,
            // Two spare bins: one for the right-hand neighbour of linear interpolation, one for
            // rounding.
            len: (tx_span + rx_span).ceil() as usize + 2,
        }
    }

    /// Bytes of all stored profiles.
    fn profile_bytes(&self) -> u64 {
        Profiles::bytes(self.tx_first_bin.len() * self.rx_first_bin.len(), self.len)
    }

    /// The re-centring factors exp(−j2π·n_c·m/M) for every bin any pair keeps, from bin
    /// `first` on.
    fn centring(&self, n_steps: usize) -> (i64, Vec<Complex32>) {
        let min = |v: &[i64]| v.iter().copied().min().unwrap_or(0);
        let max = |v: &[i64]| v.iter().copied().max().unwrap_or(0);
        let first = min(&self.tx_first_bin) + min(&self.rx_first_bin);
        let last = max(&self.tx_first_bin) + max(&self.rx_first_bin) + self.len as i64;
        let centre = (n_steps as f64 - 1.0) / 2.0;
        let factors = (first..last)
            .map(|m| {
                let c = cis_turns_f64(-centre * m as f64 / self.fft_len as f64);
                Complex32::new(c.re as f32, c.im as f32)
            })
            .collect();
        (first, factors)
    }

    /// All kept profiles, already re-centred.
    fn profiles(&self, problem: &Problem<'_>, window: FrequencyWindow) -> Profiles {
        let n_steps = problem.sweep().steps();
        let weights = window.weights(n_steps);
        let fft: Arc<dyn Fft<f32>> = FftPlanner::new().plan_fft_inverse(self.fft_len);
        let (centring_first, centring) = self.centring(n_steps);
        let n_rx = self.rx_first_bin.len();
        let mut profiles = Profiles::zeros(self.tx_first_bin.len() * n_rx, self.len);
        let pair_values = profiles.pair_values();
        let (data, splitter) = profiles.values_mut();
        data.par_chunks_mut(pair_values * n_rx)
            .enumerate()
            .for_each_init(
                || {
                    (
                        vec![Complex32::new(0.0, 0.0); self.fft_len],
                        vec![Complex32::new(0.0, 0.0); fft.get_inplace_scratch_len()],
                    )
                },
                |(buffer, scratch), (t, tx_profiles)| {
                    for (r, pair) in tx_profiles.chunks_exact_mut(pair_values).enumerate() {
                        buffer.fill(Complex32::new(0.0, 0.0));
                        for ((b, s), w) in buffer
                            .iter_mut()
                            .zip(problem.pair_samples(t, r))
                            .zip(&weights)
                        {
                            *b = s * w;
                        }
                        fft.process_with_scratch(buffer, scratch);
                        let first = self.tx_first_bin[t] + self.rx_first_bin[r];
                        let m_len = self.fft_len as i64;
                        let (re, im) = splitter.split(pair);
                        for (k, (re, im)) in re.iter_mut().zip(im).enumerate() {
                            let m = first + k as i64;
                            // The profile is periodic in m with period M (the sweep's
                            // unambiguous range); the centring factor is not, so it is taken
                            // at the true m.
                            let q = buffer[m.rem_euclid(m_len) as usize]
                                * centring[(m - centring_first) as usize];
                            (*re, *im) = (q.re, q.im);
                        }
                    }
                },
            );
        profiles
    }
}

/// Tiles along x, y and z covering a grid.
fn tile_counts(grid: &VoxelGrid) -> [usize; 3] {
    let (nx, ny, nz) = grid.shape();
    [
        nx.div_ceil(TILE_SHAPE[0]),
        ny.div_ceil(TILE_SHAPE[1]),
        nz.div_ceil(TILE_SHAPE[2]),
    ]
}

/// Number of tiles covering a grid.
fn n_tiles(grid: &VoxelGrid) -> usize {
    tile_counts(grid).iter().product()
}

/// The voxel indices `[ix, iy, iz]` of tile `index` (fewer than [`TILE`] at the grid's far
/// edges).
fn tile_voxels(grid: &VoxelGrid, index: usize) -> Vec<[usize; 3]> {
    let (nx, ny, nz) = grid.shape();
    let [_, ty, tz] = tile_counts(grid);
    let origin = [index / (ty * tz), (index / tz) % ty, index % tz];
    let range = |axis: usize, n: usize| {
        origin[axis] * TILE_SHAPE[axis]..((origin[axis] + 1) * TILE_SHAPE[axis]).min(n)
    };
    let mut voxels = Vec::with_capacity(TILE);
    for ix in range(0, nx) {
        for iy in range(1, ny) {
            for iz in range(2, nz) {
                voxels.push([ix, iy, iz]);
            }
        }
    }
    voxels
}

impl BackProjector for RangeCompressed {
    fn name(&self) -> &'static str {
        "range-compressed"
    }

    fn working_memory_bytes(&self, problem: &Problem<'_>) -> u64 {
        let layout = ProfileLayout::new(problem, self.fft_len(problem.sweep().steps()));
        let (n_tx, n_rx) = (problem.tx().len(), problem.rx().len());
        let per_thread = bytes_of::<Complex32>(2 * layout.fft_len)
            .saturating_add(TileTables::bytes(n_tx))
            .saturating_add(TileTables::bytes(n_rx));
        let tile_results = bytes_of::<[Complex32; TILE]>(n_tiles(problem.grid()));
        layout
            .profile_bytes()
            .saturating_add(bytes_of::<Complex32>(2 * layout.len + layout.fft_len))
            .saturating_add(tile_results)
            .saturating_add(per_thread.saturating_mul(rayon::current_num_threads() as u64))
    }

    fn project(&self, problem: &Problem<'_>) -> Result<Volume> {
        self.project_with(problem, Isa::detect())
    }
}

impl RangeCompressed {
    /// [`BackProjector::project`] with the tile kernel compiled for `isa`.
    fn project_with(&self, problem: &Problem<'_>, isa: Isa) -> Result<Volume> {
        let grid = *problem.grid();
        let layout = ProfileLayout::new(problem, self.fft_len(problem.sweep().steps()));
        if layout.len > MAX_PROFILE_LEN {
            return Err(BackprojectError::config(
                "range-compressed back-projection",
                format!(
                    "the grid spans {} range bins per pair, over the {MAX_PROFILE_LEN} supported",
                    layout.len
                ),
            ));
        }
        let profiles = layout.profiles(problem, self.window);
        let ctx = TileContext {
            profiles: &profiles,
            tx: problem.tx(),
            rx: problem.rx(),
            tx_first_bin: &layout.tx_first_bin,
            rx_first_bin: &layout.rx_first_bin,
            bins_per_m: layout.bins_per_m,
            carrier_turns_per_m: problem.sweep().centre_hz() / SPEED_OF_LIGHT,
        };
        let linear = self.interpolation == Interpolation::Linear;
        let norm = problem.normalisation() as f32;
        let (n_tx, n_rx) = (problem.tx().len(), problem.rx().len());
        let tiles: Vec<[Complex32; TILE]> = (0..n_tiles(&grid))
            .into_par_iter()
            .map_init(
                || (TileTables::new(n_tx), TileTables::new(n_rx)),
                |(tx_tables, rx_tables), index| {
                    let indices = tile_voxels(&grid, index);
                    // Lanes past the grid's edge repeat the last voxel; their results are
                    // dropped.
                    let voxels = std::array::from_fn(|lane| {
                        let [ix, iy, iz] = indices[lane.min(indices.len() - 1)];
                        grid.position(ix, iy, iz)
                    });
                    let (re, im) = tile_sum(isa, linear, &ctx, &voxels, tx_tables, rx_tables);
                    std::array::from_fn(|v| Complex32::new(re[v] * norm, im[v] * norm))
                },
            )
            .collect();
        let mut data = ndarray::Array3::zeros(grid.shape());
        for (tile, values) in tiles.iter().enumerate() {
            for (index, value) in tile_voxels(&grid, tile).iter().zip(values) {
                data[*index] = *value;
            }
        }
        Volume::new(grid, data)
    }
}

#[cfg(test)]
mod tests {
    use nalgebra::Point3;
    use ndarray::Array3;
    use num_complex::Complex32;
    use radar_sim::{ArrayGeometry, FrequencySweep, SignalCube};

    use super::*;
    use crate::{AxisRange, VoxelGrid};

    struct Line(Vec<Point3<f64>>, Vec<Point3<f64>>);
    impl ArrayGeometry for Line {
        fn tx(&self) -> &[Point3<f64>] {
            &self.0
        }
        fn rx(&self) -> &[Point3<f64>] {
            &self.1
        }
    }

    /// Every kernel this CPU can run (AVX-512 window, AVX2 and portable gathers) computes the
    /// same volume, on a fine grid (window kernel where available) and on a coarse one (whose
    /// tiles span too many range bins for a window).
    #[test]
    fn every_kernel_gives_the_same_volume() {
        let array = Line(
            (0..7)
                .map(|i| Point3::new(-0.06 + 0.02 * i as f64, -0.07, 0.0))
                .collect(),
            (0..5)
                .map(|i| Point3::new(0.07, -0.05 + 0.025 * i as f64, 0.0))
                .collect(),
        );
        let sweep = FrequencySweep::new(72e9, 82e9, 24).unwrap();
        let cube = SignalCube::new(Array3::from_shape_fn((7, 5, 24), |(t, r, n)| {
            let k = (t * 31 + r * 17 + n * 7) as f32;
            Complex32::new((k * 0.37).sin(), (k * 0.73).cos())
        }));
        let fine = VoxelGrid::new(
            AxisRange::centred(0.0, 0.004, 9),
            AxisRange::centred(0.0, 0.004, 6),
            AxisRange::centred(0.25, 0.0025, 11),
        )
        .unwrap();
        let coarse = VoxelGrid::new(
            AxisRange::centred(0.0, 0.02, 5),
            AxisRange::centred(0.0, 0.02, 4),
            AxisRange::centred(0.25, 0.015, 9),
        )
        .unwrap();
        for grid in [fine, coarse] {
            for interpolation in [Interpolation::Linear, Interpolation::Nearest] {
                let method =
                    RangeCompressed::new(8, FrequencyWindow::Rectangular, interpolation).unwrap();
                let problem = Problem::new(&array, &sweep, &cube, &grid).unwrap();
                let reference = method.project_with(&problem, Isa::Baseline).unwrap();
                let scale = reference
                    .data()
                    .iter()
                    .map(|c| c.norm())
                    .fold(0.0, f32::max);
                for isa in Isa::available() {
                    let volume = method.project_with(&problem, isa).unwrap();
                    let worst = volume
                        .data()
                        .iter()
                        .zip(reference.data())
                        .map(|(a, b)| (a - b).norm())
                        .fold(0.0, f32::max);
                    assert!(
                        worst <= 1e-5 * scale,
                        "{isa:?}, {interpolation:?}, grid {:?}: error {worst} of {scale}",
                        grid.shape()
                    );
                }
            }
        }
    }
}
