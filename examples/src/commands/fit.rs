//! `radar-face fit`: analysis-by-synthesis. Starting from an encoder's prediction, fit the
//! shape, expression and pose of validation faces so that a differentiable renderer's images
//! match theirs (the rendering columns stay fixed), and show how far each face moved from the
//! truth.

use std::ops::Range;
use std::path::{Path, PathBuf};

use abs_fit::dataset::{Dataset, InputKind};
use abs_fit::evaluate::Validation;
use abs_fit::fit::{FitSettings, FitTarget, FittedFaces, fit_faces};
use abs_fit::{
    DifferentiablePhysicsRenderer, LearnedRenderer, ParamGroup, ParamLayout, PriorCentre,
    TrainedEncoder,
};
use backproject::ColourMap;
use candle_core::Device;
use clap::Args as ClapArgs;
use morphable::export::{scalar_colours, write_ply};
use morphable::metrics::per_vertex_distance;
use morphable::raster::{DepthOrder, OrthoView};
use morphable::{Mesh, MorphableModel, PcaModel};

use crate::pictures::{colour_picture, contact_sheet, save_png, shaded_mesh, side_by_side};
use crate::progress::Bar;
use crate::{CliResult, create_dir, load_model};

/// The renderer to fit through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RendererChoice {
    /// A learned renderer (decoder) directory written by `train --stage decoder`.
    Learned(PathBuf),
    /// The differentiable depth rasteriser of the face model (depth images).
    DepthRaster,
    /// The differentiable physics renderer (amplitude-depth images; exact and slow).
    Physics,
}

/// `learned:DIR`, `depth-raster` or `physics`.
fn parse_renderer(s: &str) -> Result<RendererChoice, String> {
    match s.split_once(':') {
        Some(("learned", dir)) if !dir.is_empty() => Ok(RendererChoice::Learned(dir.into())),
        None if s == "depth-raster" => Ok(RendererChoice::DepthRaster),
        None if s == "physics" => Ok(RendererChoice::Physics),
        _ => Err(format!(
            "'{s}': expected learned:DIR, depth-raster or physics"
        )),
    }
}

/// `A..B`: a half-open range of whole numbers.
fn parse_rows(s: &str) -> Result<Range<usize>, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("'{s}': expected A..B, e.g. 0..4"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|_| format!("'{s}': '{v}' is not a whole number"))
    };
    let (a, b) = (parse(a)?, parse(b)?);
    if a >= b {
        return Err(format!("'{s}': the range is empty"));
    }
    Ok(a..b)
}

/// The ridge of `--residual-prior`'s covariance, as a fraction of its mean variance.
pub const RESIDUAL_RIDGE: f64 = 0.1;

/// Command-line options.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Dataset directory; the faces come from its validation split.
    #[arg(long)]
    dataset: PathBuf,
    /// The trained encoder whose predictions (at D = 20 dB) the fit starts from.
    #[arg(long)]
    encoder: PathBuf,
    /// `learned:DIR` (a trained decoder; targets at its 15 dB), `depth-raster` (targets: depth
    /// images at 20 dB) or `physics` (the differentiable physics renderer, docs/physics.md
    /// §3.6; amplitude-depth images at 20 dB; about 0.7 s per face and step at `cpu` imaging).
    #[arg(long, value_parser = parse_renderer)]
    renderer: RendererChoice,
    /// With `--renderer physics`: render the expected image over K realisations of the diffuse
    /// field instead of one (K times the cost; docs/physics.md §3.4).
    #[arg(long, default_value_t = 1)]
    realisations: usize,
    /// With `--renderer physics`: draw the renderer's speckle anew at every step (from the
    /// parameters' values), so that the steps follow the loss's expectation over realisations
    /// (docs/physics.md §4.5). Pair it with --average-last: the chosen physics fit is
    /// `--redraw-speckle --keep-pose --steps 30 --average-last 10`.
    #[arg(long)]
    redraw_speckle: bool,
    /// With `--renderer physics`: render two independent realisations at every step and
    /// compare them with the target as (r₁ − t)·(r₂ − t), whose expectation is the squared
    /// difference between the expected image and the target (twice the cost;
    /// `FitConfig::paired_realisations`).
    #[arg(long)]
    paired_realisations: bool,
    /// End each face at the mean of its last N iterates instead of the last one (0: the last).
    #[arg(long, default_value_t = 0)]
    average_last: usize,
    /// Lower the learning rate toward 0 along a half cosine over the steps.
    #[arg(long)]
    cosine_decay: bool,
    /// Validation rows A..B (0 is the first validation sample).
    #[arg(long, value_parser = parse_rows, default_value = "0..4")]
    rows: Range<usize>,
    /// Most optimiser steps.
    #[arg(long, default_value_t = 200)]
    steps: usize,
    /// Adam's learning rate (scaled parameter units per step).
    #[arg(long, default_value_t = FitSettings::DEFAULT_LEARNING_RATE)]
    learning_rate: f64,
    /// λ of the Gaussian prior on the shape and expression coefficients (0: none).
    #[arg(long, default_value_t = FitSettings::DEFAULT_PRIOR)]
    prior: f64,
    /// Centre the prior on the encoder's estimate instead of the mean face.
    #[arg(long)]
    prior_at_start: bool,
    /// End each face at its step of lowest loss (image loss plus prior).
    #[arg(long)]
    keep_best: bool,
    /// Accept a face's step only when its loss (image loss plus prior) falls; a face whose
    /// loss rose goes back and halves its later steps.
    #[arg(long)]
    backtrack: bool,
    /// Keep the encoder's pose: fit the shape and expression coefficients only.
    #[arg(long)]
    keep_pose: bool,
    /// Extend the prior to the pose columns (with --prior-at-start: a pull toward the
    /// encoder's pose).
    #[arg(long)]
    pose_prior: bool,
    /// Compare images after K × K average pooling (averages the target's speckle; 1: none).
    #[arg(long, default_value_t = 1)]
    loss_pool: usize,
    /// Weigh the depth channel's squared differences by W against the amplitude channel's 1,
    /// and compare depth only where the target's is valid (default: every channel at 1).
    #[arg(long)]
    depth_weight: Option<f64>,
    /// Compare pixels with the Cauchy loss of scale C, c²·ln(1 + d²/c²), instead of d²: large
    /// differences (deep speckle fades) pull less (default: squared differences).
    #[arg(long)]
    cauchy_scale: Option<f64>,
    /// Shape the prior by the encoder's residuals: its precision is the inverse covariance of
    /// the encoder's errors on the coefficients (ridge 0.1 × the mean variance) over the last
    /// N validation faces, which must not overlap --rows. Use with --prior-at-start: the fit
    /// then moves the estimate along the directions in which the encoder errs.
    #[arg(long)]
    residual_prior: Option<usize>,
    /// A statismo / BFM 2019 model file instead of the built-in model (the dataset's model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Output directory: per face a PLY, a PNG of the images and a PNG of the meshes.
    #[arg(long, short)]
    out: PathBuf,
}

/// Fits the chosen validation faces, writes a PLY and two PNGs per face, and prints the point
/// distances (mm, model space, no pose) to the true faces before and after fitting.
pub fn run(args: Args) -> CliResult {
    if (args.realisations != 1 || args.redraw_speckle || args.paired_realisations)
        && !matches!(args.renderer, RendererChoice::Physics)
    {
        return Err(
            "--realisations, --redraw-speckle and --paired-realisations apply to \
                    --renderer physics only"
                .into(),
        );
    }
    let dataset = Dataset::open(&args.dataset)?;
    let model = load_model(args.model.as_deref())?;
    let validation = dataset.validation_rows();
    let rows = validation
        .get(args.rows.clone())
        .ok_or_else(|| {
            format!(
                "--rows {}..{}: dataset {} has {} validation samples",
                args.rows.start,
                args.rows.end,
                args.dataset.display(),
                validation.len()
            )
        })?
        .to_vec();
    let device = Device::Cpu;
    let encoder = TrainedEncoder::load(&args.encoder, &device)?;
    let prior_precision = match args.residual_prior {
        None => None,
        Some(n) => {
            let held_out = validation.len().saturating_sub(n);
            if n == 0 || held_out < args.rows.end {
                return Err(format!(
                    "--residual-prior {n}: the last {n} of {} validation faces must not overlap \
                     --rows {}..{}",
                    validation.len(),
                    args.rows.start,
                    args.rows.end
                )
                .into());
            }
            let faces = Validation::with_rows(&dataset, &model, validation[held_out..].to_vec())?;
            let groups = [ParamGroup::Shape, ParamGroup::Expression];
            Some(
                faces
                    .residual_precision(&encoder, &groups, RESIDUAL_RIDGE, 64)?
                    .into(),
            )
        }
    };
    let validation = Validation::with_rows(&dataset, &model, rows)?;
    let target = match &args.renderer {
        RendererChoice::Learned(dir) => FitTarget::learned(LearnedRenderer::load(dir, &device)?),
        RendererChoice::DepthRaster => FitTarget::depth_raster(&model, &dataset)?,
        RendererChoice::Physics => {
            let physics = DifferentiablePhysicsRenderer::for_dataset(
                &model,
                &dataset,
                InputKind::AmplitudeDepth,
            )?
            .with_realisations(args.realisations)?
            .with_redrawn_speckle(args.redraw_speckle);
            if args.paired_realisations {
                FitTarget::paired_physics(physics)?
            } else {
                FitTarget::physics(physics)
            }
        }
    };
    let settings = FitSettings {
        steps: args.steps,
        learning_rate: args.learning_rate,
        prior: args.prior,
        prior_centre: if args.prior_at_start {
            PriorCentre::Start
        } else {
            PriorCentre::Mean
        },
        keep_best: args.keep_best,
        backtrack: args.backtrack,
        fit_pose: !args.keep_pose,
        pose_prior: args.pose_prior,
        loss_pool: args.loss_pool,
        depth_weight: args.depth_weight,
        cauchy_scale: args.cauchy_scale,
        prior_precision,
        average_last: args.average_last,
        cosine_decay: args.cosine_decay,
    };
    // The faces alone: their point distances are printed per face below, not as a table row.
    let rows = validation.rows();
    let predicted = validation.predict(&encoder, rows.len())?;
    let faces = fit_faces(
        &target,
        &dataset,
        rows,
        &predicted,
        &settings,
        &mut Bar::new("steps"),
    )?;
    let (first, last) = faces.loss_change();
    println!(
        "fit through {} for {} steps: image loss {first:.5} → {last:.5}",
        target.renderer.name(),
        faces.steps,
    );
    write_faces(&faces, &dataset, &model, &args.out)
}

/// Writes, per fitted face, its fitted mesh coloured by per-vertex error against the true face
/// (PLY) and its target and rendered images (PNG) to `out`, and prints the point distances
/// (mm, model space, no pose) to the true faces before and after fitting.
pub fn write_faces(
    faces: &FittedFaces,
    dataset: &Dataset,
    model: &PcaModel,
    out: &Path,
) -> CliResult {
    create_dir(out)?;
    let layout = dataset.manifest().layout;
    let (h, w) = faces.image_size;
    let image_size = faces.image_len();
    let first = dataset.manifest().range.0;
    println!("sample   point distance before (mm)   after (mm)   files");
    let (mut sum_before, mut sum_after) = (0.0, 0.0);
    for (b, &row) in faces.rows.iter().enumerate() {
        let sample = first + row;
        let truth = face_mesh(model, &layout, &dataset.arrays().params.row(row).to_vec())?;
        let before_mesh = face_mesh(model, &layout, &faces.init.row(b).to_vec())?;
        let before = per_vertex_distance(&before_mesh, &truth)?;
        let after_mesh = face_mesh(model, &layout, &faces.fitted.row(b).to_vec())?;
        let after = per_vertex_distance(&after_mesh, &truth)?;
        let largest = before.iter().chain(&after).copied().fold(0.0, f64::max);
        let ply = out.join(format!("face_{sample:05}_fitted.ply"));
        let after_colours = scalar_colours(&after, Some((0.0, largest)));
        write_ply(&ply, &after_mesh, Some(&after_colours))?;
        let before_colours = scalar_colours(&before, Some((0.0, largest)));
        // The true face grey, then the start and the fit coloured by their error, one view.
        let view = OrthoView::framing(&truth, MESH_PICTURE_WIDTH, 0.05, DepthOrder::LargestZ)?;
        let meshes_png = out.join(format!("face_{sample:05}_meshes.png"));
        let meshes = [
            shaded_mesh(&truth, None, &view)?,
            shaded_mesh(&before_mesh, Some(&before_colours), &view)?,
            shaded_mesh(&after_mesh, Some(&after_colours), &view)?,
        ];
        save_png(&contact_sheet(&meshes, 3), &meshes_png)?;
        let png = out.join(format!("face_{sample:05}_images.png"));
        let span = b * image_size..(b + 1) * image_size;
        let picture = comparison(
            &faces.targets[span.clone()],
            &faces.rendered[span],
            faces.kind,
            (h, w),
        );
        save_png(&picture, &png)?;
        let (before_mm, after_mm) = (mean(&before), mean(&after));
        sum_before += before_mm;
        sum_after += after_mm;
        println!(
            "{sample:>6}   {before_mm:>26.3}   {after_mm:>10.3}   {}, {}, {}",
            ply.display(),
            png.display(),
            meshes_png.display()
        );
    }
    let n = faces.rows.len() as f64;
    println!(
        "mean     {:>26.3}   {:>10.3}",
        sum_before / n,
        sum_after / n
    );
    println!(
        "(meshes coloured by per-vertex error against the true face, blue 0 to red at the \
         largest error before or after; images: target left, rendering right; mesh pictures: \
         the true face, the start, the fit)"
    );
    Ok(())
}

/// The model-space mesh (mm, no pose) of the coefficients of a scaled parameter vector.
fn face_mesh(model: &PcaModel, layout: &ParamLayout, params: &[f32]) -> CliResult<Mesh> {
    let face = layout.from_vector(params)?;
    Ok(model.instance(&face.shape, &face.expression)?)
}

/// Columns of each face in the `face_*_meshes.png` pictures.
const MESH_PICTURE_WIDTH: usize = 200;

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// Target (left) and rendering (right), one row per channel: amplitude in viridis, depth in
/// turbo with invalid (zero) target pixels black.
fn comparison(
    target: &[f32],
    rendered: &[f32],
    kind: InputKind,
    (h, w): (usize, usize),
) -> image::RgbImage {
    let scale = (128 / w.max(1)).max(1) as u32;
    let maps: &[ColourMap] = match kind {
        InputKind::Amplitude => &[ColourMap::Viridis],
        InputKind::Depth => &[ColourMap::Turbo],
        InputKind::AmplitudeDepth => &[ColourMap::Viridis, ColourMap::Turbo],
    };
    let tiles: Vec<_> = maps
        .iter()
        .enumerate()
        .map(|(c, &map)| {
            let channel = c * h * w..(c + 1) * h * w;
            let (t, r) = (&target[channel.clone()], &rendered[channel]);
            let dark = |values: &[f32], i: usize| map == ColourMap::Turbo && values[i] <= 0.0;
            side_by_side(
                &colour_picture(t, (h, w), map, |i| dark(t, i), scale),
                &colour_picture(r, (h, w), map, |i| dark(r, i), scale),
            )
        })
        .collect();
    match tiles.as_slice() {
        [one] => one.clone(),
        _ => contact_sheet(&tiles, 1),
    }
}
