//! Images from a volume (docs/physics.md §4): the maximum projection, the dB level image, the
//! amplitude image for a dynamic range D, and the depth image.
//!
//! Every image is an `Array2<f32>` indexed `[row, col]` of shape `(ny, nx)`, seen from the
//! array looking along +z with +y up: row 0 is the largest y, column 0 the largest x (see
//! [`VoxelGrid::pixel_to_column`]). A face placed by docs/physics.md §2 looks as in a frontal
//! photograph.
//!
//! The products that do not depend on D, the level L (dB) and the depth z* (m), are kept in
//! [`ImageProducts`]; [`DynamicRange`] turns them into the amplitude and depth images, so D can
//! be resampled at training time without back-projecting again.

use ndarray::{Array2, Zip};
use serde::{Deserialize, Serialize};

use crate::{BackprojectError, Result, Volume, VoxelGrid};

/// The maximum projection of a volume along z: m(x, y) = max_z |I(x, y, z)| and the depth of
/// that maximum, refined to sub-voxel precision.
///
/// Depth: z* = z_k at k = argmax_z |I| (the nearest on ties), refined by the parabola through
/// the three dB samples around it,
/// z* = z_k + Δz·(L_{k−1} − L_{k+1}) / (2·(L_{k−1} − 2L_k + L_{k+1})).
/// No refinement where the maximum is the first or last sample of the z-line, or where a
/// neighbour is zero (its dB value is −∞). The offset of a true maximum lies within ±Δz/2.
#[derive(Debug, Clone, PartialEq)]
pub struct MaxProjection {
    magnitude: Array2<f32>,
    depth_m: Array2<f32>,
    z_near_m: f64,
    z_far_m: f64,
}

impl MaxProjection {
    /// Projects a volume.
    pub fn from_volume(volume: &Volume) -> Self {
        let grid: &VoxelGrid = volume.grid();
        let z = grid.z();
        let mut magnitude = Array2::zeros(grid.image_shape());
        let mut depth_m = Array2::zeros(grid.image_shape());
        Zip::indexed(&mut magnitude)
            .and(&mut depth_m)
            .for_each(|(row, col), m, depth| {
                let (ix, iy) = grid.pixel_to_column(row, col);
                let line = volume.data().slice(ndarray::s![ix, iy, ..]);
                let mut k = 0;
                let mut best = f32::NEG_INFINITY;
                for (i, c) in line.iter().enumerate() {
                    let a = c.norm();
                    if a > best {
                        best = a;
                        k = i;
                    }
                }
                *m = best;
                let offset = if k > 0 && k + 1 < line.len() {
                    parabola_vertex(
                        decibels(line[k - 1].norm()),
                        decibels(best),
                        decibels(line[k + 1].norm()),
                    )
                } else {
                    0.0
                };
                *depth = (z.coordinate(k) + offset * z.step_m()) as f32;
            });
        Self {
            magnitude,
            depth_m,
            z_near_m: z.start_m(),
            z_far_m: z.end_m(),
        }
    }
    /// m = max_z |I| per pixel (same units as the volume).
    pub fn magnitude(&self) -> &Array2<f32> {
        &self.magnitude
    }
    /// z* per pixel (m).
    pub fn depth_m(&self) -> &Array2<f32> {
        &self.depth_m
    }
    /// The pre-D image products: the level image and the depth map.
    pub fn products(&self) -> Result<ImageProducts> {
        let max = self.magnitude.iter().copied().fold(0.0f32, f32::max);
        if !(max > 0.0 && max.is_finite()) {
            return Err(BackprojectError::ZeroVolume { max_magnitude: max });
        }
        Ok(ImageProducts {
            level_db: LevelImage {
                db: self.magnitude.mapv(|m| decibels(m / max)),
            },
            depth_m: DepthMap {
                depth_m: self.depth_m.clone(),
                z_near_m: self.z_near_m,
                z_far_m: self.z_far_m,
            },
        })
    }
}

/// 20·log10(a) (dB); −∞ for 0.
fn decibels(amplitude: f32) -> f32 {
    20.0 * amplitude.log10()
}

/// The vertex offset (in samples, within ±½) of the parabola through (−1, a), (0, b), (1, c)
/// when b is a maximum; 0 where the samples do not define one (flat, or a non-finite value).
fn parabola_vertex(before: f32, peak: f32, after: f32) -> f64 {
    let (a, b, c) = (before as f64, peak as f64, after as f64);
    let curvature = a - 2.0 * b + c;
    if !(curvature < 0.0 && curvature.is_finite()) {
        return 0.0;
    }
    ((a - c) / (2.0 * curvature)).clamp(-0.5, 0.5)
}

/// The dB level image L = 20·log10(m / max m) ≤ 0 dB (0 dB at the brightest pixel; −∞ where
/// m = 0).
#[derive(Debug, Clone, PartialEq)]
pub struct LevelImage {
    db: Array2<f32>,
}

impl LevelImage {
    /// Wraps stored levels (dB), e.g. read back from a dataset. Every value must be ≤ 0 dB or
    /// −∞ (no NaN).
    pub fn new(db: Array2<f32>) -> Result<Self> {
        if let Some(((row, col), l)) = db.indexed_iter().find(|(_, l)| l.is_nan() || **l > 0.0) {
            return Err(BackprojectError::config(
                "level image",
                format!("pixel ({row}, {col}) is {l} dB: levels must be ≤ 0 dB"),
            ));
        }
        Ok(Self { db })
    }
    /// L (dB), `[row, col]`.
    pub fn db(&self) -> &Array2<f32> {
        &self.db
    }
    /// `(rows, columns)`.
    pub fn shape(&self) -> (usize, usize) {
        self.db.dim()
    }
    /// The amplitude image for a dynamic range.
    pub fn amplitude(&self, range: DynamicRange) -> AmplitudeImage {
        AmplitudeImage {
            values: self.db.mapv(|l| range.amplitude(l)),
            range,
        }
    }

    /// The fraction of pixels above `floor_db` (0 for an empty image).
    pub fn fraction_above(&self, floor_db: f32) -> f64 {
        let n = self.db.len().max(1) as f64;
        self.db.iter().filter(|l| **l > floor_db).count() as f64 / n
    }

    /// The Pearson correlation of two level images over the pixels where either is above
    /// `floor_db` (e.g. −20 dB), each level clamped below at `floor_db` − 20 dB so that −∞ and
    /// the noise floor count as dark, not as outliers; `None` when fewer than two pixels qualify
    /// or either image is constant there. How alike two renderings of one face are
    /// (docs/physics.md §3.4). Errors: different shapes.
    pub fn correlation(&self, other: &LevelImage, floor_db: f32) -> Result<Option<f64>> {
        if self.shape() != other.shape() {
            return Err(BackprojectError::Shape {
                what: "level images to correlate",
                expected: format!("{:?}", self.shape()),
                actual: format!("{:?}", other.shape()),
            });
        }
        let low = floor_db - 20.0;
        let pairs: Vec<(f64, f64)> = (self.db.iter().zip(other.db.iter()))
            .filter(|(x, y)| **x > floor_db || **y > floor_db)
            .map(|(x, y)| (f64::from(x.max(low)), f64::from(y.max(low))))
            .collect();
        let n = pairs.len() as f64;
        let mean_x = pairs.iter().map(|p| p.0).sum::<f64>() / n;
        let mean_y = pairs.iter().map(|p| p.1).sum::<f64>() / n;
        let (mut xy, mut xx, mut yy) = (0.0, 0.0, 0.0);
        for (x, y) in &pairs {
            xy += (x - mean_x) * (y - mean_y);
            xx += (x - mean_x).powi(2);
            yy += (y - mean_y).powi(2);
        }
        Ok((pairs.len() >= 2 && xx > 0.0 && yy > 0.0).then(|| xy / (xx * yy).sqrt()))
    }
}

/// The refined depth z* (m) of every pixel, before any dynamic range is applied, with the z
/// range that normalises it: z_near (the grid's first z) and z_far (the grid's exclusive end,
/// one step past its last z, so that every depth on the grid normalises above 0).
#[derive(Debug, Clone, PartialEq)]
pub struct DepthMap {
    depth_m: Array2<f32>,
    z_near_m: f64,
    z_far_m: f64,
}

impl DepthMap {
    /// Wraps stored depths (m), e.g. read back from a dataset; `z_near_m < z_far_m`, finite.
    pub fn new(depth_m: Array2<f32>, z_near_m: f64, z_far_m: f64) -> Result<Self> {
        if !(z_near_m.is_finite() && z_far_m.is_finite() && z_near_m < z_far_m) {
            return Err(BackprojectError::config(
                "depth map",
                format!("z range [{z_near_m}, {z_far_m}) m: it needs finite z_near < z_far"),
            ));
        }
        Ok(Self {
            depth_m,
            z_near_m,
            z_far_m,
        })
    }
    /// z* (m), `[row, col]`.
    pub fn depth_m(&self) -> &Array2<f32> {
        &self.depth_m
    }
    /// z_near (m): normalises to 1.
    pub fn z_near_m(&self) -> f64 {
        self.z_near_m
    }
    /// z_far (m): normalises to 0.
    pub fn z_far_m(&self) -> f64 {
        self.z_far_m
    }
    /// `(rows, columns)`.
    pub fn shape(&self) -> (usize, usize) {
        self.depth_m.dim()
    }
}

/// A dynamic range D (dB), finite and positive: levels below −D dB are dark (amplitude 0)
/// and have no valid depth.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f32", into = "f32")]
pub struct DynamicRange(f32);

impl TryFrom<f32> for DynamicRange {
    type Error = BackprojectError;
    fn try_from(db: f32) -> Result<Self> {
        Self::new(db)
    }
}
impl From<DynamicRange> for f32 {
    fn from(d: DynamicRange) -> f32 {
        d.0
    }
}

impl DynamicRange {
    /// D = `db` dB; finite and positive.
    pub fn new(db: f32) -> Result<Self> {
        if !(db.is_finite() && db > 0.0) {
            return Err(BackprojectError::config(
                "dynamic range",
                format!("{db} dB: it must be finite and positive"),
            ));
        }
        Ok(Self(db))
    }
    /// D (dB).
    pub fn db(&self) -> f32 {
        self.0
    }
    /// The amplitude A = clip((L + D)/D, 0, 1) of a level L (dB).
    pub fn amplitude(&self, level_db: f32) -> f32 {
        ((level_db + self.0) / self.0).clamp(0.0, 1.0)
    }
    /// Whether a pixel of level L (dB) has a valid depth: L ≥ −D.
    pub fn is_valid(&self, level_db: f32) -> bool {
        level_db >= -self.0
    }
    /// The normalised depth (z_far − z*)/(z_far − z_near) of a valid pixel (nearer is
    /// brighter, in (0, 1] for z* on the grid), 0 for an invalid one.
    pub fn depth(&self, level_db: f32, depth_m: f32, z_near_m: f64, z_far_m: f64) -> f32 {
        if self.is_valid(level_db) {
            ((z_far_m - depth_m as f64) / (z_far_m - z_near_m)) as f32
        } else {
            0.0
        }
    }
}

/// The amplitude image A = clip((L + D)/D, 0, 1) for a dynamic range D.
#[derive(Debug, Clone, PartialEq)]
pub struct AmplitudeImage {
    values: Array2<f32>,
    range: DynamicRange,
}

impl AmplitudeImage {
    /// The amplitude image of a level image.
    pub fn from_level(level: &LevelImage, range: DynamicRange) -> Self {
        level.amplitude(range)
    }
    /// A ∈ [0, 1], `[row, col]`.
    pub fn values(&self) -> &Array2<f32> {
        &self.values
    }
    /// The dynamic range it was made with.
    pub fn dynamic_range(&self) -> DynamicRange {
        self.range
    }
}

/// The depth image for a dynamic range D: valid pixels (L ≥ −D) hold
/// (z_far − z*)/(z_far − z_near) ∈ (0, 1] (nearer is brighter), invalid ones 0.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthImage {
    values: Array2<f32>,
    valid: Array2<bool>,
    range: DynamicRange,
}

impl DepthImage {
    /// The depth image of a depth map, masked by a level image of the same shape.
    pub fn new(depth: &DepthMap, level: &LevelImage, range: DynamicRange) -> Result<Self> {
        if depth.shape() != level.shape() {
            return Err(BackprojectError::Shape {
                what: "depth map and level image",
                expected: format!("{:?} (the level image)", level.shape()),
                actual: format!("{:?}", depth.shape()),
            });
        }
        Ok(Self::build(depth, level, range))
    }
    /// [`DepthImage::new`] for inputs known to agree in shape.
    fn build(depth: &DepthMap, level: &LevelImage, range: DynamicRange) -> Self {
        Self {
            values: Zip::from(&level.db)
                .and(&depth.depth_m)
                .map_collect(|&l, &z| range.depth(l, z, depth.z_near_m, depth.z_far_m)),
            valid: level.db.mapv(|l| range.is_valid(l)),
            range,
        }
    }
    /// The normalised depth, `[row, col]`; 0 where invalid.
    pub fn values(&self) -> &Array2<f32> {
        &self.values
    }
    /// The validity mask L ≥ −D, `[row, col]`.
    pub fn valid(&self) -> &Array2<bool> {
        &self.valid
    }
    /// The dynamic range it was made with.
    pub fn dynamic_range(&self) -> DynamicRange {
        self.range
    }
}

/// The image products that do not depend on the dynamic range: the level L (dB) and the
/// depth z* (m), of the same shape. This is what a dataset stores per sample.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageProducts {
    level_db: LevelImage,
    depth_m: DepthMap,
}

impl ImageProducts {
    /// Pairs a level image and a depth map of the same shape.
    pub fn new(level_db: LevelImage, depth_m: DepthMap) -> Result<Self> {
        if depth_m.shape() != level_db.shape() {
            return Err(BackprojectError::Shape {
                what: "depth map and level image",
                expected: format!("{:?} (the level image)", level_db.shape()),
                actual: format!("{:?}", depth_m.shape()),
            });
        }
        Ok(Self { level_db, depth_m })
    }
    /// The products of a volume (a [`MaxProjection`] on the way). Fails on a volume that is
    /// zero everywhere.
    pub fn from_volume(volume: &Volume) -> Result<Self> {
        MaxProjection::from_volume(volume).products()
    }
    /// L (dB).
    pub fn level_db(&self) -> &LevelImage {
        &self.level_db
    }
    /// z* (m).
    pub fn depth_m(&self) -> &DepthMap {
        &self.depth_m
    }
    /// The median |z*₁ − z*₂| (m) over the pixels where both images are above `floor_db`;
    /// `None` where no pixel is. How far two renderings' depths lie apart where both see the
    /// surface (docs/physics.md §3.4). Errors: different shapes.
    pub fn median_depth_difference(
        &self,
        other: &ImageProducts,
        floor_db: f32,
    ) -> Result<Option<f64>> {
        if self.level_db.shape() != other.level_db.shape() {
            return Err(BackprojectError::Shape {
                what: "image products to compare",
                expected: format!("{:?}", self.level_db.shape()),
                actual: format!("{:?}", other.level_db.shape()),
            });
        }
        let levels = self.level_db.db.iter().zip(other.level_db.db.iter());
        let depths = self
            .depth_m
            .depth_m
            .iter()
            .zip(other.depth_m.depth_m.iter());
        let mut d: Vec<f64> = (levels.zip(depths))
            .filter(|((x, y), _)| **x > floor_db && **y > floor_db)
            .map(|(_, (p, q))| f64::from((p - q).abs()))
            .collect();
        d.sort_by(f64::total_cmp);
        Ok(d.get(d.len() / 2).copied())
    }
    /// Unwraps the level image and the depth map.
    pub fn into_parts(self) -> (LevelImage, DepthMap) {
        (self.level_db, self.depth_m)
    }
    /// The amplitude image for a dynamic range.
    pub fn amplitude(&self, range: DynamicRange) -> AmplitudeImage {
        self.level_db.amplitude(range)
    }
    /// The depth image for a dynamic range.
    pub fn depth_image(&self, range: DynamicRange) -> DepthImage {
        DepthImage::build(&self.depth_m, &self.level_db, range)
    }
}
