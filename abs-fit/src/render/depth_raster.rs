//! A differentiable depth renderer: the posed face z-buffered orthographically along z onto the
//! image grid, with analytic gradients to the shape, expression and pose columns (the
//! "rendering layer" of Richardson et al., "Learning Detailed Face Reconstruction from a Single
//! Image", §4.1, for a radar's depth image).
//!
//! Forward: the face x(α, γ) = μ_s + μ_e + Σ α_k·S_k + Σ γ_k·E_k (mm, model space) is placed in
//! radar space by [`Placement`] (docs/physics.md §2) and rasterised by
//! [`morphable::raster::rasterize`] with the nearest surface the smallest z (the array is at
//! z = 0, looking along +z). A pixel whose centre the face covers gets
//! (z_far − z)/(z_far − z_near) with z the depth of the covering triangle's plane at the pixel
//! centre; the others get 0, as an invalid radar depth pixel does (docs/physics.md §4). The pixel
//! grid is the dataset's: [`VoxelGrid::pixel_position`] of the imaging grid, max-pooled blocks
//! centred on the mean of their pixel centres. Depths are not clamped to [0, 1]: a face
//! outside the grid's z range gives values outside it, so gradients stay linear.
//!
//! Backward: visibility (which triangle covers which pixel) is held fixed, as usual for
//! rasterisers; within a triangle (a, b, c) the depth at the fixed centre (x, y) is
//! z = Σ w_k(x, y; a, b, c)·z_k, whose derivatives are
//! ∂z/∂z_k = w_k, ∂z/∂x_k = −w_k·∂z/∂x, ∂z/∂y_k = −w_k·∂z/∂y (∂z/∂x, ∂z/∂y the plane's slopes:
//! moving a corner sideways slides the plane under the fixed pixel). Vertex gradients are
//! chained through the pose (p'' = R·p' + t + (0, 0, z_0), R = R_y·R_x·R_z) and the linear model
//! to the scaled columns of [`ParamLayout`]. The rendering columns (material, antenna, D) do not
//! change a noise-free depth image: their gradient is zero.

use std::sync::Arc;

use backproject::VoxelGrid;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};
use morphable::raster::{DepthOrder, Fragment, OrthoView, rasterize};
use morphable::{LinearMorphableModel, Mesh, Placement};
use nalgebra::Vector3;
use rayon::prelude::*;

use super::Renderer;
use super::geometry::FaceGeometry;
use crate::{AbsFitError, ImagingConfig, ParamLayout, Result};

/// Largest disagreement (m) tolerated between a pooled pixel centre of the grid and the regular
/// raster view built from it: far below any pixel, far above rounding.
const CENTRE_TOLERANCE_M: f64 = 1e-9;

/// Renders noise-free, normalised depth images (B, 1, H, W) of a linear face model, with
/// gradients to the parameters (see the module documentation of `abs_fit::render`).
///
/// Rows are rendered independently; the images live on the CPU whatever device the parameters
/// come from (a copy to the CPU keeps the gradient path).
pub struct DepthRasterRenderer<M> {
    model: M,
    layout: ParamLayout,
    imaging: ImagingConfig,
    core: Arc<RasterCore>,
}

impl<M: LinearMorphableModel> DepthRasterRenderer<M> {
    /// A renderer of `model`'s faces described by `layout` on the (pooled) image grid of
    /// `imaging`, placed at `imaging.distance_m` as [`Placement::for_mean_mesh`] says.
    ///
    /// Fails if the layout or imaging config is invalid, or if the layout asks for more
    /// shape or expression components than the model has.
    pub fn new(model: M, layout: ParamLayout, imaging: &ImagingConfig) -> Result<Self> {
        layout.validate()?;
        imaging.validate()?;
        let core = RasterCore::new(&model, layout, imaging, "depth raster")?;
        Ok(Self {
            model,
            layout,
            imaging: imaging.clone(),
            core: Arc::new(core),
        })
    }

    /// The face model.
    pub fn model(&self) -> &M {
        &self.model
    }
    /// The parameter layout.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }
    /// The imaging settings whose (pooled) pixel grid the images use.
    pub fn imaging(&self) -> &ImagingConfig {
        &self.imaging
    }
    /// Where faces sit in front of the array.
    pub fn placement(&self) -> &Placement {
        &self.core.geometry.placement
    }

    /// The placed face (radar space, m) of one scaled parameter vector (P columns, f64).
    pub fn placed_mesh(&self, params: &[f64]) -> Result<Mesh> {
        let face = self.core.geometry.decode(params)?;
        Ok(self.core.geometry.placed(&face))
    }
}

impl<M: LinearMorphableModel> Renderer for DepthRasterRenderer<M> {
    fn name(&self) -> &str {
        "depth-raster"
    }

    fn render(&self, params: &Tensor) -> Result<Tensor> {
        let (_, p) = params.dims2().map_err(|_| AbsFitError::Shape {
            what: "depth raster parameters",
            expected: format!("(B, {}) parameter vectors", self.layout.len()),
            actual: format!("{:?}", params.dims()),
        })?;
        if p != self.layout.len() {
            return Err(AbsFitError::Shape {
                what: "depth raster parameters",
                expected: format!("{} columns ({:?})", self.layout.len(), self.layout),
                actual: format!("{p} columns"),
            });
        }
        let cpu = params.to_device(&Device::Cpu)?.contiguous()?;
        Ok(cpu.apply_op1_arc(Arc::new(Box::new(DepthRasterOp {
            core: Arc::clone(&self.core),
        })))?)
    }

    fn is_differentiable(&self) -> bool {
        true
    }

    fn image_shape(&self) -> (usize, usize, usize) {
        (1, self.core.height, self.core.width)
    }
}

/// The image pixel centres as a regular [`OrthoView`], and the map between image and view
/// indices (the view's column 0 is the smallest x; the image's may be the largest).
#[derive(Debug, Clone, Copy)]
struct PixelView {
    view: OrthoView,
    flip_rows: bool,
    flip_cols: bool,
}

impl PixelView {
    /// The view whose pixel centres are the pooled image pixel centres of `grid`: block
    /// (r, c) covers grid pixels [r·pool, (r+1)·pool) × [c·pool, (c+1)·pool) and is centred on
    /// the mean of their [`VoxelGrid::pixel_position`]s.
    fn new(grid: &VoxelGrid, pool: usize) -> Result<Self> {
        let (rows, cols) = grid.image_shape();
        let (height, width) = (rows / pool, cols / pool);
        let centre = |r: usize, c: usize| -> (f64, f64) {
            let mut sum = (0.0, 0.0);
            for i in r * pool..(r + 1) * pool {
                for j in c * pool..(c + 1) * pool {
                    let (x, y) = grid.pixel_position(i, j);
                    sum = (sum.0 + x, sum.1 + y);
                }
            }
            let n = (pool * pool) as f64;
            (sum.0 / n, sum.1 / n)
        };
        let xs: Vec<f64> = (0..width).map(|c| centre(0, c).0).collect();
        let ys: Vec<f64> = (0..height).map(|r| centre(r, 0).1).collect();
        let flip_cols = width > 1 && xs[0] > xs[width - 1];
        let flip_rows = height > 1 && ys[0] < ys[height - 1];
        let (dx, dy) = (
            pool as f64 * grid.x().step_m(),
            pool as f64 * grid.y().step_m(),
        );
        let x_min = xs.iter().copied().fold(f64::INFINITY, f64::min) - 0.5 * dx;
        let y_max = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max) + 0.5 * dy;
        let view = OrthoView {
            x_min,
            x_max: x_min + width as f64 * dx,
            y_min: y_max - height as f64 * dy,
            y_max,
            width,
            height,
            order: DepthOrder::SmallestZ,
        };
        let this = Self {
            view,
            flip_rows,
            flip_cols,
        };
        for r in 0..height {
            for c in 0..width {
                let (x, y) = centre(r, c);
                let (vr, vc) = this.view_index(r, c);
                let (vx, vy) = view.pixel_centre(vr, vc);
                if (vx - x).abs() > CENTRE_TOLERANCE_M || (vy - y).abs() > CENTRE_TOLERANCE_M {
                    return Err(AbsFitError::config(
                        "depth raster grid",
                        format!(
                            "pixel ({r}, {c}) is centred at ({x}, {y}) m, off the regular \
                             {width} × {height} raster of {dx} × {dy} m pixels ({vx}, {vy})"
                        ),
                    ));
                }
            }
        }
        Ok(this)
    }

    /// The view's (row, column) of image pixel (row, column); an involution.
    fn view_index(&self, r: usize, c: usize) -> (usize, usize) {
        let r = if self.flip_rows {
            self.view.height - 1 - r
        } else {
            r
        };
        let c = if self.flip_cols {
            self.view.width - 1 - c
        } else {
            c
        };
        (r, c)
    }
}

/// Everything the op needs, shared by the renderer and every op it applies (`'static`, so the
/// autograd graph may hold it), and by the feedback renderer.
#[derive(Debug)]
pub(crate) struct RasterCore {
    pub(crate) geometry: FaceGeometry,
    view: PixelView,
    pub(crate) height: usize,
    pub(crate) width: usize,
    /// (z_near, z_far) of the depth normalisation (m).
    pub(crate) z_range: (f64, f64),
}

impl RasterCore {
    /// The rows of `model` described by `layout`, rasterised on the (pooled) image grid of
    /// `imaging`; `what` names the renderer in errors.
    pub(crate) fn new<M: LinearMorphableModel>(
        model: &M,
        layout: ParamLayout,
        imaging: &ImagingConfig,
        what: &'static str,
    ) -> Result<Self> {
        let geometry = FaceGeometry::new(model, layout, imaging.distance_m, what)?;
        let (height, width) = imaging.image_shape();
        Ok(Self {
            geometry,
            view: PixelView::new(&imaging.grid, imaging.pool)?,
            height,
            width,
            z_range: imaging.depth_range_m(),
        })
    }

    /// The normalised depth (z_far − z)/(z_far − z_near) of a surface point at z (m).
    pub(crate) fn normalised_depth(&self, z: f64) -> f64 {
        let (z_near, z_far) = self.z_range;
        (z_far - z) / (z_far - z_near)
    }

    /// The (x, y) centre (m) of image pixel (row, column).
    #[cfg(test)]
    pub(crate) fn pixel_centre(&self, r: usize, c: usize) -> (f64, f64) {
        let (vr, vc) = self.view.view_index(r, c);
        self.view.view.pixel_centre(vr, vc)
    }

    /// The fragments of a placed face, indexed by image pixel (row-major, H × W).
    pub(crate) fn fragments(&self, placed: &Mesh) -> Result<Vec<Option<Fragment>>> {
        let view_frags = rasterize(placed, &self.view.view)?;
        let mut frags = vec![None; self.height * self.width];
        for r in 0..self.height {
            for c in 0..self.width {
                let (vr, vc) = self.view.view_index(r, c);
                frags[r * self.width + c] = view_frags[vr * self.width + vc];
            }
        }
        Ok(frags)
    }

    /// The normalised depth image of one row, (H × W) row-major.
    fn render_row(&self, row: &[f64]) -> Result<Vec<f64>> {
        let geometry = &self.geometry;
        let placed = geometry.placed(&geometry.decode(row)?);
        Ok(self
            .fragments(&placed)?
            .iter()
            .map(|f| f.map_or(0.0, |f| self.normalised_depth(f.depth)))
            .collect())
    }

    /// d⟨g, image⟩/d(row): the gradient of one row's image paired with `grad_image`, with
    /// respect to the row's scaled columns (P).
    fn row_gradient(&self, row: &[f64], grad_image: &[f64]) -> Result<Vec<f64>> {
        let face = self.geometry.decode(row)?;
        let placed = self.geometry.placed(&face);
        let frags = self.fragments(&placed)?;
        let (z_near, z_far) = self.z_range;
        let d_depth_dz = -1.0 / (z_far - z_near);
        // Vertex gradients G_v = Σ_pixels g·∂image/∂p''_v (radar space, per metre).
        let mut vertex_grad = vec![Vector3::<f64>::zeros(); placed.n_vertices()];
        let mut touched = vec![false; placed.n_vertices()];
        for (f, &g) in frags.iter().zip(grad_image) {
            let Some(f) = f else { continue };
            if g == 0.0 {
                continue;
            }
            let tri = placed.triangles[f.triangle as usize];
            let [a, b, c] = tri.map(|i| placed.vertices[i as usize]);
            let n = (b - a).cross(&(c - a));
            // Rasterised triangles have a non-zero projected area, so n.z ≠ 0.
            let (slope_x, slope_y) = (-n.x / n.z, -n.y / n.z);
            let scale = g * d_depth_dz;
            for (k, &v) in tri.iter().enumerate() {
                let w = f.barycentric[k];
                vertex_grad[v as usize] += Vector3::new(-w * slope_x, -w * slope_y, w) * scale;
                touched[v as usize] = true;
            }
        }
        Ok(self
            .geometry
            .columns_gradient(&face, &placed, &vertex_grad, &touched))
    }
}

/// The candle op: (B, P) scaled parameters → (B, 1, H, W) normalised depth, with the analytic
/// backward described in the module documentation. F32 and F64 parameters are accepted (the
/// image has their dtype); everything inside is computed in f64.
struct DepthRasterOp {
    core: Arc<RasterCore>,
}

impl DepthRasterOp {
    fn rows(&self, values: &[f64]) -> candle_core::Result<usize> {
        let p = self.core.geometry.layout.len();
        if !values.len().is_multiple_of(p) {
            candle_core::bail!(
                "depth-raster: {} parameter values are not rows of {p} columns",
                values.len()
            );
        }
        Ok(values.len() / p)
    }
}

/// The contiguous values of a CPU tensor storage as f64.
pub(super) fn storage_f64(storage: &CpuStorage, layout: &Layout) -> candle_core::Result<Vec<f64>> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("depth-raster: parameters must be contiguous");
    };
    Ok(match storage {
        CpuStorage::F32(v) => v[start..end].iter().map(|&x| x as f64).collect(),
        CpuStorage::F64(v) => v[start..end].to_vec(),
        other => candle_core::bail!(
            "depth-raster: parameters must be f32 or f64, got {:?}",
            other.dtype()
        ),
    })
}

/// Values computed in f64 as a CPU storage of `dtype` (f32, or f64 for anything else).
pub(super) fn storage_of(values: impl Iterator<Item = f64>, dtype: DType) -> CpuStorage {
    match dtype {
        DType::F32 => CpuStorage::F32(values.map(|v| v as f32).collect()),
        _ => CpuStorage::F64(values.collect()),
    }
}

/// Converts an abs-fit error into a candle error of op `op` (the op's signature requires one).
pub(super) fn to_candle(op: &str, e: AbsFitError) -> candle_core::Error {
    candle_core::Error::Msg(format!("{op}: {e}"))
}

impl CustomOp1 for DepthRasterOp {
    fn name(&self) -> &'static str {
        "depth-raster"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let values = storage_f64(storage, layout)?;
        let b = self.rows(&values)?;
        let core = &self.core;
        let images: Vec<Vec<f64>> = values
            .par_chunks(core.geometry.layout.len())
            .map(|row| core.render_row(row))
            .collect::<Result<_>>()
            .map_err(|e| to_candle("depth-raster", e))?;
        let flat = images.into_iter().flatten();
        let out = storage_of(flat, storage.dtype());
        Ok((out, Shape::from((b, 1, core.height, core.width))))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let core = &self.core;
        let values = arg.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let grads = grad_res
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        let b = self.rows(&values)?;
        let hw = core.height * core.width;
        if grads.len() != b * hw {
            candle_core::bail!(
                "depth-raster: image gradient has {} values, expected {b} × {hw}",
                grads.len()
            );
        }
        let rows: Vec<Vec<f64>> = values
            .par_chunks(core.geometry.layout.len())
            .zip(grads.par_chunks(hw))
            .map(|(row, g)| core.row_gradient(row, g))
            .collect::<Result<_>>()
            .map_err(|e| to_candle("depth-raster", e))?;
        let grad = Tensor::from_vec(
            rows.into_iter().flatten().collect::<Vec<f64>>(),
            arg.shape(),
            arg.device(),
        )?
        .to_dtype(arg.dtype())?;
        Ok(Some(grad))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The raster view's pixel centres are the grid's pooled pixel positions, in the image's
    /// orientation (row 0 the largest y, column 0 the largest x).
    #[test]
    fn view_centres_are_pooled_pixel_positions() {
        let grid = ImagingConfig::centred_grid(6, 4, 0.004, 0.2, 8, 0.02).unwrap();
        let view = PixelView::new(&grid, 2).unwrap();
        assert_eq!((view.view.height, view.view.width), (2, 3));
        for r in 0..2 {
            for c in 0..3 {
                let corners = [(0, 0), (0, 1), (1, 0), (1, 1)]
                    .map(|(i, j)| grid.pixel_position(2 * r + i, 2 * c + j));
                let x = corners.iter().map(|p| p.0).sum::<f64>() / 4.0;
                let y = corners.iter().map(|p| p.1).sum::<f64>() / 4.0;
                let (vr, vc) = view.view_index(r, c);
                let (vx, vy) = view.view.pixel_centre(vr, vc);
                assert!((vx - x).abs() < 1e-12 && (vy - y).abs() < 1e-12);
            }
        }
        // Column 0 shows the largest x, row 0 the largest y.
        let first = view
            .view
            .pixel_centre(view.view_index(0, 0).0, view.view_index(0, 0).1);
        let last = view
            .view
            .pixel_centre(view.view_index(1, 2).0, view.view_index(1, 2).1);
        assert!(first.0 > last.0 && first.1 > last.1);
    }
}
