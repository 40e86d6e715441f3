//! Convergence of the radar images against how the surface integral is evaluated
//! (docs/physics.md §3.4–§3.5): three faces at the `cpu` preset's imaging (64 × 64 level
//! images, unpooled), for material factors 0, 0.5 and 1.
//!
//! For each face and material it renders
//! - the converged model (facets) with two sampling seeds and one surface seed,
//! - the same model with its coherent part evaluated by random hits at a fine spacing (the dense
//!   reference, default 0.25 mm),
//! - the paper-like sampled model at the preset's 3 mm with two seeds,
//!
//! and prints the Pearson correlation of the dB level images over the pixels where either
//! image is above −20 dB, the median depth difference where both are, the fraction of face
//! pixels above −20 dB, and the simulation time.
//!
//! `cargo run --release -p radar-face --example convergence [-- REFERENCE_SPACING_MM]`

use std::time::Instant;

use abs_fit::{FaceParams, PhysicsRenderer, Preset, RenderParams};
use backproject::ImageProducts;
use morphable::Pose;
use radar_sim::{CoherentIntegral, ConvergedSurface, HitDensity, SimulationConfig, SurfaceModel};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let reference_mm: f64 = match std::env::args().nth(1) {
        Some(a) => a.parse()?,
        None => 0.25,
    };
    let model = morphable::builtin::builtin().model();
    let dataset = Preset::Cpu.dataset()?;
    let mut imaging = dataset.imaging.clone();
    imaging.pool = 1;
    let faces = faces();
    println!(
        "| face | m | facets: seed ↔ seed | facets ↔ {reference_mm} mm hits | depth Δ median (mm) | \
         sampled 3 mm: seed ↔ seed | valid face pixels (facets) | facets (s) | {reference_mm} mm (s) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    // `CONVERGENCE_TAPER_ONLY=1` prints only the taper table.
    let main_table = std::env::var_os("CONVERGENCE_TAPER_ONLY").is_none();
    for (name, face) in faces.iter().filter(|_| main_table) {
        for m in materials() {
            let face = with_material(face, m);
            let converged = ConvergedSurface::default();
            let render = |surface: SurfaceModel, hits: f64, seed: u64| -> Result<_, Error> {
                let mut imaging = imaging.clone();
                imaging.simulation = SimulationConfig {
                    surface,
                    hits: HitDensity::Spacing(hits),
                    ..imaging.simulation
                };
                let renderer = PhysicsRenderer::new(model.clone(), dataset.layout, imaging)?;
                let start = Instant::now();
                let rendering = renderer.render_face_seeded(&face, seed, 7)?;
                if std::env::var_os("CONVERGENCE_STATS").is_some() {
                    eprintln!("{:?}", rendering.report.stats);
                }
                Ok((rendering.products, start.elapsed().as_secs_f64()))
            };
            let facets = SurfaceModel::Converged(converged);
            let dense = SurfaceModel::Converged(ConvergedSurface {
                coherent: CoherentIntegral::Hits,
                ..converged
            });
            let (a, time_a) = render(facets, 0.003, 1)?;
            let (b, _) = render(facets, 0.003, 2)?;
            let (reference, time_ref) = render(dense, reference_mm * 1e-3, 3)?;
            let (old_a, _) = render(SurfaceModel::Sampled, 0.003, 1)?;
            let (old_b, _) = render(SurfaceModel::Sampled, 0.003, 2)?;
            println!(
                "| {name} | {m} | {:.4} | {:.4} | {:.2} | {:.3} | {:.2} | {time_a:.2} | {time_ref:.1} |",
                correlation(&a, &b),
                correlation(&a, &reference),
                a.median_depth_difference(&reference, -20.0)?
                    .unwrap_or(f64::NAN)
                    * 1e3,
                correlation(&old_a, &old_b),
                a.level_db().fraction_above(-20.0),
            );
        }
    }
    taper_table(model, &dataset, &imaging, &faces)?;
    Ok(())
}

/// The boundary taper (docs/physics.md §3.4), before and after: the fraction of pixels above
/// −20 dB that lie outside the face (where the noise-free depth raster has no face), for the
/// converged model without a taper and with the default 10 mm.
fn taper_table(
    model: &morphable::PcaModel,
    dataset: &abs_fit::dataset::DatasetConfig,
    imaging: &abs_fit::ImagingConfig,
    faces: &[(&'static str, FaceParams)],
) -> Result<(), Error> {
    use abs_fit::{DepthRasterRenderer, Renderer};
    let raster = DepthRasterRenderer::new(model.clone(), dataset.layout, imaging)?;
    println!();
    println!(
        "| face | m | valid pixels outside the face, no taper | with the 10 mm taper | valid pixels, no taper → taper |"
    );
    println!("|---|---|---|---|---|");
    for (name, face) in faces {
        let row = candle_core::Tensor::from_vec(
            dataset.layout.to_vector(face),
            (1, dataset.layout.len()),
            &candle_core::Device::Cpu,
        )?;
        let mask: Vec<bool> = (raster.render(&row)?.flatten_all()?.to_vec1::<f32>()?)
            .into_iter()
            .map(|d| d > 0.0)
            .collect();
        for m in materials() {
            let face = with_material(face, m);
            let outside = |taper_m: f64| -> Result<(f64, usize), Error> {
                let mut imaging = imaging.clone();
                imaging.simulation.surface = SurfaceModel::Converged(ConvergedSurface {
                    boundary_taper_m: taper_m,
                    ..ConvergedSurface::default()
                });
                let renderer = PhysicsRenderer::new(model.clone(), dataset.layout, imaging)?;
                let rendering = renderer.render_face_seeded(&face, 1, 7)?;
                if std::env::var_os("CONVERGENCE_STATS").is_some() {
                    eprintln!("taper {taper_m}: {:?}", rendering.report.stats);
                }
                let products = rendering.products;
                let valid: Vec<bool> = products
                    .level_db()
                    .db()
                    .iter()
                    .map(|x| *x > -20.0)
                    .collect();
                let n = valid.iter().filter(|v| **v).count();
                let out = valid.iter().zip(&mask).filter(|(v, m)| **v && !**m).count();
                Ok((out as f64 / n as f64, n))
            };
            let ((before, n_before), (after, n_after)) = (outside(0.0)?, outside(0.010)?);
            println!("| {name} | {m} | {before:.3} | {after:.3} | {n_before} → {n_after} |");
        }
    }
    Ok(())
}

/// The three faces: the mean face; shape (1.5, −1, 0.5) at yaw 4°, pitch −6°;
/// expression (2, −1) at roll 8°. Antenna 0.25 cm, 20 dB.
fn faces() -> Vec<(&'static str, FaceParams)> {
    let zeros = |n: usize| vec![0.0; n];
    let (n_s, n_e) = (10, 5);
    let render = RenderParams {
        material: 0.5,
        antenna_cm: 0.25,
        dynamic_range_db: 20.0,
    };
    let mut shape = zeros(n_s);
    shape[..3].copy_from_slice(&[1.5, -1.0, 0.5]);
    let mut expression = zeros(n_e);
    expression[..2].copy_from_slice(&[2.0, -1.0]);
    let deg = std::f64::consts::PI / 180.0;
    vec![
        (
            "mean",
            FaceParams {
                shape: zeros(n_s),
                expression: zeros(n_e),
                pose: Pose::identity(),
                render,
            },
        ),
        (
            "shape, yaw 4°, pitch −6°",
            FaceParams {
                shape,
                expression: zeros(n_e),
                pose: Pose {
                    yaw: 4.0 * deg,
                    pitch: -6.0 * deg,
                    ..Pose::identity()
                },
                render,
            },
        ),
        (
            "expression, roll 8°",
            FaceParams {
                shape: zeros(n_s),
                expression,
                pose: Pose {
                    roll: 8.0 * deg,
                    ..Pose::identity()
                },
                render,
            },
        ),
    ]
}

/// `face` with material factor `m`.
fn with_material(face: &FaceParams, m: f64) -> FaceParams {
    FaceParams {
        render: RenderParams {
            material: m,
            ..face.render
        },
        ..face.clone()
    }
}

/// Pearson correlation of two dB level images over the pixels where either is above −20 dB.
fn correlation(a: &ImageProducts, b: &ImageProducts) -> f64 {
    (a.level_db().correlation(b.level_db(), -20.0))
        .ok()
        .flatten()
        .unwrap_or(f64::NAN)
}

/// The material factors: 0, 0.5 and 1, or the list in `CONVERGENCE_MATERIALS` (commas).
fn materials() -> Vec<f64> {
    match std::env::var("CONVERGENCE_MATERIALS") {
        Ok(list) => list
            .split(',')
            .filter_map(|m| m.trim().parse().ok())
            .collect(),
        Err(_) => vec![0.0, 0.5, 1.0],
    }
}
