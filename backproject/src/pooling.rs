//! Coarser images from finer ones: block maximum pooling of the image products.
//!
//! A voxel grid must sample the point-spread function (≈ 3.5 mm laterally at 25 cm for the
//! QAR50) or the image aliases into speckle; a network may want fewer, larger pixels. Pooling
//! keeps both right: back-project on a fine grid, then give each f × f block of pixels the level
//! and depth of its brightest pixel — the brightest scatterer of the block, as the maximum
//! projection gives the brightest scatterer of each z-line.

use ndarray::Array2;

use crate::{BackprojectError, DepthMap, ImageProducts, LevelImage, Result};

impl ImageProducts {
    /// The products pooled over `factor × factor` blocks: each block takes the level (dB) and
    /// depth (m) of its brightest pixel (the first in row-major order on ties). Both image
    /// sides must be multiples of `factor`; `factor = 1` returns a copy.
    pub fn max_pooled(&self, factor: usize) -> Result<ImageProducts> {
        let (rows, cols) = self.level_db().shape();
        if factor == 0 || !rows.is_multiple_of(factor) || !cols.is_multiple_of(factor) {
            return Err(BackprojectError::config(
                "pooling",
                format!("a {rows} × {cols} image does not split into {factor} × {factor} blocks"),
            ));
        }
        let level = self.level_db().db();
        let depth = self.depth_m().depth_m();
        let (out_rows, out_cols) = (rows / factor, cols / factor);
        let mut pooled_level = Array2::from_elem((out_rows, out_cols), f32::NEG_INFINITY);
        let mut pooled_depth = Array2::zeros((out_rows, out_cols));
        for r in 0..out_rows {
            for c in 0..out_cols {
                let mut best = (f32::NEG_INFINITY, depth[[r * factor, c * factor]]);
                for i in r * factor..(r + 1) * factor {
                    for j in c * factor..(c + 1) * factor {
                        if level[[i, j]] > best.0 {
                            best = (level[[i, j]], depth[[i, j]]);
                        }
                    }
                }
                pooled_level[[r, c]] = best.0;
                pooled_depth[[r, c]] = best.1;
            }
        }
        ImageProducts::new(
            LevelImage::new(pooled_level)?,
            DepthMap::new(
                pooled_depth,
                self.depth_m().z_near_m(),
                self.depth_m().z_far_m(),
            )?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn products(level: Array2<f32>, depth: Array2<f32>) -> ImageProducts {
        ImageProducts::new(
            LevelImage::new(level).unwrap(),
            DepthMap::new(depth, 0.2, 0.36).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn blocks_keep_their_brightest_pixel() {
        // 4 × 4 levels with a known maximum in each 2 × 2 block.
        let level = Array2::from_shape_fn((4, 4), |(i, j)| -((i * 4 + j) as f32));
        let depth = Array2::from_shape_fn((4, 4), |(i, j)| 0.2 + 0.01 * (i * 4 + j) as f32);
        let pooled = products(level, depth).max_pooled(2).unwrap();
        // Block (r, c)'s brightest pixel is its top-left one: index (2r)·4 + 2c.
        for r in 0..2 {
            for c in 0..2 {
                let k = (2 * r * 4 + 2 * c) as f32;
                assert_eq!(pooled.level_db().db()[[r, c]], -k);
                assert!((pooled.depth_m().depth_m()[[r, c]] - (0.2 + 0.01 * k)).abs() < 1e-6);
            }
        }
        assert_eq!(pooled.depth_m().z_far_m(), 0.36);
    }

    #[test]
    fn factor_one_is_the_identity_and_misfits_are_errors() {
        let p = products(Array2::zeros((3, 6)), Array2::from_elem((3, 6), 0.25));
        assert_eq!(p.max_pooled(1).unwrap(), p);
        let err = p.max_pooled(2).unwrap_err().to_string();
        assert!(
            err.contains("3 × 6 image does not split into 2 × 2"),
            "{err}"
        );
        assert!(p.max_pooled(0).is_err());
    }
}
