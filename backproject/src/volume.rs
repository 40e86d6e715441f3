//! The complex image volume.

use nalgebra::Point3;
use ndarray::Array3;
use num_complex::Complex32;

use crate::{BackprojectError, Result, VoxelGrid};

/// A back-projected volume: the complex image I(v) of docs/physics.md §4 on a [`VoxelGrid`],
/// indexed `[ix, iy, iz]` (z varies fastest in memory, so each z-line is contiguous).
/// Dimensionless: with a signal of unit-amplitude returns, a point target images to about
/// `N_f` at its position (the 1/(N_t·N_r) normalisation, no 1/N_f).
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    grid: VoxelGrid,
    data: Array3<Complex32>,
}

impl Volume {
    /// Wraps samples indexed `[ix, iy, iz]`; their shape must be the grid's `(nx, ny, nz)`.
    pub fn new(grid: VoxelGrid, data: Array3<Complex32>) -> Result<Self> {
        if data.dim() != grid.shape() {
            return Err(BackprojectError::Shape {
                what: "volume [x, y, z]",
                expected: format!("{:?} (the grid)", grid.shape()),
                actual: format!("{:?}", data.dim()),
            });
        }
        Ok(Self { grid, data })
    }
    /// Builds a volume from samples in `[ix, iy, iz]` row-major order (z fastest).
    pub(crate) fn from_vec(grid: VoxelGrid, samples: Vec<Complex32>) -> Result<Self> {
        let n = samples.len();
        let data =
            Array3::from_shape_vec(grid.shape(), samples).map_err(|_| BackprojectError::Shape {
                what: "volume samples",
                expected: format!("{} (the grid's voxel count)", grid.n_voxels()),
                actual: n.to_string(),
            })?;
        Ok(Self { grid, data })
    }
    /// The grid.
    pub fn grid(&self) -> &VoxelGrid {
        &self.grid
    }
    /// The samples, `[ix, iy, iz]`.
    pub fn data(&self) -> &Array3<Complex32> {
        &self.data
    }
    /// Unwraps the samples.
    pub fn into_data(self) -> Array3<Complex32> {
        self.data
    }
    /// |I| everywhere, `[ix, iy, iz]`.
    pub fn magnitude(&self) -> Array3<f32> {
        self.data.mapv(|c| c.norm())
    }
    /// The voxel of largest |I|: `([ix, iy, iz], |I|)`. The first one on ties (row-major).
    pub fn peak(&self) -> ([usize; 3], f32) {
        let mut best = ([0; 3], f32::NEG_INFINITY);
        for ((ix, iy, iz), c) in self.data.indexed_iter() {
            let m = c.norm();
            if m > best.1 {
                best = ([ix, iy, iz], m);
            }
        }
        best
    }
    /// The position (m) of voxel `[ix, iy, iz]`.
    pub fn position(&self, index: [usize; 3]) -> Point3<f64> {
        self.grid.position(index[0], index[1], index[2])
    }
}
