//! `radar-face simulate`: one face, or point targets, through the whole imaging chain.

use std::path::{Path, PathBuf};

use abs_fit::{FaceParams, PhysicsRenderer, Preset, RenderParams, Rendering};
use backproject::{ColourMap, DynamicRange};
use clap::Args as ClapArgs;
use morphable::export::write_ply;
use morphable::{Mesh, MorphableModel, PcaModel, Pose};
use nalgebra::{Point3, Vector3};
use radar_sim::{ElementPattern, Material, PointScatterer, Scene, SimulationConfig};

use crate::pictures::{colour_picture, save_png, side_by_side};
use crate::{CliResult, Physics, create_dir, load_model};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Imaging settings of this preset (array, sweep, grid, hits): tiny, quick, cpu or paper.
    #[arg(long, default_value = "cpu")]
    preset: Preset,
    /// A statismo / BFM 2019 model file instead of the built-in model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Output directory.
    #[arg(long, short, default_value = "out/simulate")]
    out: PathBuf,
    /// The sampling (numerical) seed: hit positions of the sampled evaluations, and the noise.
    /// The converged model's image does not depend on it beyond the noise.
    #[arg(long, alias = "seed", default_value_t = 0)]
    sampling_seed: u64,
    /// The surface seed: the realisation of the diffuse random field (the physical speckle).
    #[arg(long, default_value_t = 0)]
    surface_seed: u64,
    /// The forward model: converged (physical optics on facets plus an explicit diffuse field,
    /// the default) or sampled (the paper-like random hits).
    #[arg(long, default_value = "converged")]
    physics: Physics,
    /// Shape coefficients (standard deviations), comma-separated; missing ones are 0.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    shape: Vec<f64>,
    /// Expression coefficients (standard deviations), comma-separated.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    expression: Vec<f64>,
    /// Yaw (degrees, about y).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    yaw: f64,
    /// Pitch (degrees, about x).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pitch: f64,
    /// Roll (degrees, about z).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    roll: f64,
    /// Translation x,y,z (cm) from the default placement (nearest point 25 cm away).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true, default_values_t = [0.0, 0.0, 0.0])]
    translation_cm: Vec<f64>,
    /// Material factor m ∈ [0, 1] (0 Lambertian, 1 specular).
    #[arg(long, default_value_t = 0.5)]
    material: f64,
    /// Antenna size (cm); larger gives narrower element beams.
    #[arg(long, default_value_t = 0.25)]
    antenna_cm: f64,
    /// Dynamic range (dB) of the amplitude and depth pictures.
    #[arg(long, default_value_t = 20.0)]
    range_db: f32,
    /// Image point targets at x,y,z (m) instead of a face; repeat for several. The face's
    /// options (model, coefficients, pose) do not apply and are refused beside it.
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        action = clap::ArgAction::Append,
        conflicts_with_all = ["model", "shape", "expression", "yaw", "pitch", "roll", "translation_cm"]
    )]
    point: Vec<f64>,
}

pub fn run(args: Args) -> CliResult {
    if args.translation_cm.len() != 3 {
        return Err(format!(
            "--translation-cm takes x,y,z: got {} values",
            args.translation_cm.len()
        )
        .into());
    }
    if !args.point.len().is_multiple_of(3) {
        return Err(format!(
            "--point takes x,y,z (m) per target: got {} values",
            args.point.len()
        )
        .into());
    }
    let mut config = args.preset.dataset()?;
    config.imaging.simulation.surface = args.physics.model();
    // Every range is checked, and the face placed, before anything is written.
    let face = if args.point.is_empty() {
        let face = face_of(&args);
        face.validate()?;
        let model = load_model(args.model.as_deref())?;
        let renderer = PhysicsRenderer::new(model, config.layout, config.imaging.clone())?;
        let placed = renderer.placed_mesh(&face)?;
        Some((renderer, face, placed))
    } else {
        config.imaging.check_in_view(&positions(&args))?;
        // The material, antenna size and dynamic range have the ranges they have for a face.
        render_params(&args).validate()?;
        None
    };
    let out = create_dir(&args.out)?;
    let rendering = match face {
        Some((renderer, face, placed)) => simulate_face(
            &renderer,
            &face,
            &placed,
            (args.sampling_seed, args.surface_seed),
            &out,
        )?,
        None => simulate_points(&args, &config)?,
    };
    write_outputs(&rendering, args.range_db, &out)?;
    let stats = &rendering.report.stats;
    if stats.hits_sampled > 0 {
        println!(
            "{} hits used ({} hidden, spacing {:.2} mm)",
            stats.hits_used,
            stats.hits_hidden,
            stats.hit_spacing_m * 1e3
        );
    }
    if stats.facets_used + stats.diffuse_used > 0 {
        println!(
            "{} facets ({} hidden), {} diffuse cells ({} hidden)",
            stats.facets_used, stats.facets_hidden, stats.diffuse_used, stats.diffuse_hidden
        );
    }
    println!(
        "{} point targets; signal {} × {} × {}",
        stats.points_used,
        rendering.report.cube.n_tx(),
        rendering.report.cube.n_rx(),
        rendering.report.cube.n_freq()
    );
    println!("wrote {}", out.display());
    Ok(())
}

/// Writes the face's meshes (model space and `placed` in radar space) and parameters to `out`
/// and renders it.
fn simulate_face(
    renderer: &PhysicsRenderer<PcaModel>,
    face: &FaceParams,
    placed: &Mesh,
    (sampling_seed, surface_seed): (u64, u64),
    out: &Path,
) -> CliResult<Rendering> {
    let model = renderer.model();
    println!(
        "{}: {} vertices, {} + {} components",
        model.name(),
        model.n_vertices(),
        model.n_shape(),
        model.n_expression()
    );
    write_ply(&out.join("mesh.ply"), &renderer.model_mesh(face)?, None)?;
    write_ply(&out.join("mesh_radar.ply"), placed, None)?;
    let params = serde_json::to_string_pretty(face)?;
    morphable::export::atomic_write(&out.join("params.json"), params.as_bytes())?;
    Ok(renderer.render_face_seeded(face, sampling_seed, surface_seed)?)
}

/// The point targets of the command line.
fn positions(args: &Args) -> Vec<Point3<f64>> {
    args.point
        .chunks(3)
        .map(|p| Point3::new(p[0], p[1], p[2]))
        .collect()
}

/// The face of the command line.
fn face_of(args: &Args) -> FaceParams {
    let t = &args.translation_cm;
    FaceParams {
        shape: args.shape.clone(),
        expression: args.expression.clone(),
        pose: Pose {
            yaw: args.yaw.to_radians(),
            pitch: args.pitch.to_radians(),
            roll: args.roll.to_radians(),
            translation: Vector3::new(t[0], t[1], t[2]) / 100.0,
        },
        render: render_params(args),
    }
}

/// The material, antenna size and dynamic range of the command line.
fn render_params(args: &Args) -> RenderParams {
    RenderParams {
        material: args.material,
        antenna_cm: args.antenna_cm,
        dynamic_range_db: f64::from(args.range_db),
    }
}

fn simulate_points(args: &Args, config: &abs_fit::dataset::DatasetConfig) -> CliResult<Rendering> {
    let imaging = &config.imaging;
    let points = positions(args)
        .into_iter()
        .map(|p| PointScatterer::new(p, 1e-4))
        .collect::<Result<Vec<_>, _>>()?;
    let simulation = SimulationConfig {
        material: Material::with_exponent(args.material, imaging.simulation.material.exponent)?,
        pattern: ElementPattern::sinc(args.antenna_cm)?,
        seed: args.sampling_seed,
        surface_seed: args.surface_seed,
        ..imaging.simulation
    };
    Ok(imaging.image_scene(
        imaging.array.build()?.as_ref(),
        &Scene::from_points(points),
        simulation,
    )?)
}

fn write_outputs(rendering: &Rendering, range_db: f32, out: &Path) -> CliResult {
    let range = DynamicRange::new(range_db)?;
    let products = &rendering.products;
    let amplitude = products.amplitude(range);
    let depth = products.depth_image(range);
    amplitude.save_png(out.join("amplitude.png"), ColourMap::Gray)?;
    depth.save_png(out.join("depth.png"), ColourMap::Gray)?;
    products.level_db().save_npy(out.join("level_db.npy"))?;
    products.depth_m().save_npy(out.join("depth_m.npy"))?;
    rendering.volume.save_npy(out.join("volume.npy"))?;
    radar_sim::npy::write_npy(out.join("signal.npy"), rendering.report.cube.data())?;
    // A colour picture for people: amplitude (viridis) beside depth (turbo), enlarged.
    let shape = products.level_db().shape();
    let scale = (384 / shape.1.max(1)).max(1) as u32;
    let amp = amplitude.values().iter().copied().collect::<Vec<_>>();
    let dep = depth.values().iter().copied().collect::<Vec<_>>();
    let valid = depth.valid().iter().copied().collect::<Vec<_>>();
    let picture = side_by_side(
        &colour_picture(&amp, shape, ColourMap::Viridis, |_| false, scale),
        &colour_picture(&dep, shape, ColourMap::Turbo, |i| !valid[i], scale),
    );
    save_png(&picture, &out.join("images.png"))?;
    Ok(())
}
