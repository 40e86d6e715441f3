//! Pictures for people: colour-mapped images, enlarged, and contact sheets.

use std::io::Cursor;
use std::path::Path;

use backproject::ColourMap;
use image::{ImageFormat, Rgb, RgbImage};
use morphable::Mesh;
use morphable::raster::{OrthoView, rasterize};
use nalgebra::Vector3;

/// A colour-mapped picture of a row-major `height × width` image with values in [0, 1],
/// enlarged `scale` times (nearest neighbour). Pixels for which `dark` holds are black.
pub fn colour_picture(
    values: &[f32],
    (height, width): (usize, usize),
    map: ColourMap,
    dark: impl Fn(usize) -> bool,
    scale: u32,
) -> RgbImage {
    let scale = scale.max(1);
    RgbImage::from_fn(width as u32 * scale, height as u32 * scale, |x, y| {
        let i = (y / scale) as usize * width + (x / scale) as usize;
        if dark(i) {
            Rgb([0, 0, 0])
        } else {
            let [r, g, b] = map.rgb(values[i]);
            Rgb([r, g, b].map(|c| (c.clamp(0.0, 1.0) * 255.0).round() as u8))
        }
    })
}

/// Tiles of equal size in rows of `columns`, with 4-pixel white gutters.
pub fn contact_sheet(tiles: &[RgbImage], columns: usize) -> RgbImage {
    const GUTTER: u32 = 4;
    let Some(first) = tiles.first() else {
        return RgbImage::new(1, 1);
    };
    let (w, h) = first.dimensions();
    let columns = columns.clamp(1, tiles.len()) as u32;
    let rows = (tiles.len() as u32).div_ceil(columns);
    let mut sheet = RgbImage::from_pixel(
        columns * (w + GUTTER) + GUTTER,
        rows * (h + GUTTER) + GUTTER,
        Rgb([255, 255, 255]),
    );
    for (k, tile) in tiles.iter().enumerate() {
        let (col, row) = (k as u32 % columns, k as u32 / columns);
        let (x0, y0) = (GUTTER + col * (w + GUTTER), GUTTER + row * (h + GUTTER));
        for (x, y, p) in tile.enumerate_pixels() {
            if x < w && y < h {
                sheet.put_pixel(x0 + x, y0 + y, *p);
            }
        }
    }
    sheet
}

/// Two pictures side by side with a 2-pixel gutter.
pub fn side_by_side(left: &RgbImage, right: &RgbImage) -> RgbImage {
    let (wl, hl) = left.dimensions();
    let (wr, hr) = right.dimensions();
    let mut out = RgbImage::from_pixel(wl + 2 + wr, hl.max(hr), Rgb([255, 255, 255]));
    for (x, y, p) in left.enumerate_pixels() {
        out.put_pixel(x, y, *p);
    }
    for (x, y, p) in right.enumerate_pixels() {
        out.put_pixel(wl + 2 + x, y, *p);
    }
    out
}

/// A heatmap of a matrix (`values[i][j]` is row i, column j) with values in `range` (lo, hi)
/// mapped linearly onto `map` (values outside are clamped), each cell `cell` pixels square.
pub fn heatmap(values: &[Vec<f64>], (lo, hi): (f64, f64), map: ColourMap, cell: u32) -> RgbImage {
    let height = values.len();
    let width = values.first().map_or(0, Vec::len);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let unit: Vec<f32> = values
        .iter()
        .flat_map(|row| (0..width).map(|j| row.get(j).copied().unwrap_or(lo)))
        .map(|v| ((v - lo) / span).clamp(0.0, 1.0) as f32)
        .collect();
    colour_picture(&unit, (height, width), map, |_| false, cell)
}

/// A picture of `mesh` seen through `view`, lit from above-left of the viewer (Lambert shading
/// of interpolated vertex normals), each pixel the interpolated colour of its triangle's
/// corners (`colours`, one per vertex; `None`: light grey). The background is black.
pub fn shaded_mesh(
    mesh: &Mesh,
    colours: Option<&[[u8; 3]]>,
    view: &OrthoView,
) -> Result<RgbImage, morphable::MorphableError> {
    let fragments = rasterize(mesh, view)?;
    let normals = mesh.vertex_normals();
    let light = Vector3::new(-0.3, 0.4, 1.0).normalize();
    let corner_colour = |v: usize| colours.map_or([210.0; 3], |c| c[v].map(f64::from));
    Ok(RgbImage::from_fn(
        view.width as u32,
        view.height as u32,
        |x, y| {
            let Some(f) = fragments[y as usize * view.width + x as usize] else {
                return Rgb([0, 0, 0]);
            };
            let corners = mesh.triangles[f.triangle as usize].map(|v| v as usize);
            let mut normal = Vector3::zeros();
            let mut colour = [0.0; 3];
            for (k, &v) in corners.iter().enumerate() {
                normal += normals[v] * f.barycentric[k];
                for (c, corner) in colour.iter_mut().zip(corner_colour(v)) {
                    *c += corner * f.barycentric[k];
                }
            }
            let lambert = normal
                .try_normalize(0.0)
                .map_or(0.0, |n| n.dot(&light).max(0.0));
            let shade = 0.3 + 0.7 * lambert;
            Rgb(colour.map(|c| (c * shade).round().clamp(0.0, 255.0) as u8))
        },
    ))
}

/// Writes `picture` to `path` as a PNG, atomically (the file appears whole or not at all).
pub fn save_png(picture: &RgbImage, path: &Path) -> crate::CliResult {
    let mut bytes = Cursor::new(Vec::new());
    picture
        .write_to(&mut bytes, ImageFormat::Png)
        .map_err(|e| format!("cannot encode {}: {e}", path.display()))?;
    morphable::export::atomic_write(path, bytes.get_ref())?;
    Ok(())
}
