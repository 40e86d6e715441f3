//! # backproject
//!
//! Back-projection imaging of near-field MIMO radar signals (docs/physics.md §4): a validated
//! [`VoxelGrid`], one [`BackProjector`] trait with three algorithms ([`Direct`], the
//! reference; [`Separable`], exact complex matrix products; [`RangeCompressed`], fast and
//! approximate), and the images made from the complex [`Volume`]: the [`MaxProjection`], the dB
//! [`LevelImage`], the [`AmplitudeImage`] and the [`DepthImage`] for a [`DynamicRange`], with
//! PNG and `.npy` export.
//!
//! Units: SI (m, Hz) in radar space (array plane z = 0, boresight +z), dB for levels. The
//! crate knows nothing of faces or neural networks: it takes any
//! [`ArrayGeometry`], sweep and signal cube.
//!
//! ```
//! use backproject::{AxisRange, DynamicRange, RangeCompressed, VoxelGrid, image_products};
//! use nalgebra::Point3;
//! use num_complex::Complex32;
//! use radar_sim::{ArrayGeometry, FrequencySweep, SPEED_OF_LIGHT, SignalCube};
//!
//! // A small cross-shaped array: 8 TX along x, 8 RX along y, 3 mm pitch.
//! struct Cross { tx: Vec<Point3<f64>>, rx: Vec<Point3<f64>> }
//! impl ArrayGeometry for Cross {
//!     fn tx(&self) -> &[Point3<f64>] { &self.tx }
//!     fn rx(&self) -> &[Point3<f64>] { &self.rx }
//! }
//! let pitch = 0.003;
//! let array = Cross {
//!     tx: (0..8).map(|i| Point3::new((i as f64 - 3.5) * pitch, 0.0, 0.0)).collect(),
//!     rx: (0..8).map(|i| Point3::new(0.0, (i as f64 - 3.5) * pitch, 0.0)).collect(),
//! };
//! let sweep = FrequencySweep::new(72e9, 82e9, 32)?;
//! // A point target at z = 0.25 m: s(t, r, f) = exp(−j2πf(d_t + d_r)/c).
//! let target = Point3::new(0.0, 0.0, 0.25);
//! let mut cube = SignalCube::zeros(8, 8, 32);
//! for ((t, r, n), s) in cube.data_mut().indexed_iter_mut() {
//!     let path = (target - array.tx[t]).norm() + (target - array.rx[r]).norm();
//!     let phase = -std::f64::consts::TAU * sweep.frequency(n) * path / SPEED_OF_LIGHT;
//!     *s = Complex32::new(phase.cos() as f32, phase.sin() as f32);
//! }
//! let grid = VoxelGrid::new(
//!     AxisRange::centred(0.0, 0.004, 5),
//!     AxisRange::centred(0.0, 0.004, 5),
//!     AxisRange::centred(0.25, 0.0025, 9),
//! )?;
//! let products = image_products(&array, &sweep, &cube, &grid, &RangeCompressed::default())?;
//! // The target is on the central voxel column: 0 dB there, depth 0.25 m.
//! assert_eq!(products.level_db().db()[[2, 2]], 0.0);
//! approx::assert_abs_diff_eq!(products.depth_m().depth_m()[[2, 2]], 0.25, epsilon = 1e-3);
//! let amplitude = products.amplitude(DynamicRange::new(20.0)?);
//! assert_eq!(amplitude.values()[[2, 2]], 1.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod adjoint;
mod error;
mod export;
mod grid;
mod images;
mod phasor;
mod pooling;
mod projector;
mod volume;

pub use adjoint::{ImageTape, SparseProjection, TapedImages};
pub use error::{BackprojectError, Result};
pub use export::ColourMap;
pub use grid::{AxisRange, BYTES_PER_VOXEL, DEFAULT_MEMORY_LIMIT_BYTES, GridAxis, VoxelGrid};
pub use images::{
    AmplitudeImage, DepthImage, DepthMap, DynamicRange, ImageProducts, LevelImage, MaxProjection,
};
pub use projector::{
    BackProjector, Direct, FrequencyWindow, Interpolation, Problem, ProjectionMethod,
    RangeCompressed, Separable,
};
pub use volume::Volume;

use radar_sim::{ArrayGeometry, FrequencySweep, SignalCube};

/// From a signal to the image products in one call: back-projects with `projector` and keeps
/// the level (dB) and depth (m) images, before any dynamic range is applied. This is what
/// dataset generation calls per sample.
pub fn image_products(
    array: &dyn ArrayGeometry,
    sweep: &FrequencySweep,
    cube: &SignalCube,
    grid: &VoxelGrid,
    projector: &dyn BackProjector,
) -> Result<ImageProducts> {
    let volume = projector.back_project(array, sweep, cube, grid)?;
    ImageProducts::from_volume(&volume)
}
