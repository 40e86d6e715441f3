//! Export: PNG images (8-bit amplitude, 16-bit depth, or 8-bit RGB through a colour map) and
//! NumPy `.npy` files (through `radar_sim::npy`): volumes as complex64, images as float32, both
//! C order with the shapes documented on each method.

use std::path::Path;

use image::{ImageBuffer, Luma, Rgb};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use radar_sim::npy::write_npy;

use crate::{
    AmplitudeImage, BackprojectError, DepthImage, DepthMap, LevelImage, MaxProjection, Result,
    Volume,
};

/// How image values in [0, 1] become pixels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColourMap {
    /// Grey levels: 8-bit for amplitude images, 16-bit for depth images.
    #[default]
    Gray,
    /// matplotlib's viridis (perceptually uniform), piecewise linear through its samples at
    /// 0, 0.1, …, 1. 8-bit RGB.
    Viridis,
    /// Google's Turbo (a perceptual rainbow), by its published degree-5 polynomial
    /// approximation. 8-bit RGB.
    Turbo,
}

/// matplotlib's viridis at 0, 0.1, …, 1.
const VIRIDIS: [[f32; 3]; 11] = [
    [0.267004, 0.004874, 0.329415],
    [0.282623, 0.140926, 0.457517],
    [0.253935, 0.265254, 0.529983],
    [0.206756, 0.371758, 0.553117],
    [0.163625, 0.471133, 0.558148],
    [0.127568, 0.566949, 0.550556],
    [0.134692, 0.658636, 0.517649],
    [0.266941, 0.748751, 0.440573],
    [0.477504, 0.821444, 0.318195],
    [0.741388, 0.873449, 0.149561],
    [0.993248, 0.906157, 0.143936],
];

/// Turbo's polynomial coefficients (constant term first) for red, green and blue.
const TURBO: [[f32; 6]; 3] = [
    [
        0.135_721_38,
        4.615_392_6,
        -42.660_324,
        132.131_08,
        -152.942_4,
        59.286_38,
    ],
    [
        0.091_402_61,
        2.194_188_4,
        4.842_966_6,
        -14.185_033,
        4.277_298_6,
        2.829_566,
    ],
    [
        0.106_673_3,
        12.641_946,
        -60.582_05,
        110.362_77,
        -89.903_11,
        27.348_25,
    ],
];

impl ColourMap {
    /// The colour of a value (clamped to [0, 1]) as RGB in [0, 1].
    pub fn rgb(&self, value: f32) -> [f32; 3] {
        let x = if value.is_nan() {
            0.0
        } else {
            value.clamp(0.0, 1.0)
        };
        match self {
            Self::Gray => [x; 3],
            Self::Viridis => {
                let position = x * (VIRIDIS.len() - 1) as f32;
                let i = (position.floor() as usize).min(VIRIDIS.len() - 2);
                let f = position - i as f32;
                std::array::from_fn(|c| VIRIDIS[i][c] + f * (VIRIDIS[i + 1][c] - VIRIDIS[i][c]))
            }
            Self::Turbo => std::array::from_fn(|c| {
                TURBO[c]
                    .iter()
                    .rev()
                    .fold(0.0, |acc, k| acc * x + k)
                    .clamp(0.0, 1.0)
            }),
        }
    }
}

/// Maps [0, 1] to 0..=`max` with rounding.
fn quantise(value: f32, max: f32) -> f32 {
    (value.clamp(0.0, 1.0) * max).round()
}

fn file_error(path: &Path, reason: impl ToString) -> BackprojectError {
    BackprojectError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Writes a grey or colour-mapped PNG of `values` (`[row, col]`), with `dark` pixels black.
/// Grey images have `gray_bits` (8 or 16) bits.
fn save_png(
    path: &Path,
    values: &Array2<f32>,
    dark: impl Fn(usize, usize) -> bool,
    colour: ColourMap,
    gray_bits: u32,
) -> Result<()> {
    let (rows, cols) = values.dim();
    let (width, height) = (
        u32::try_from(cols).map_err(|_| file_error(path, format!("{cols} columns")))?,
        u32::try_from(rows).map_err(|_| file_error(path, format!("{rows} rows")))?,
    );
    let pixel = |x: u32, y: u32| {
        let (row, col) = (y as usize, x as usize);
        (dark(row, col), values[[row, col]])
    };
    let saved = match (colour, gray_bits) {
        (ColourMap::Gray, 16) => ImageBuffer::from_fn(width, height, |x, y| {
            let (dark, v) = pixel(x, y);
            // A valid pixel never reads 0, which marks the invalid ones.
            Luma([if dark {
                0
            } else {
                quantise(v, 65535.0).max(1.0) as u16
            }])
        })
        .save(path),
        (ColourMap::Gray, _) => ImageBuffer::from_fn(width, height, |x, y| {
            let (dark, v) = pixel(x, y);
            Luma([if dark { 0 } else { quantise(v, 255.0) as u8 }])
        })
        .save(path),
        (map, _) => ImageBuffer::from_fn(width, height, |x, y| {
            let (dark, v) = pixel(x, y);
            Rgb(if dark {
                [0; 3]
            } else {
                map.rgb(v).map(|c| quantise(c, 255.0) as u8)
            })
        })
        .save(path),
    };
    saved.map_err(|e| file_error(path, e))
}

impl AmplitudeImage {
    /// Writes the image as a PNG (`path` should end in `.png`): 8-bit grey for
    /// [`ColourMap::Gray`] (A = 1 is 255), 8-bit RGB otherwise. Rows and columns as in the
    /// image: row 0 at the top.
    pub fn save_png(&self, path: impl AsRef<Path>, colour: ColourMap) -> Result<()> {
        save_png(path.as_ref(), self.values(), |_, _| false, colour, 8)
    }
}

impl DepthImage {
    /// Writes the image as a PNG (`path` should end in `.png`): 16-bit grey for
    /// [`ColourMap::Gray`] (1 is 65535, invalid pixels 0, valid ones at least 1), 8-bit RGB
    /// otherwise with invalid pixels black.
    pub fn save_png(&self, path: impl AsRef<Path>, colour: ColourMap) -> Result<()> {
        let valid = self.valid();
        save_png(
            path.as_ref(),
            self.values(),
            |row, col| !valid[[row, col]],
            colour,
            16,
        )
    }
}

impl Volume {
    /// Writes the complex volume as `.npy`: complex64, shape `(nx, ny, nz)`, indexed
    /// `[ix, iy, iz]`.
    pub fn save_npy(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(write_npy(path, self.data())?)
    }
}

impl MaxProjection {
    /// Writes m = max_z |I| as `.npy`: float32, shape `(ny, nx)`, image orientation.
    pub fn save_npy(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(write_npy(path, self.magnitude())?)
    }
}

impl LevelImage {
    /// Writes L (dB) as `.npy`: float32, shape `(ny, nx)`, image orientation (−inf where the
    /// volume is zero).
    pub fn save_npy(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(write_npy(path, self.db())?)
    }
}

impl DepthMap {
    /// Writes z* (m) as `.npy`: float32, shape `(ny, nx)`, image orientation.
    pub fn save_npy(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(write_npy(path, self.depth_m())?)
    }
}

impl AmplitudeImage {
    /// Writes A ∈ [0, 1] as `.npy`: float32, shape `(ny, nx)`, image orientation.
    pub fn save_npy(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(write_npy(path, self.values())?)
    }
}

impl DepthImage {
    /// Writes the normalised depth (0 where invalid) as `.npy`: float32, shape `(ny, nx)`,
    /// image orientation.
    pub fn save_npy(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(write_npy(path, self.values())?)
    }
}
