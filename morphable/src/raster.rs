//! Orthographic z-buffer rasterisation of a mesh onto a pixel grid.
//!
//! Each pixel keeps the nearest surface point: its triangle, barycentric coordinates and depth.
//! That is enough to shade a picture of a face, and to differentiate a depth image with respect
//! to the vertices (the depth of a pixel is the barycentric blend of its triangle's corners).

use nalgebra::{Point3, Vector3};

use crate::{Mesh, MorphableError, Result};

/// Which way the viewer looks: the nearest point is the one with the largest z
/// ([`DepthOrder::LargestZ`], a viewer on +z looking at a model-space face) or the smallest z
/// ([`DepthOrder::SmallestZ`], the radar at z = 0 looking at a placed face).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepthOrder {
    /// Viewer at +z.
    LargestZ,
    /// Viewer at −z.
    SmallestZ,
}

/// A pixel grid over the x–y plane. Pixel (row, col) has its centre at
/// x = x_min + (col + ½)·Δx, y = y_max − (row + ½)·Δy: row 0 is the top (+y), as in an image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrthoView {
    /// Left edge x.
    pub x_min: f64,
    /// Right edge x.
    pub x_max: f64,
    /// Bottom edge y.
    pub y_min: f64,
    /// Top edge y.
    pub y_max: f64,
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Which surface is in front.
    pub order: DepthOrder,
}

/// The surface seen through one pixel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fragment {
    /// Triangle index.
    pub triangle: u32,
    /// Barycentric weights of the triangle's three corners (sum 1).
    pub barycentric: [f64; 3],
    /// z of the surface point.
    pub depth: f64,
}

impl OrthoView {
    /// A view framing a mesh's bounding box with a relative margin, keeping pixels square;
    /// `width` columns.
    pub fn framing(mesh: &Mesh, width: usize, margin: f64, order: DepthOrder) -> Result<Self> {
        let (lo, hi) = mesh
            .bounding_box()
            .ok_or_else(|| MorphableError::Mesh("nothing to frame: no vertices".into()))?;
        let (w, h) = (hi.x - lo.x, hi.y - lo.y);
        if !(w > 0.0 && h > 0.0) || width == 0 {
            return Err(MorphableError::Mesh(format!(
                "cannot frame a {w} × {h} mesh in {width} columns"
            )));
        }
        let pad = margin * w.max(h);
        let pixel = (w + 2.0 * pad) / width as f64;
        let height = ((h + 2.0 * pad) / pixel).ceil() as usize;
        let cy = 0.5 * (lo.y + hi.y);
        Ok(Self {
            x_min: lo.x - pad,
            x_max: hi.x + pad,
            y_min: cy - 0.5 * height as f64 * pixel,
            y_max: cy + 0.5 * height as f64 * pixel,
            width,
            height,
            order,
        })
    }

    fn validate(&self) -> Result<()> {
        let ok = self.width > 0
            && self.height > 0
            && [self.x_min, self.x_max, self.y_min, self.y_max]
                .iter()
                .all(|v| v.is_finite())
            && self.x_max > self.x_min
            && self.y_max > self.y_min;
        if ok {
            Ok(())
        } else {
            Err(MorphableError::Config {
                name: "view",
                reason: format!("{self:?}: need positive size and increasing ranges"),
            })
        }
    }

    /// Pixel size (Δx, Δy).
    pub fn pixel_size(&self) -> (f64, f64) {
        (
            (self.x_max - self.x_min) / self.width as f64,
            (self.y_max - self.y_min) / self.height as f64,
        )
    }

    /// Centre (x, y) of pixel (row, col).
    pub fn pixel_centre(&self, row: usize, col: usize) -> (f64, f64) {
        let (dx, dy) = self.pixel_size();
        (
            self.x_min + (col as f64 + 0.5) * dx,
            self.y_max - (row as f64 + 0.5) * dy,
        )
    }
}

/// Rasterises `mesh` through `view`: one optional [`Fragment`] per pixel, row-major.
/// A pixel whose centre lies on a shared edge goes to one of the triangles.
pub fn rasterize(mesh: &Mesh, view: &OrthoView) -> Result<Vec<Option<Fragment>>> {
    view.validate()?;
    let (dx, dy) = view.pixel_size();
    let mut frags: Vec<Option<Fragment>> = vec![None; view.width * view.height];
    let nearer = |a: f64, b: f64| match view.order {
        DepthOrder::LargestZ => a > b,
        DepthOrder::SmallestZ => a < b,
    };
    for (t, tri) in mesh.triangles.iter().enumerate() {
        let [a, b, c] = tri.map(|i| mesh.vertices[i as usize]);
        let area = (b.x - a.x) * (c.y - a.y) - (c.x - a.x) * (b.y - a.y);
        if area == 0.0 || !area.is_finite() {
            continue; // edge-on or degenerate: covers no pixel centre
        }
        // Column / row ranges of the pixel centres inside the triangle's bounding box.
        let (x0, x1) = (a.x.min(b.x).min(c.x), a.x.max(b.x).max(c.x));
        let (y0, y1) = (a.y.min(b.y).min(c.y), a.y.max(b.y).max(c.y));
        let col0 = ((x0 - view.x_min) / dx - 0.5).ceil().max(0.0) as usize;
        let col1 = ((x1 - view.x_min) / dx - 0.5).floor();
        let row0 = ((view.y_max - y1) / dy - 0.5).ceil().max(0.0) as usize;
        let row1 = ((view.y_max - y0) / dy - 0.5).floor();
        if col1 < 0.0 || row1 < 0.0 {
            continue;
        }
        let col1 = (col1 as usize).min(view.width - 1);
        let row1 = (row1 as usize).min(view.height - 1);
        for row in row0..=row1 {
            for col in col0..=col1 {
                let (px, py) = view.pixel_centre(row, col);
                let w0 = ((b.x - px) * (c.y - py) - (c.x - px) * (b.y - py)) / area;
                let w1 = ((c.x - px) * (a.y - py) - (a.x - px) * (c.y - py)) / area;
                let w2 = 1.0 - w0 - w1;
                if w0 < 0.0 || w1 < 0.0 || w2 < 0.0 {
                    continue;
                }
                let depth = w0 * a.z + w1 * b.z + w2 * c.z;
                let slot = &mut frags[row * view.width + col];
                if slot.is_none_or(|f| nearer(depth, f.depth)) {
                    *slot = Some(Fragment {
                        triangle: t as u32,
                        barycentric: [w0, w1, w2],
                        depth,
                    });
                }
            }
        }
    }
    Ok(frags)
}

/// An 8-bit grey picture of a mesh lit from the viewer's side (Lambert shading with
/// interpolated vertex normals, background black), for people to look at.
pub fn shaded_image(mesh: &Mesh, view: &OrthoView) -> Result<Vec<u8>> {
    let frags = rasterize(mesh, view)?;
    let normals = mesh.vertex_normals();
    let towards_viewer = match view.order {
        DepthOrder::LargestZ => 1.0,
        DepthOrder::SmallestZ => -1.0,
    };
    // Light from above-left of the viewer.
    let light = Vector3::new(-0.3, 0.4, towards_viewer).normalize();
    Ok(frags
        .iter()
        .map(|f| match f {
            None => 0,
            Some(f) => {
                let tri = mesh.triangles[f.triangle as usize];
                let n: Vector3<f64> = (0..3)
                    .map(|k| normals[tri[k] as usize] * f.barycentric[k])
                    .sum();
                let lambert = n.try_normalize(0.0).map_or(0.0, |n| n.dot(&light).max(0.0));
                (40.0 + 215.0 * lambert).round() as u8
            }
        })
        .collect())
}

/// The surface point of a fragment.
pub fn fragment_point(mesh: &Mesh, f: &Fragment) -> Point3<f64> {
    let [a, b, c] = mesh.corners(f.triangle as usize);
    Point3::from(
        a.coords * f.barycentric[0] + b.coords * f.barycentric[1] + c.coords * f.barycentric[2],
    )
}
