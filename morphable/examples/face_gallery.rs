//! Writes a face model's mean face and ±3σ of its leading shape and expression components as
//! PLY meshes (coloured by displacement from the mean) and shaded PNG pictures, plus one contact
//! sheet: rows are components, columns −3σ, mean, +3σ.
//!
//! ```sh
//! cargo run --release -p morphable --example face_gallery -- out/faces [--model file.h5] [--components 3]
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use image::{GrayImage, ImageBuffer, Luma};
use morphable::export::{scalar_colours, write_ply};
use morphable::metrics::per_vertex_distance;
use morphable::raster::{DepthOrder, OrthoView, shaded_image};
use morphable::{Mesh, MorphableModel, PcaModel};

/// Columns of each picture.
const PICTURE_WIDTH: usize = 240;

struct Args {
    out: PathBuf,
    model: Option<PathBuf>,
    components: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut out = None;
    let mut model = None;
    let mut components = 3;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model" => model = Some(PathBuf::from(args.next().ok_or("--model needs a path")?)),
            "--components" => {
                let v = args.next().ok_or("--components needs a number")?;
                components = v
                    .parse()
                    .map_err(|_| format!("--components: '{v}' is not a whole number"))?;
            }
            "-h" | "--help" => {
                return Err(
                    "usage: face_gallery OUT_DIR [--model FILE.h5] [--components K]".into(),
                );
            }
            _ if out.is_none() => out = Some(PathBuf::from(arg)),
            _ => return Err(format!("unexpected argument '{arg}'")),
        }
    }
    Ok(Args {
        out: out.unwrap_or_else(|| PathBuf::from("out/faces")),
        model,
        components,
    })
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("face_gallery: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let model: PcaModel = match &args.model {
        Some(path) => morphable::statismo::load(path)?,
        None => morphable::builtin::builtin().model().clone(),
    };
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    println!(
        "{}: {} vertices, {} triangles, {} shape / {} expression components",
        model.name(),
        model.n_vertices(),
        model.triangles().len(),
        model.n_shape(),
        model.n_expression()
    );

    let mean = model.mean_mesh()?;
    // One view for every picture, framing the mean face, so pictures compare directly.
    let view = OrthoView::framing(&mean, PICTURE_WIDTH, 0.08, DepthOrder::LargestZ)?;
    let mut rows: Vec<[Vec<u8>; 3]> = Vec::new();
    let mean_picture = save_face(&args.out, "mean", &mean, &mean, &view)?;

    let kinds: [(&str, usize); 2] = [
        ("shape", model.n_shape()),
        ("expression", model.n_expression()),
    ];
    for (kind, available) in kinds {
        for k in 0..args.components.min(available) {
            let mut pictures = Vec::with_capacity(3);
            for sigma in [-3.0, 3.0] {
                let mut coeffs = vec![0.0; k + 1];
                coeffs[k] = sigma;
                let face = match kind {
                    "shape" => model.instance(&coeffs, &[])?,
                    _ => model.instance(&[], &coeffs)?,
                };
                let name = format!(
                    "{kind}{k}_{}3sd",
                    if sigma < 0.0 { "minus" } else { "plus" }
                );
                pictures.push(save_face(&args.out, &name, &face, &mean, &view)?);
            }
            let plus = pictures.pop().unwrap_or_default();
            let minus = pictures.pop().unwrap_or_default();
            rows.push([minus, mean_picture.clone(), plus]);
        }
    }

    let sheet = contact_sheet(&rows, view.width, view.height);
    let sheet_path = args.out.join("contact_sheet.png");
    sheet.save(&sheet_path)?;
    println!(
        "wrote {} faces (PLY + PNG) and {} (rows: components; columns: −3σ, mean, +3σ)",
        1 + 2 * rows.len(),
        sheet_path.display()
    );
    Ok(())
}

/// Writes `<name>.ply` (coloured by distance to the mean, 0–10 mm) and `<name>.png`; returns
/// the picture's pixels.
fn save_face(
    dir: &Path,
    name: &str,
    face: &Mesh,
    mean: &Mesh,
    view: &OrthoView,
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let distance = per_vertex_distance(face, mean)?;
    write_ply(
        &dir.join(format!("{name}.ply")),
        face,
        Some(&scalar_colours(&distance, Some((0.0, 10.0)))),
    )?;
    let pixels = shaded_image(face, view)?;
    gray(&pixels, view.width, view.height)?.save(dir.join(format!("{name}.png")))?;
    Ok(pixels)
}

fn gray(pixels: &[u8], width: usize, height: usize) -> Result<GrayImage, String> {
    GrayImage::from_raw(width as u32, height as u32, pixels.to_vec()).ok_or_else(|| {
        format!(
            "{} pixels do not make a {width} × {height} image",
            pixels.len()
        )
    })
}

/// Pictures in a grid with 4-pixel gutters.
fn contact_sheet(rows: &[[Vec<u8>; 3]], width: usize, height: usize) -> GrayImage {
    const GUTTER: usize = 4;
    let sheet_w = 3 * width + 4 * GUTTER;
    let sheet_h = rows.len().max(1) * (height + GUTTER) + GUTTER;
    let mut sheet: GrayImage = ImageBuffer::from_pixel(sheet_w as u32, sheet_h as u32, Luma([255]));
    for (r, row) in rows.iter().enumerate() {
        for (c, pixels) in row.iter().enumerate() {
            let (x0, y0) = (
                GUTTER + c * (width + GUTTER),
                GUTTER + r * (height + GUTTER),
            );
            for (i, &v) in pixels.iter().enumerate() {
                let (x, y) = (x0 + i % width, y0 + i / width);
                sheet.put_pixel(x as u32, y as u32, Luma([v]));
            }
        }
    }
    sheet
}
