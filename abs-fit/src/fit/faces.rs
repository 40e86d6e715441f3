//! Fitting faces of a dataset: a differentiable renderer with the images it is compared with
//! ([`FitTarget`]), the optimiser settings users choose ([`FitSettings`]), and [`fit_faces`],
//! which fits dataset rows from an encoder's predictions and keeps everything a report needs
//! ([`FittedFaces`]).

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use morphable::LinearMorphableModel;
use ndarray::{Array2, s};

use super::{ChannelLoss, FitConfig, PriorCentre, fit};
use crate::dataset::{Dataset, EVALUATION_RANGE_DB, InputKind};
use crate::render::{
    DepthRasterRenderer, DifferentiablePhysicsRenderer, LearnedRenderer, PairedRenderer, Renderer,
};
use crate::{ParamGroup, ParamLayout, Progress, Result};

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
    /// The renderer's images are two realisations side by side, compared with the targets as
    /// (r₁ − t)·(r₂ − t) ([`FitConfig::paired_realisations`]): set by
    /// [`FitTarget::paired_physics`].
    pub paired_realisations: bool,
}

impl<'a> FitTarget<'a> {
    /// A trained learned renderer, its targets at the dynamic range it was trained for.
    pub fn learned(learned: LearnedRenderer) -> Self {
        let kind = learned.output();
        let target_db = learned.dynamic_range_db();
        Self {
            renderer: Box::new(learned),
            kind,
            target_db,
            ignore_empty_target: false,
            paired_realisations: false,
        }
    }

    /// The depth raster of `model` on `dataset`'s image grid, with depth targets at the
    /// evaluation range (20 dB). A depth raster draws the whole face, while radar depth images
    /// are empty (0) where the radar saw nothing within the dynamic range: only the pixels where
    /// the radar saw are compared.
    pub fn depth_raster<M: LinearMorphableModel + 'a>(model: M, dataset: &Dataset) -> Result<Self> {
        let imaging = dataset.config()?.imaging;
        let layout = dataset.manifest().layout;
        Ok(Self {
            renderer: Box::new(DepthRasterRenderer::new(model, layout, &imaging)?),
            kind: InputKind::Depth,
            target_db: EVALUATION_RANGE_DB,
            ignore_empty_target: true,
            paired_realisations: false,
        })
    }
}

impl<'a> FitTarget<'a> {
    /// The differentiable physics renderer `renderer`, compared with the dataset's images of
    /// its kind at the evaluation range (20 dB). Build it with
    /// [`DifferentiablePhysicsRenderer::for_dataset`]; its surface seed is not the dataset's, so
    /// the fit cannot match the target's speckle, only the face. With
    /// [`DifferentiablePhysicsRenderer::with_realisations`] it renders the expected image over
    /// several realisations of the diffuse field (at that many times the cost), and with
    /// [`DifferentiablePhysicsRenderer::with_redrawn_speckle`] a new realisation at every step.
    pub fn physics<M: LinearMorphableModel + 'a>(
        renderer: DifferentiablePhysicsRenderer<M>,
    ) -> Self {
        Self {
            kind: renderer.output(),
            renderer: Box::new(renderer),
            target_db: EVALUATION_RANGE_DB,
            ignore_empty_target: false,
            paired_realisations: false,
        }
    }

    /// Two realisations of the differentiable physics renderer, `renderer` and its
    /// [`DifferentiablePhysicsRenderer::other_realisation`], compared with the dataset's images
    /// of its kind as (r₁ − t)·(r₂ − t) at the evaluation range
    /// ([`FitConfig::paired_realisations`], [`PairedRenderer`]): the fit follows the expected
    /// image without seeking faces whose rendering varies less, at twice the cost.
    pub fn paired_physics<M: LinearMorphableModel + Clone + 'a>(
        renderer: DifferentiablePhysicsRenderer<M>,
    ) -> Result<Self> {
        let other = renderer.other_realisation();
        Ok(Self {
            kind: renderer.output(),
            renderer: Box::new(PairedRenderer::new(renderer, other)?),
            target_db: EVALUATION_RANGE_DB,
            ignore_empty_target: false,
            paired_realisations: true,
        })
    }
}

/// The optimiser settings of a fit of dataset faces (the rest of its [`FitConfig`] follows
/// from the dataset and the [`FitTarget`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FitSettings {
    /// Most optimiser steps.
    pub steps: usize,
    /// Adam's learning rate (scaled parameter units per step).
    pub learning_rate: f64,
    /// λ of the Gaussian prior on the shape and expression coefficients.
    pub prior: f64,
    /// Where the prior is centred: the mean face, or the encoder's estimate.
    pub prior_centre: PriorCentre,
    /// End each face at its step of lowest loss ([`FitConfig::keep_best`]).
    pub keep_best: bool,
    /// Accept a face's step only when its loss falls ([`FitConfig::backtrack`]).
    pub backtrack: bool,
    /// Whether the pose moves (translation and rotation); the coefficients always do.
    pub fit_pose: bool,
    /// Whether the prior covers the pose too ([`FitConfig::pose_prior`]).
    pub pose_prior: bool,
    /// k of the loss's k × k average pooling ([`FitConfig::loss_pool`]).
    pub loss_pool: usize,
    /// The weight of a depth channel against the amplitude channel's 1, compared only where
    /// the target's depth is valid ([`FitConfig::channels`]); None: every channel at weight 1,
    /// every pixel compared (or as the target says, for the depth raster).
    pub depth_weight: Option<f64>,
    /// The scale of a Cauchy loss on the pixel differences ([`FitConfig::cauchy_scale`]);
    /// None: squared differences.
    pub cauchy_scale: Option<f64>,
    /// The prior's precision ([`FitConfig::prior_precision`]); None: the identity.
    pub prior_precision: Option<Arc<[f64]>>,
    /// End at the mean of the last N iterates ([`FitConfig::average_last`]; 0: the last).
    pub average_last: usize,
    /// Lower the learning rate along a half cosine ([`FitConfig::cosine_decay`]).
    pub cosine_decay: bool,
}

impl FitSettings {
    /// Adam's learning rate of test-time fits by default (scaled parameter units per step).
    pub const DEFAULT_LEARNING_RATE: f64 = 0.02;
    /// λ of the Gaussian prior on the coefficients of test-time fits by default. Without it, 50
    /// steps through the learned renderer of the quick preset raised the depth autoencoder's
    /// point distance from 6.15 to 7.09 mm; with it, to 6.40 mm (and at 0.1 or more the prior
    /// outweighs the image and returns the Mean face).
    pub const DEFAULT_PRIOR: f64 = 1e-3;

    /// Fits through the differentiable physics renderer: the default learning rate and prior,
    /// the pose kept at the start's. On 16 validation faces of the `cpu` preset (25 steps from
    /// the amplitude-depth autoencoder, docs/results/fit-variants-physics-cpu.md) this and the
    /// default both lowered point distance by about 0.25–0.28 mm, but the default moved the
    /// translation away (+0.016 L2, interval above zero); a prior at the start, a 2 × 2 pooled
    /// loss and λ = 0.01 all lowered it less.
    pub fn physics(steps: usize) -> Self {
        Self {
            fit_pose: false,
            ..Self::new(steps)
        }
    }

    /// Fits through the differentiable physics renderer with its speckle drawn anew at every
    /// step ([`DifferentiablePhysicsRenderer::with_redrawn_speckle`]): [`FitSettings::physics`]
    /// ending at the mean of the last third of the iterates, which scatter about the minimum
    /// of the expected loss. On validation faces 0–199 of the `cpu` preset (30 steps from the
    /// amplitude-depth autoencoder, docs/results/fit-variants-physics-cpu.md) it lowered point
    /// distance by 5.4 % and improved 136 of 200 faces; on faces 0–149,
    /// [`FitSettings::physics`] with a fixed realisation gave 4.8 % and 95 of 150 against its
    /// 5.7 % and 105. At small imaging, fits from the truth ended 1.03 mm away against 1.45 mm.
    pub fn redrawn_physics(steps: usize) -> Self {
        Self {
            average_last: steps / 3,
            ..Self::physics(steps)
        }
    }

    /// Fits held near the encoder's estimate, for the learned renderers and the depth raster:
    /// the default learning rate, a prior ten times the default (λ = 0.01) centred on the
    /// start, and the pose kept at the start's. Chosen on the `cpu` preset among 24 settings
    /// (50 steps, validation faces 0–449) and checked on faces 450–899
    /// (docs/results/fit-variants-learned-raster-cpu6k.md). It lowered point distance through
    /// the amplitude-depth and depth decoders and the depth raster alike, every change
    /// resolved, where the plain defaults raised it by 0.3–0.8 mm. A weaker prior
    /// (λ = 0.001) gained more through the amplitude-depth decoder but made the depth
    /// decoder's faces worse and did not help the raster's; freeing the pose made it worse
    /// unless a prior of the same weight held it.
    pub fn anchored(steps: usize) -> Self {
        Self {
            prior: 10.0 * Self::DEFAULT_PRIOR,
            prior_centre: PriorCentre::Start,
            fit_pose: false,
            ..Self::new(steps)
        }
    }

    /// `steps` steps at the default learning rate and prior.
    pub fn new(steps: usize) -> Self {
        Self {
            steps,
            learning_rate: Self::DEFAULT_LEARNING_RATE,
            prior: Self::DEFAULT_PRIOR,
            prior_centre: PriorCentre::Mean,
            keep_best: false,
            backtrack: false,
            fit_pose: true,
            pose_prior: false,
            loss_pool: 1,
            depth_weight: None,
            cauchy_scale: None,
            prior_precision: None,
            average_last: 0,
            cosine_decay: false,
        }
    }
}

/// Dataset faces fitted by [`fit_faces`].
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

impl FittedFaces {
    /// The first `n` faces only.
    pub fn first(&self, n: usize) -> FittedFaces {
        let n = n.min(self.rows.len());
        let image_size = self.image_len();
        FittedFaces {
            rows: self.rows[..n].to_vec(),
            init: self.init.slice(s![..n, ..]).to_owned(),
            fitted: self.fitted.slice(s![..n, ..]).to_owned(),
            targets: self.targets[..n * image_size].to_vec(),
            rendered: self.rendered[..n * image_size].to_vec(),
            losses: self.losses.clone(),
            ..*self
        }
    }

    /// Values of one face's image (C × H × W).
    pub fn image_len(&self) -> usize {
        let (h, w) = self.image_size;
        self.kind.channels() * h * w
    }

    /// The image loss before the first step and after the last.
    pub fn loss_change(&self) -> (f32, f32) {
        let first = self.losses.first().copied().unwrap_or(f32::NAN);
        let last = self.losses.last().copied().unwrap_or(f32::NAN);
        (first, last)
    }
}

/// `params` (N × P) with each row's dynamic-range column set to `d_db`.
pub fn with_dynamic_range(params: &Array2<f32>, layout: &ParamLayout, d_db: f32) -> Array2<f32> {
    let mut out = params.clone();
    out.column_mut(layout.dynamic_range_column())
        .fill(layout.scaled_dynamic_range(f64::from(d_db)));
    out
}

/// Fits `rows` of `dataset` through `target`'s renderer, starting from `predicted` (N × P
/// scaled, one row per face) with the rendering columns fixed and the D column at the target's
/// range. Reports one unit per optimiser step to `progress`.
pub fn fit_faces(
    target: &FitTarget<'_>,
    dataset: &Dataset,
    rows: &[usize],
    predicted: &Array2<f32>,
    settings: &FitSettings,
    progress: &mut dyn Progress,
) -> Result<FittedFaces> {
    let layout = dataset.manifest().layout;
    // The rendering columns stay fixed: the renderer's dynamic range is that of its targets.
    let init = with_dynamic_range(predicted, &layout, target.target_db);
    let images = dataset.input_images(rows, target.kind, target.target_db)?;
    let p = layout.len();
    let init_tensor = Tensor::from_vec(
        init.iter().copied().collect(),
        (rows.len(), p),
        &Device::Cpu,
    )?;
    let config = FitConfig {
        steps: settings.steps,
        learning_rate: settings.learning_rate,
        prior_weight: settings.prior,
        prior_centre: settings.prior_centre,
        keep_best: settings.keep_best,
        backtrack: settings.backtrack,
        pose_prior: settings.pose_prior,
        loss_pool: settings.loss_pool,
        cauchy_scale: settings.cauchy_scale,
        prior_precision: settings.prior_precision.clone(),
        average_last: settings.average_last,
        cosine_decay: settings.cosine_decay,
        paired_realisations: target.paired_realisations,
        ignore_empty_target: target.ignore_empty_target && settings.depth_weight.is_none(),
        channels: match settings.depth_weight {
            None => Vec::new(),
            Some(weight) => {
                let depth = ChannelLoss {
                    weight,
                    ignore_empty_target: true,
                };
                let amplitude = ChannelLoss {
                    weight: 1.0,
                    ignore_empty_target: target.ignore_empty_target,
                };
                match target.kind {
                    InputKind::Amplitude => vec![amplitude],
                    InputKind::Depth => vec![depth],
                    InputKind::AmplitudeDepth => vec![amplitude, depth],
                }
            }
        },
        optimise: if settings.fit_pose {
            vec![
                ParamGroup::Shape,
                ParamGroup::Expression,
                ParamGroup::Translation,
                ParamGroup::Rotation,
            ]
        } else {
            vec![ParamGroup::Shape, ParamGroup::Expression]
        },
        ..FitConfig::new(layout)
    };
    let renderer = target.renderer.as_ref();
    let result = fit(renderer, &images, &init_tensor, &config, progress)?;
    let fitted = Array2::from_shape_vec((rows.len(), p), values(&result.params)?)
        .map_err(|e| crate::AbsFitError::config("fitted parameters", e.to_string()))?;
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

/// Every value of a tensor, row-major, as f32.
fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}
