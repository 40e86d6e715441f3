//! Back-projection behind one trait, [`BackProjector`], and its three algorithms:
//! [`Direct`] (the reference), [`Separable`] (exact, matrix products) and
//! [`RangeCompressed`] (approximate, fast).

mod direct;
mod range_compressed;
mod rc_kernel;
mod separable;

pub use direct::Direct;
pub use range_compressed::{FrequencyWindow, Interpolation, RangeCompressed};
pub use separable::Separable;

use std::borrow::Cow;

use nalgebra::Point3;
use num_complex::Complex32;
use radar_sim::{ArrayGeometry, FrequencySweep, RadarError, SPEED_OF_LIGHT, SignalCube};
use serde::{Deserialize, Serialize};

use crate::{Result, Volume, VoxelGrid};

/// A validated back-projection problem: an array, a sweep, a signal cube that matches both,
/// and a grid. Built by [`Problem::new`]; the algorithms only ever see validated problems.
#[derive(Clone)]
pub struct Problem<'a> {
    tx: &'a [Point3<f64>],
    rx: &'a [Point3<f64>],
    sweep: &'a FrequencySweep,
    /// s(t, r, f) flattened row-major `[tx, rx, frequency]`.
    samples: Cow<'a, [Complex32]>,
    grid: &'a VoxelGrid,
}

impl<'a> Problem<'a> {
    /// Checks the inputs: at least one TX and one RX with finite positions, and a cube of
    /// shape `[n_tx, n_rx, n_freq]` matching the array and the sweep.
    pub fn new(
        array: &'a dyn ArrayGeometry,
        sweep: &'a FrequencySweep,
        cube: &'a SignalCube,
        grid: &'a VoxelGrid,
    ) -> Result<Self> {
        radar_sim::validate_array(array)?;
        cube.check_matches(array, sweep)?;
        if let Some(((t, r, n), s)) = cube
            .data()
            .indexed_iter()
            .find(|(_, s)| !(s.re.is_finite() && s.im.is_finite()))
        {
            return Err(RadarError::config(
                "signal cube",
                format!("sample [tx {t}, rx {r}, frequency {n}] = {s} is not finite"),
            )
            .into());
        }
        Ok(Self {
            tx: array.tx(),
            rx: array.rx(),
            sweep,
            samples: match cube.data().as_slice() {
                Some(all) => Cow::Borrowed(all),
                None => Cow::Owned(cube.data().iter().copied().collect()),
            },
            grid,
        })
    }
    /// Transmitter positions (m).
    pub fn tx(&self) -> &[Point3<f64>] {
        self.tx
    }
    /// Receiver positions (m).
    pub fn rx(&self) -> &[Point3<f64>] {
        self.rx
    }
    /// The sweep.
    pub fn sweep(&self) -> &FrequencySweep {
        self.sweep
    }
    /// The signal s(t, r, f) flattened row-major `[tx, rx, frequency]` (frequency fastest).
    pub fn samples(&self) -> &[Complex32] {
        &self.samples
    }
    /// The signal of pair `(t, r)` over frequency.
    pub fn pair_samples(&self, t: usize, r: usize) -> &[Complex32] {
        let n_freq = self.sweep.steps();
        let start = (t * self.rx.len() + r) * n_freq;
        &self.samples[start..start + n_freq]
    }
    /// The grid.
    pub fn grid(&self) -> &VoxelGrid {
        self.grid
    }
    /// Number of TX/RX pairs N_t·N_r.
    pub fn n_pairs(&self) -> usize {
        self.tx.len() * self.rx.len()
    }
    /// The normalisation 1/(N_t·N_r) of docs/physics.md §4.
    pub fn normalisation(&self) -> f64 {
        1.0 / self.n_pairs() as f64
    }
    /// The sweep's first frequency and its step over c, in cycles per metre of path: the phase
    /// of frequency k over a path d is (f₀/c + k·Δf/c)·d turns.
    pub fn cycles_per_metre(&self) -> (f64, f64) {
        (
            self.sweep.start_hz() / SPEED_OF_LIGHT,
            self.sweep.step_hz() / SPEED_OF_LIGHT,
        )
    }
    /// Pair-voxel-frequency terms of the sum, N_t·N_r·N_f·N_v (saturating).
    pub fn n_terms(&self) -> u64 {
        (self.n_pairs() as u64)
            .saturating_mul(self.sweep.steps() as u64)
            .saturating_mul(self.grid.n_voxels() as u64)
    }
}

/// Back-projection (the matched filter of docs/physics.md §4) onto a voxel grid:
///
/// I(v) = 1/(N_t·N_r) · Σ_f Σ_t Σ_r s(t, r, f) · exp(+j·2πf·(|v − p_t| + |v − p_r|)/c).
///
/// Implementors provide [`working_memory_bytes`](Self::working_memory_bytes) and
/// [`project`](Self::project); callers use [`back_project`](Self::back_project), which
/// validates the inputs and checks the memory estimate against the grid's limit before any
/// allocation.
pub trait BackProjector: Send + Sync {
    /// A short name for logs and benchmarks.
    fn name(&self) -> &'static str;

    /// Estimated bytes the method needs besides the output volume, for a validated problem.
    fn working_memory_bytes(&self, problem: &Problem<'_>) -> u64;

    /// The volume of a validated problem whose memory estimate has been checked.
    fn project(&self, problem: &Problem<'_>) -> Result<Volume>;

    /// Validates, checks memory, back-projects.
    fn back_project(
        &self,
        array: &dyn ArrayGeometry,
        sweep: &FrequencySweep,
        cube: &SignalCube,
        grid: &VoxelGrid,
    ) -> Result<Volume> {
        let problem = Problem::new(array, sweep, cube, grid)?;
        let needed = grid
            .memory_bytes()
            .saturating_add(self.working_memory_bytes(&problem));
        let (nx, ny, nz) = grid.shape();
        grid.check_memory(
            &format!(
                "{} back-projection of {} × {} pairs × {} frequencies onto {nx} × {ny} × {nz} voxels",
                self.name(),
                problem.tx().len(),
                problem.rx().len(),
                sweep.steps()
            ),
            needed,
        )?;
        self.project(&problem)
    }
}

impl<P: BackProjector + ?Sized> BackProjector for &P {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn working_memory_bytes(&self, problem: &Problem<'_>) -> u64 {
        (**self).working_memory_bytes(problem)
    }
    fn project(&self, problem: &Problem<'_>) -> Result<Volume> {
        (**self).project(problem)
    }
}
impl<P: BackProjector + ?Sized> BackProjector for Box<P> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn working_memory_bytes(&self, problem: &Problem<'_>) -> u64 {
        (**self).working_memory_bytes(problem)
    }
    fn project(&self, problem: &Problem<'_>) -> Result<Volume> {
        (**self).project(problem)
    }
}

/// The three methods as one serialisable setting (for configs and dataset manifests).
/// Its [`BackProjector`] implementation delegates to the method it names.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectionMethod {
    /// [`Direct`].
    Direct(Direct),
    /// [`Separable`].
    Separable(Separable),
    /// [`RangeCompressed`].
    RangeCompressed(RangeCompressed),
}

impl Default for ProjectionMethod {
    /// The range-compressed method with its defaults: what dataset generation uses.
    fn default() -> Self {
        Self::RangeCompressed(RangeCompressed::default())
    }
}

impl ProjectionMethod {
    fn inner(&self) -> &dyn BackProjector {
        match self {
            Self::Direct(m) => m,
            Self::Separable(m) => m,
            Self::RangeCompressed(m) => m,
        }
    }
}

impl BackProjector for ProjectionMethod {
    fn name(&self) -> &'static str {
        self.inner().name()
    }
    fn working_memory_bytes(&self, problem: &Problem<'_>) -> u64 {
        self.inner().working_memory_bytes(problem)
    }
    fn project(&self, problem: &Problem<'_>) -> Result<Volume> {
        self.inner().project(problem)
    }
}

/// Distances (m) from `point` to each of `elements`.
pub(crate) fn distances_into(point: &Point3<f64>, elements: &[Point3<f64>], out: &mut [f64]) {
    for (d, e) in out.iter_mut().zip(elements) {
        *d = (point - e).norm();
    }
}

/// Voxel `index` (row-major `[ix, iy, iz]`, z fastest) of a grid.
pub(crate) fn voxel_position(grid: &VoxelGrid, index: usize) -> Point3<f64> {
    let (_, ny, nz) = grid.shape();
    grid.position(index / (ny * nz), (index / nz) % ny, index % nz)
}

/// Bytes of `count` values of type `T` (saturating).
pub(crate) fn bytes_of<T>(count: usize) -> u64 {
    (count as u64).saturating_mul(std::mem::size_of::<T>() as u64)
}
