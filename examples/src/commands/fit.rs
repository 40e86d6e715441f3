//! `radar-face fit`: analysis-by-synthesis. Starting from an encoder's prediction, fit the
//! shape, expression and pose of validation faces so that a differentiable renderer's images
//! match theirs (the rendering columns stay fixed), and show how far each face moved from the
//! truth.

use std::ops::Range;
use std::path::{Path, PathBuf};

use abs_fit::dataset::{Dataset, InputKind};
use abs_fit::train::DECODER_RANGE_DB;
use abs_fit::{
    DepthRasterRenderer, FitConfig, LearnedRenderer, ParamLayout, Renderer, TrainedEncoder, fit,
};
use backproject::ColourMap;
use candle_core::{DType, Device, Tensor};
use clap::Args as ClapArgs;
use morphable::export::{scalar_colours, write_ply};
use morphable::metrics::per_vertex_distance;
use morphable::raster::{DepthOrder, OrthoView};
use morphable::{Mesh, MorphableModel, PcaModel};
use ndarray::Array2;

use crate::commands::evaluate::{
    check_model, dataset_config, evaluation_range_db, input_images, predict_rows,
};
use crate::pictures::{colour_picture, contact_sheet, shaded_mesh, side_by_side};
use crate::progress::Bar;
use crate::{CliResult, create_dir, load_model};

/// The renderer to fit through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RendererChoice {
    /// A learned renderer (decoder) directory written by `train --stage decoder`.
    Learned(PathBuf),
    /// The differentiable depth rasteriser of the face model (depth images).
    DepthRaster,
}

/// `learned:DIR` or `depth-raster`.
fn parse_renderer(s: &str) -> Result<RendererChoice, String> {
    match s.split_once(':') {
        Some(("learned", dir)) if !dir.is_empty() => Ok(RendererChoice::Learned(dir.into())),
        None if s == "depth-raster" => Ok(RendererChoice::DepthRaster),
        _ => Err(format!("'{s}': expected learned:DIR or depth-raster")),
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

/// Command-line options.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Dataset directory; the faces come from its validation split.
    #[arg(long)]
    dataset: PathBuf,
    /// The trained encoder whose predictions (at D = 20 dB) the fit starts from.
    #[arg(long)]
    encoder: PathBuf,
    /// `learned:DIR` (a trained decoder; targets at its 15 dB) or `depth-raster` (targets: depth
    /// images at 20 dB).
    #[arg(long, value_parser = parse_renderer)]
    renderer: RendererChoice,
    /// Validation rows A..B (0 is the first validation sample).
    #[arg(long, value_parser = parse_rows, default_value = "0..4")]
    rows: Range<usize>,
    /// Most optimiser steps.
    #[arg(long, default_value_t = 200)]
    steps: usize,
    /// Adam's learning rate (scaled parameter units per step).
    #[arg(long, default_value_t = FIT_LEARNING_RATE)]
    learning_rate: f64,
    /// λ of the Gaussian prior on the shape and expression coefficients (0: none).
    #[arg(long, default_value_t = FIT_PRIOR)]
    prior: f64,
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
    let dataset = Dataset::open(&args.dataset)?;
    let model = load_model(args.model.as_deref())?;
    check_model(&dataset, &model)?;
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
    let target = FitTarget::load(&args.renderer, &dataset, &model, &device)?;
    let predicted = predict_rows(
        &encoder,
        &dataset,
        &rows,
        evaluation_range_db()?,
        rows.len(),
    )?;
    let settings = FitSettings {
        steps: args.steps,
        learning_rate: args.learning_rate,
        prior: args.prior,
    };
    let faces = fit_faces(&target, &dataset, &rows, &predicted, &settings)?;
    println!(
        "fit through {} for {} steps: image loss {:.5} → {:.5}",
        target.renderer.name(),
        faces.steps,
        faces.losses.first().copied().unwrap_or(f32::NAN),
        faces.losses.last().copied().unwrap_or(f32::NAN)
    );
    write_faces(&faces, &dataset, &model, &args.out)
}

/// A differentiable renderer to fit through, with the images it is compared with.
pub struct FitTarget<'a> {
    /// The renderer.
    pub renderer: Box<dyn Renderer + 'a>,
    /// The kind of images it renders (and of the targets).
    pub kind: InputKind,
    /// The dynamic range (dB) of the targets and of the fitted parameters' D column.
    pub target_db: f32,
    /// Leave empty (0) target pixels out of the loss: set for the depth raster.
    pub ignore_empty_target: bool,
}

impl<'a> FitTarget<'a> {
    /// The renderer `choice` names: a learned renderer (targets at its own dynamic range,
    /// 15 dB) or the depth raster of `model` (depth targets at the evaluation range, 20 dB).
    pub fn load(
        choice: &RendererChoice,
        dataset: &Dataset,
        model: &'a PcaModel,
        device: &Device,
    ) -> CliResult<Self> {
        Ok(match choice {
            RendererChoice::Learned(dir) => Self::learned(LearnedRenderer::load(dir, device)?),
            RendererChoice::DepthRaster => {
                let imaging = dataset_config(dataset)?.imaging;
                let layout = dataset.manifest().layout;
                Self {
                    renderer: Box::new(DepthRasterRenderer::new(model, layout, &imaging)?),
                    kind: InputKind::Depth,
                    target_db: evaluation_range_db()?,
                    // A depth raster draws the whole face; radar depth targets are empty (0)
                    // where the radar saw nothing within the dynamic range: compare only where
                    // the radar saw.
                    ignore_empty_target: true,
                }
            }
        })
    }

    /// A trained learned renderer, its targets at the dynamic range it was trained for.
    pub fn learned(learned: LearnedRenderer) -> Self {
        let kind = learned.output();
        let target_db = learned.card().dynamic_range_db.unwrap_or(DECODER_RANGE_DB);
        Self {
            renderer: Box::new(learned),
            kind,
            target_db,
            ignore_empty_target: false,
        }
    }
}

/// The optimiser settings of a fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitSettings {
    /// Most optimiser steps.
    pub steps: usize,
    /// Adam's learning rate (scaled parameter units per step).
    pub learning_rate: f64,
    /// λ of the Gaussian prior on the shape and expression coefficients.
    pub prior: f64,
}

/// Validation faces fitted by [`fit_faces`].
#[derive(Debug, Clone)]
pub struct FittedFaces {
    /// Dataset rows of the faces.
    pub rows: Vec<usize>,
    /// The starting parameters (N × P scaled), D column at the target's range.
    pub init: Array2<f32>,
    /// The fitted parameters (N × P scaled), D column at the target's range.
    pub fitted: Array2<f32>,
    /// The target images, (N, C, H, W) row-major.
    pub targets: Vec<f32>,
    /// The renderer's images of the fitted parameters, (N, C, H, W) row-major.
    pub rendered: Vec<f32>,
    /// The kind of the images.
    pub kind: InputKind,
    /// (height, width) of the images in pixels.
    pub image_size: (usize, usize),
    /// The image loss before each step and after the last.
    pub losses: Vec<f32>,
    /// Optimiser steps taken.
    pub steps: usize,
}

/// Fits `rows` of `dataset` through `target`'s renderer, starting from `predicted` (N × P
/// scaled, one row per face) with the rendering columns fixed and the D column at the target's
/// range.
pub fn fit_faces(
    target: &FitTarget<'_>,
    dataset: &Dataset,
    rows: &[usize],
    predicted: &Array2<f32>,
    settings: &FitSettings,
) -> CliResult<FittedFaces> {
    let layout = dataset.manifest().layout;
    let device = Device::Cpu;
    // The rendering columns stay fixed: the renderer's dynamic range is that of its targets.
    let init = with_dynamic_range(predicted, &layout, target.target_db)?;
    let images = input_images(dataset, rows, target.kind, target.target_db)?;
    let p = layout.len();
    let init_tensor = Tensor::from_vec(init.iter().copied().collect(), (rows.len(), p), &device)?;
    let config = FitConfig {
        steps: settings.steps,
        learning_rate: settings.learning_rate,
        prior_weight: settings.prior,
        ignore_empty_target: target.ignore_empty_target,
        ..FitConfig::new(layout)
    };
    let renderer = target.renderer.as_ref();
    let result = fit(
        renderer,
        &images,
        &init_tensor,
        &config,
        &mut Bar::new("steps"),
    )?;
    let fitted = Array2::from_shape_vec((rows.len(), p), values(&result.params)?)?;
    let (_, h, w) = renderer.image_shape();
    Ok(FittedFaces {
        rows: rows.to_vec(),
        init,
        fitted,
        targets: values(&images)?,
        rendered: values(&renderer.render(&result.params)?)?,
        kind: target.kind,
        image_size: (h, w),
        losses: result.losses,
        steps: result.steps,
    })
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
    let image_size = faces.kind.channels() * h * w;
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
        contact_sheet(
            &[
                shaded_mesh(&truth, None, &view)?,
                shaded_mesh(&before_mesh, Some(&before_colours), &view)?,
                shaded_mesh(&after_mesh, Some(&after_colours), &view)?,
            ],
            3,
        )
        .save(&meshes_png)
        .map_err(|e| format!("cannot write {}: {e}", meshes_png.display()))?;
        let png = out.join(format!("face_{sample:05}_images.png"));
        let span = b * image_size..(b + 1) * image_size;
        comparison(
            &faces.targets[span.clone()],
            &faces.rendered[span],
            faces.kind,
            (h, w),
        )
        .save(&png)
        .map_err(|e| format!("cannot write {}: {e}", png.display()))?;
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

impl FittedFaces {
    /// The first `n` faces only.
    pub fn first(&self, n: usize) -> FittedFaces {
        let n = n.min(self.rows.len());
        let (h, w) = self.image_size;
        let image_size = self.kind.channels() * h * w;
        FittedFaces {
            rows: self.rows[..n].to_vec(),
            init: self.init.slice(ndarray::s![..n, ..]).to_owned(),
            fitted: self.fitted.slice(ndarray::s![..n, ..]).to_owned(),
            targets: self.targets[..n * image_size].to_vec(),
            rendered: self.rendered[..n * image_size].to_vec(),
            losses: self.losses.clone(),
            ..*self
        }
    }
}

/// Every value of a tensor, row-major, as f32.
fn values(t: &Tensor) -> CliResult<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

/// `params` (N × P) with each row's dynamic-range column set to `d_db`.
pub fn with_dynamic_range(
    params: &Array2<f32>,
    layout: &ParamLayout,
    d_db: f32,
) -> CliResult<Array2<f32>> {
    let mut out = params.clone();
    for mut row in out.rows_mut() {
        let mut face = layout.from_vector(&row.to_vec())?;
        face.render.dynamic_range_db = d_db as f64;
        row.assign(&ndarray::Array1::from(layout.to_vector(&face)));
    }
    Ok(out)
}

/// The model-space mesh (mm, no pose) of the coefficients of a scaled parameter vector.
fn face_mesh(model: &PcaModel, layout: &ParamLayout, params: &[f32]) -> CliResult<Mesh> {
    let face = layout.from_vector(params)?;
    Ok(model.instance(&face.shape, &face.expression)?)
}

/// Adam's learning rate of test-time fits by default (scaled parameter units per step), here and
/// in `reproduce`.
pub const FIT_LEARNING_RATE: f64 = 0.02;
/// λ of the Gaussian prior on the shape and expression coefficients of test-time fits by
/// default, here and in `reproduce`. Without it, 50 steps through the learned renderer of the
/// quick preset raised the depth autoencoder's point distance from 6.15 to 7.09 mm; with it, to
/// 6.40 mm (and at 0.1 or more the prior outweighs the image and returns the Mean face).
pub const FIT_PRIOR: f64 = 1e-3;

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
