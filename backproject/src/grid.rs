//! Voxel grids: validated axes, the default face grid and the memory estimate.

use nalgebra::Point3;
use serde::{Deserialize, Serialize};

use crate::{BackprojectError, Result};

/// The memory limit of a grid built without an explicit one: 4 GiB (bytes). The machine this
/// project targets has 24 GiB; one back-projection should never take more than a fraction.
pub const DEFAULT_MEMORY_LIMIT_BYTES: u64 = 4 << 30;

/// Bytes of one voxel of a [`Volume`](crate::Volume) (complex f32).
pub const BYTES_PER_VOXEL: u64 = 8;

/// Relative slack (in steps) when counting the samples of a half-open range, so that
/// `[-0.128, 0.128)` at 4 mm has 64 samples despite floating-point rounding.
const COUNT_SLACK_STEPS: f64 = 1e-6;

/// Most samples along one axis; far beyond any useful grid, it keeps counts exact in `f64`.
const MAX_AXIS_LEN: f64 = (1u64 << 32) as f64;

/// An unvalidated axis specification: the half-open range `[start_m, stop_m)` sampled every
/// `step_m` metres, i.e. coordinates `start_m + i·step_m` for every `i ≥ 0` below `stop_m`.
/// [`VoxelGrid::new`] validates it into a [`GridAxis`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AxisRange {
    /// First coordinate (m).
    pub start_m: f64,
    /// Exclusive end (m).
    pub stop_m: f64,
    /// Sample spacing (m), positive.
    pub step_m: f64,
}

impl AxisRange {
    /// The half-open range `[start_m, stop_m)` every `step_m` metres.
    pub fn new(start_m: f64, stop_m: f64, step_m: f64) -> Self {
        Self {
            start_m,
            stop_m,
            step_m,
        }
    }
    /// `count` samples from `start_m` every `step_m` metres (`stop_m = start_m + count·step_m`).
    pub fn from_count(start_m: f64, step_m: f64, count: usize) -> Self {
        Self::new(start_m, start_m + count as f64 * step_m, step_m)
    }
    /// `count` samples every `step_m` metres, centred on `centre_m` (for odd counts the centre
    /// is a sample).
    pub fn centred(centre_m: f64, step_m: f64, count: usize) -> Self {
        Self::from_count(
            centre_m - (count as f64 - 1.0) / 2.0 * step_m,
            step_m,
            count,
        )
    }
    /// Validates into a [`GridAxis`]; `axis` names it in errors.
    fn validate(self, axis: &'static str) -> Result<GridAxis> {
        let invalid = |reason: String| BackprojectError::InvalidAxis {
            axis,
            start_m: self.start_m,
            stop_m: self.stop_m,
            step_m: self.step_m,
            reason,
        };
        if !(self.start_m.is_finite() && self.stop_m.is_finite() && self.step_m.is_finite()) {
            return Err(invalid("every value must be finite".into()));
        }
        if self.step_m <= 0.0 {
            return Err(invalid(format!(
                "the step must be positive, got {} m",
                self.step_m
            )));
        }
        if self.stop_m <= self.start_m {
            let what = if self.stop_m == self.start_m {
                "empty"
            } else {
                "inverted"
            };
            return Err(invalid(format!(
                "the range is {what}: stop {} m must lie above start {} m",
                self.stop_m, self.start_m
            )));
        }
        let count = ((self.stop_m - self.start_m) / self.step_m - COUNT_SLACK_STEPS).ceil();
        if !(1.0..=MAX_AXIS_LEN).contains(&count) {
            return Err(invalid(format!(
                "{count} samples: an axis holds between 1 and {MAX_AXIS_LEN}"
            )));
        }
        Ok(GridAxis {
            start_m: self.start_m,
            step_m: self.step_m,
            len: count as usize,
        })
    }
}

/// A validated grid axis: `len` coordinates `start_m + i·step_m`, `i = 0..len` (m).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridAxis {
    start_m: f64,
    step_m: f64,
    len: usize,
}

impl GridAxis {
    /// First coordinate (m).
    pub fn start_m(&self) -> f64 {
        self.start_m
    }
    /// Sample spacing (m).
    pub fn step_m(&self) -> f64 {
        self.step_m
    }
    /// Number of samples (at least 1).
    pub fn len(&self) -> usize {
        self.len
    }
    /// Always false: a validated axis holds at least one sample.
    pub fn is_empty(&self) -> bool {
        false
    }
    /// Last coordinate (m).
    pub fn last_m(&self) -> f64 {
        self.coordinate(self.len - 1)
    }
    /// Exclusive end `start_m + len·step_m` (m): one step past the last sample.
    pub fn end_m(&self) -> f64 {
        self.start_m + self.len as f64 * self.step_m
    }
    /// Coordinate `i` (m); `i` may lie outside `0..len` (extrapolated).
    pub fn coordinate(&self, i: usize) -> f64 {
        self.start_m + i as f64 * self.step_m
    }
    /// All coordinates (m).
    pub fn coordinates(&self) -> Vec<f64> {
        (0..self.len).map(|i| self.coordinate(i)).collect()
    }
    /// The specification this axis was built from.
    pub fn range(&self) -> AxisRange {
        AxisRange::from_count(self.start_m, self.step_m, self.len)
    }
}

/// A regular voxel grid in radar space (m): array plane z = 0, boresight +z (docs/physics.md §1).
/// Voxel `(ix, iy, iz)` sits at `(x.coordinate(ix), y.coordinate(iy), z.coordinate(iz))`.
///
/// The grid carries a memory limit (bytes). [`VoxelGrid::new`] checks the volume itself against
/// it, and every [`BackProjector`](crate::BackProjector) checks its whole working memory
/// against it before it allocates anything.
///
/// ```
/// use backproject::{AxisRange, VoxelGrid};
/// let grid = VoxelGrid::default_face();
/// assert_eq!(grid.shape(), (64, 64, 64));
/// assert_eq!(grid.memory_bytes(), 64 * 64 * 64 * 8);
/// // An inverted axis is an error that names the numbers.
/// let bad = VoxelGrid::new(
///     AxisRange::new(0.1, -0.1, 0.004),
///     AxisRange::new(-0.1, 0.1, 0.004),
///     AxisRange::new(0.2, 0.3, 0.0025),
/// );
/// assert!(bad.unwrap_err().to_string().contains("inverted"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GridSpec", into = "GridSpec")]
pub struct VoxelGrid {
    x: GridAxis,
    y: GridAxis,
    z: GridAxis,
    memory_limit_bytes: u64,
}

/// The serialised form of a grid, validated on the way in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct GridSpec {
    x: AxisRange,
    y: AxisRange,
    z: AxisRange,
    memory_limit_bytes: u64,
}

impl TryFrom<GridSpec> for VoxelGrid {
    type Error = BackprojectError;
    fn try_from(s: GridSpec) -> Result<Self> {
        Self::with_memory_limit(s.x, s.y, s.z, s.memory_limit_bytes)
    }
}
impl From<VoxelGrid> for GridSpec {
    fn from(g: VoxelGrid) -> Self {
        Self {
            x: g.x.range(),
            y: g.y.range(),
            z: g.z.range(),
            memory_limit_bytes: g.memory_limit_bytes,
        }
    }
}

impl VoxelGrid {
    /// A grid over three axes with the [`DEFAULT_MEMORY_LIMIT_BYTES`] limit. Fails on an empty,
    /// inverted or non-finite axis and when the volume alone exceeds the limit.
    pub fn new(x: AxisRange, y: AxisRange, z: AxisRange) -> Result<Self> {
        Self::with_memory_limit(x, y, z, DEFAULT_MEMORY_LIMIT_BYTES)
    }

    /// A grid with an explicit memory limit (bytes) for the volume and any back-projection onto
    /// it.
    pub fn with_memory_limit(
        x: AxisRange,
        y: AxisRange,
        z: AxisRange,
        memory_limit_bytes: u64,
    ) -> Result<Self> {
        let grid = Self {
            x: x.validate("x")?,
            y: y.validate("y")?,
            z: z.validate("z")?,
            memory_limit_bytes,
        };
        let (nx, ny, nz) = grid.shape();
        grid.check_memory(
            &format!("a {nx} × {ny} × {nz} complex f32 volume"),
            grid.memory_bytes(),
        )?;
        Ok(grid)
    }

    /// The default face grid of docs/physics.md §4: x, y ∈ [−0.128, 0.128) m every 4 mm (64 × 64),
    /// z ∈ [0.20, 0.36) m every 2.5 mm (64).
    pub fn default_face() -> Self {
        let lateral = GridAxis {
            start_m: -0.128,
            step_m: 0.004,
            len: 64,
        };
        Self {
            x: lateral,
            y: lateral,
            z: GridAxis {
                start_m: 0.20,
                step_m: 0.0025,
                len: 64,
            },
            memory_limit_bytes: DEFAULT_MEMORY_LIMIT_BYTES,
        }
    }

    /// The x axis (m).
    pub fn x(&self) -> &GridAxis {
        &self.x
    }
    /// The y axis (m).
    pub fn y(&self) -> &GridAxis {
        &self.y
    }
    /// The z axis (m, range from the array plane).
    pub fn z(&self) -> &GridAxis {
        &self.z
    }
    /// `(nx, ny, nz)`.
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.x.len, self.y.len, self.z.len)
    }
    /// Number of voxels nx·ny·nz.
    pub fn n_voxels(&self) -> usize {
        self.x.len * self.y.len * self.z.len
    }
    /// Bytes of the complex f32 volume on this grid ([`BYTES_PER_VOXEL`] per voxel), saturating.
    pub fn memory_bytes(&self) -> u64 {
        (self.x.len as u64)
            .saturating_mul(self.y.len as u64)
            .saturating_mul(self.z.len as u64)
            .saturating_mul(BYTES_PER_VOXEL)
    }
    /// The memory limit (bytes) for the volume and any back-projection onto this grid.
    pub fn memory_limit_bytes(&self) -> u64 {
        self.memory_limit_bytes
    }
    /// The same grid with another memory limit (bytes); fails if the volume exceeds it.
    pub fn with_limit(self, memory_limit_bytes: u64) -> Result<Self> {
        Self::with_memory_limit(
            self.x.range(),
            self.y.range(),
            self.z.range(),
            memory_limit_bytes,
        )
    }
    /// `Err(MemoryLimit)` naming `what` when `needed_bytes` exceeds this grid's limit.
    pub fn check_memory(&self, what: &str, needed_bytes: u64) -> Result<()> {
        if needed_bytes > self.memory_limit_bytes {
            return Err(BackprojectError::MemoryLimit {
                what: what.to_owned(),
                needed_bytes,
                limit_bytes: self.memory_limit_bytes,
            });
        }
        Ok(())
    }
    /// The position of voxel `(ix, iy, iz)` (m).
    pub fn position(&self, ix: usize, iy: usize, iz: usize) -> Point3<f64> {
        Point3::new(
            self.x.coordinate(ix),
            self.y.coordinate(iy),
            self.z.coordinate(iz),
        )
    }
    /// The corners of the box spanned by the voxel positions: (minimum, maximum) (m).
    pub fn bounds(&self) -> (Point3<f64>, Point3<f64>) {
        (
            Point3::new(self.x.start_m, self.y.start_m, self.z.start_m),
            Point3::new(self.x.last_m(), self.y.last_m(), self.z.last_m()),
        )
    }

    /// Image shape `(rows, columns) = (ny, nx)` of every image made from a volume on this grid.
    pub fn image_shape(&self) -> (usize, usize) {
        (self.y.len, self.x.len)
    }
    /// The voxel column `(ix, iy)` that image pixel `(row, col)` shows. Images are seen from
    /// the array, looking along +z with +y up (like a camera at the array): row 0 is the largest
    /// y and column 0 the largest x, so `iy = ny − 1 − row` and `ix = nx − 1 − col`. A face
    /// placed by docs/physics.md §2 therefore appears as in a frontal photograph, its right side on
    /// the image's left.
    ///
    /// # Panics
    /// If `row ≥ ny` or `col ≥ nx`, like any out-of-range index.
    pub fn pixel_to_column(&self, row: usize, col: usize) -> (usize, usize) {
        assert!(
            row < self.y.len && col < self.x.len,
            "pixel ({row}, {col}) outside a {} × {} image",
            self.y.len,
            self.x.len
        );
        (self.x.len - 1 - col, self.y.len - 1 - row)
    }
    /// The image pixel `(row, col)` that shows voxel column `(ix, iy)`; the inverse of
    /// [`pixel_to_column`](Self::pixel_to_column).
    ///
    /// # Panics
    /// If `ix ≥ nx` or `iy ≥ ny`, like any out-of-range index.
    pub fn column_to_pixel(&self, ix: usize, iy: usize) -> (usize, usize) {
        assert!(
            ix < self.x.len && iy < self.y.len,
            "voxel column ({ix}, {iy}) outside a {} × {} grid",
            self.x.len,
            self.y.len
        );
        (self.y.len - 1 - iy, self.x.len - 1 - ix)
    }
    /// The lateral position `(x, y)` (m) that image pixel `(row, col)` shows.
    pub fn pixel_position(&self, row: usize, col: usize) -> (f64, f64) {
        let (ix, iy) = self.pixel_to_column(row, col);
        (self.x.coordinate(ix), self.y.coordinate(iy))
    }
}

impl Default for VoxelGrid {
    fn default() -> Self {
        Self::default_face()
    }
}
