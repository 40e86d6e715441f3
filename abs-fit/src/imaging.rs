//! How a face becomes radar images: the array, sweep, voxel grid, simulation and
//! back-projection settings, as one serialisable, validated value.

use backproject::{AxisRange, VoxelGrid};
use radar_sim::{ArrayGeometry, CustomArray, FrequencySweep, Qar50, SimulationConfig};
use serde::{Deserialize, Serialize};

use crate::{AbsFitError, Result};

/// Which array images the face.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArraySpec {
    /// The 94 + 94 element QAR50 cluster (docs/physics.md §1).
    Qar50,
    /// The QAR50 keeping every `factor`-th TX and RX: same aperture, fewer channels, for fast
    /// presets (factor 2 keeps 47 + 47 elements at 6 mm pitch; λ/2 grating lobes appear
    /// outside the face's field of view at 25 cm).
    Qar50Decimated {
        /// Keep every `factor`-th element.
        factor: usize,
    },
}

impl ArraySpec {
    /// Builds the array.
    pub fn build(&self) -> Result<Box<dyn ArrayGeometry>> {
        Ok(match *self {
            Self::Qar50 => Box::new(Qar50::new()),
            Self::Qar50Decimated { factor } => {
                Box::new(CustomArray::decimated(&Qar50::new(), factor)?)
            }
        })
    }
}

/// Everything the physics renderer needs besides the face: the simulation's material, antenna
/// size and seed are set per face from its [`RenderParams`](crate::RenderParams).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagingConfig {
    /// The array.
    pub array: ArraySpec,
    /// The sweep.
    pub sweep: FrequencySweep,
    /// The voxel grid.
    pub grid: VoxelGrid,
    /// Hit density, roughness, noise, method and memory limit of the simulation.
    pub simulation: SimulationConfig,
    /// The back-projection algorithm.
    pub backprojection: backproject::ProjectionMethod,
    /// Images are the grid's x–y pixels max-pooled over `pool × pool` blocks (1: no pooling).
    /// The grid samples the point-spread function finely; pooling gives networks fewer pixels.
    pub pool: usize,
    /// Distance (m) from the array to the mean face's closest point (docs/physics.md §2).
    pub distance_m: f64,
}

impl Default for ImagingConfig {
    /// docs/physics.md's defaults: the full QAR50, 72–82 GHz in 128 steps, the 64 × 64 × 64 grid,
    /// 2 mm hits, 0.2 mm roughness, 30 dB SNR, range-compressed back-projection, 25 cm.
    fn default() -> Self {
        Self {
            array: ArraySpec::Qar50,
            sweep: FrequencySweep::qar50(),
            grid: VoxelGrid::default_face(),
            simulation: SimulationConfig::default(),
            backprojection: backproject::ProjectionMethod::default(),
            pool: 1,
            distance_m: morphable::DEFAULT_DISTANCE_M,
        }
    }
}

impl ImagingConfig {
    /// (z_near, z_far) in metres as the depth image normalises depth: the grid's first z and
    /// the exclusive end one step past its last.
    pub fn depth_range_m(&self) -> (f64, f64) {
        (self.grid.z().start_m(), self.grid.z().end_m())
    }

    /// Checks that every point lies inside the voxel grid's box (ends included): a target
    /// outside it images nowhere. Errors name the first point outside and the box.
    pub fn check_in_view(&self, points: &[nalgebra::Point3<f64>]) -> Result<()> {
        let (lo, hi) = self.grid.bounds();
        if let Some((i, p)) = points
            .iter()
            .enumerate()
            .find(|(_, p)| !(0..3).all(|k| (lo[k]..=hi[k]).contains(&p[k])))
        {
            return Err(AbsFitError::config(
                "point targets",
                format!(
                    "point {i} at ({}, {}, {}) m lies outside the imaged box x ∈ [{:.3}, {:.3}], \
                     y ∈ [{:.3}, {:.3}], z ∈ [{:.3}, {:.3}] m",
                    p.x, p.y, p.z, lo.x, hi.x, lo.y, hi.y, lo.z, hi.z
                ),
            ));
        }
        Ok(())
    }

    /// Checks the parts that are not validated by construction.
    pub fn validate(&self) -> Result<()> {
        self.simulation.validate()?;
        if !(self.distance_m.is_finite() && self.distance_m > 0.0) {
            return Err(AbsFitError::config(
                "imaging distance",
                format!("{} m must be finite and positive", self.distance_m),
            ));
        }
        self.array.build()?;
        let (rows, cols) = self.grid.image_shape();
        if self.pool == 0 || !rows.is_multiple_of(self.pool) || !cols.is_multiple_of(self.pool) {
            return Err(AbsFitError::config(
                "imaging pool",
                format!(
                    "{rows} × {cols} grid pixels do not split into {0} × {0} blocks",
                    self.pool
                ),
            ));
        }
        Ok(())
    }

    /// (rows, columns) of the images: the grid's, divided by the pooling factor.
    pub fn image_shape(&self) -> (usize, usize) {
        let (rows, cols) = self.grid.image_shape();
        (rows / self.pool.max(1), cols / self.pool.max(1))
    }

    /// A grid of `nx × ny` pixels of `pixel_m` centred on the axis, and `nz` depth steps of
    /// `dz_m` from `z_near_m`.
    pub fn centred_grid(
        nx: usize,
        ny: usize,
        pixel_m: f64,
        z_near_m: f64,
        nz: usize,
        dz_m: f64,
    ) -> Result<VoxelGrid> {
        Ok(VoxelGrid::new(
            AxisRange::centred(0.0, pixel_m, nx),
            AxisRange::centred(0.0, pixel_m, ny),
            AxisRange::from_count(z_near_m, dz_m, nz),
        )?)
    }
}
