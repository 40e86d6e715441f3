//! Analysis-by-synthesis fitting: find the parameters whose rendering matches a target image,
//! by gradient descent through any differentiable [`Renderer`].
//!
//! The loss of a batch of B parameter rows is
//!
//!   L = mean over (B, C, H, W) of (render(p) − target)²  +  λ·(1/B)·Σ_b (|α_b|² + |γ_b|²)
//!
//! (image mean squared error — over the non-zero target pixels only with
//! [`FitConfig::ignore_empty_target`], a weighted mean with [`FitConfig::channels`], and the
//! Cauchy loss of each difference instead of its square with [`FitConfig::cauchy_scale`] —
//! plus an optional Gaussian prior on the coefficient columns, which are in standard
//! deviations, so the prior is the negative log-density of N(0, I) up to a constant and a
//! weight). The prior is centred on the mean face, or with
//! [`PriorCentre::Start`] on the initial coefficients (an encoder's estimate): then it says how
//! far the fit may wander from where it began. With [`FitConfig::prior_precision`] the prior is
//! λ·oᵀΠo over the offsets o instead, e.g. Π the inverse of an encoder's residual covariance. It is minimised with Adam (candle-nn's AdamW
//! with no weight decay); columns of the groups not being optimised get a zero gradient, so they
//! keep their initial values exactly. With [`FitConfig::keep_best`] each row ends at the step
//! where its own loss was lowest, so no row ends worse than it began. With
//! [`FitConfig::backtrack`] a row's step is accepted only when its loss falls: otherwise the
//! row returns to where it was and its later steps are halved. With
//! [`FitConfig::average_last`] the fit ends at the mean of its last iterates, and with
//! [`FitConfig::cosine_decay`] its rate decays along a half cosine: both for renderers whose
//! images are noisy in the parameters, such as the physics with its speckle drawn anew at every
//! step. With [`Solver::LevenbergMarquardt`] the same loss (squared differences) is minimised
//! by damped Gauss–Newton steps on a Jacobian taken by forward differences instead of Adam.
//! Fitting only reads the renderer: its state never changes.

mod faces;
mod levenberg;

use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

pub use faces::{FitSettings, FitTarget, FittedFaces, fit_faces, with_dynamic_range};

use crate::{AbsFitError, ParamGroup, ParamLayout, Progress, Renderer, Result};

/// How [`fit`] runs.
#[derive(Debug, Clone, PartialEq)]
pub struct FitConfig {
    /// The layout of the parameter rows (which columns each group occupies).
    pub layout: ParamLayout,
    /// Most optimiser steps (at least 1).
    pub steps: usize,
    /// Adam's learning rate, in scaled parameter units per step (positive).
    pub learning_rate: f64,
    /// Stop early once the relative loss change of one step, |L_k − L_{k+1}| / L_k, falls below
    /// this (0 disables early stopping).
    pub tolerance: f64,
    /// λ of the Gaussian prior on the shape and expression columns (0 disables it).
    pub prior_weight: f64,
    /// The groups that move; the others (e.g. [`ParamGroup::Render`]) stay at their initial
    /// values.
    pub optimise: Vec<ParamGroup>,
    /// Leave target pixels equal to 0 out of the image loss. Radar depth images are 0 where
    /// no valid depth exists (below the dynamic range), while a depth renderer draws the whole
    /// face: without the mask the fit pulls the face toward those empty pixels.
    pub ignore_empty_target: bool,
    /// Where the prior is centred.
    pub prior_centre: PriorCentre,
    /// Return, per row, the parameters of the step with the lowest loss of that row (image
    /// loss plus prior) instead of the last step's.
    pub keep_best: bool,
    /// Accept a row's step only when the row's loss (image loss plus prior) falls. A row whose
    /// loss rose goes back to its previous parameters, takes its previous gradient again and
    /// halves its step from then on (each row scales Adam's update by its own factor,
    /// 1, ½, ¼, …). The rows' losses then never rise, and the recorded losses are the means of
    /// the rows' accepted losses. Each step still costs one render and one gradient: the loss
    /// of a trial is the next step's forward pass.
    pub backtrack: bool,
    /// Extend the prior to the translation and rotation columns (scaled units), with the same
    /// weight and centre: with [`PriorCentre::Start`], a pull back toward the initial pose.
    pub pose_prior: bool,
    /// Compare the images after k × k average pooling (1: as rendered). Pooling averages the
    /// target's speckle, which no parameter controls, over k² pixels before the comparison;
    /// H and W must be multiples of k.
    pub loss_pool: usize,
    /// How each image channel enters the image loss, one entry per channel; empty (the
    /// default): weight 1 on every channel, with [`FitConfig::ignore_empty_target`] for all.
    /// Otherwise the image loss is Σ w_c·(render − target)² over the kept pixels divided by
    /// their number, and [`FitConfig::ignore_empty_target`] must be false.
    pub channels: Vec<ChannelLoss>,
    /// The precision (inverse covariance, scaled units) of the Gaussian prior: P × P values,
    /// row-major, symmetric, non-negative on the diagonal, of which the prior reads the rows and
    /// columns of its own groups. The prior of a row is then λ·oᵀΠo with o its offsets from
    /// the centre on those columns (0 elsewhere); None: Π = I, λ·|o|². With
    /// [`PriorCentre::Start`] and Π the inverse of an encoder's residual covariance, the fit
    /// may move the start along the directions in which the encoder errs, and little along the
    /// others ([`crate::evaluate::Validation::residual_precision`]).
    pub prior_precision: Option<Arc<[f64]>>,
    /// Compare pixels with the Cauchy (Lorentzian) loss of this scale c instead of the squared
    /// difference d²: c²·ln(1 + d²/c²), which is d² for |d| ≪ c and grows only
    /// logarithmically beyond, so that a few large differences (deep speckle fades of the
    /// target against a bright rendering) pull less. None: squared differences.
    pub cauchy_scale: Option<f64>,
    /// Return the mean of the last N iterates (the parameters after each of the last N steps)
    /// instead of the last one (0 or 1: the last). Through a renderer whose images are
    /// noisy in the parameters (the physics with redrawn speckle), Adam's iterates scatter
    /// around the minimum of the expected loss, and their mean (Polyak–Ruppert averaging)
    /// scatters less. The recorded losses stay those of the iterates.
    pub average_last: usize,
    /// Lower the learning rate from [`FitConfig::learning_rate`] toward 0 along a half cosine
    /// over the steps (step k of S at lr·(1 + cos(πk/S))/2) instead of holding it. Adam's steps
    /// are about the learning rate long whatever the gradient's size, so through a noisy
    /// renderer a constant rate keeps the iterates wandering by that much; a decaying one
    /// takes long steps first and settles at the end.
    pub cosine_decay: bool,
    /// The renderer's images hold two independent realisations of a noisy renderer stacked
    /// along the channels ((B, 2C, H, W), e.g. a [`crate::PairedRenderer`] of two physics
    /// renderers with different seeds) for C-channel targets, and the pixel loss is
    /// (r₁ − t)·(r₂ − t) instead of (r − t)². Its expectation over the realisations is
    /// (E r − t)² exactly, where that of (r − t)² adds the renderer's variance Var r, which
    /// depends on the parameters: a fit on one realisation also seeks parameters whose
    /// rendering varies less, and one on the pair follows only the expected image. Cannot be
    /// combined with [`FitConfig::cauchy_scale`].
    pub paired_realisations: bool,
    /// The optimiser: Adam (the default) or Levenberg–Marquardt.
    pub solver: Solver,
}

/// The optimiser of a fit ([`FitConfig::solver`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum Solver {
    /// Adam on the loss's gradient (candle's autograd through the renderer), one render and
    /// one gradient per step.
    #[default]
    Adam,
    /// Levenberg–Marquardt on the Jacobian of the residuals (module `levenberg`): per row and
    /// step, the Jacobian by forward differences (one render per optimised column, for rows
    /// whose last trial was accepted) and one trial render. It needs the squared loss and a
    /// renderer whose images are a deterministic function of the parameters (not the physics
    /// with its speckle redrawn from the parameters' values), and cannot be combined with
    /// the Adam-only settings (Cauchy loss, paired realisations, prior precision, keep_best,
    /// backtrack, iterate averaging, cosine decay). The learning rate is not used; a step is
    /// one trial, so [`FitConfig::steps`] counts trials.
    LevenbergMarquardt(LevenbergMarquardt),
}

/// Settings of [`Solver::LevenbergMarquardt`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevenbergMarquardt {
    /// The forward-difference step of the Jacobian, in scaled parameter units (positive). A
    /// small step gives the local derivative; a larger one a secant that averages the images'
    /// fine structure (e.g. speckle) over that distance.
    pub difference_step: f64,
    /// The initial damping μ of (JᵀJ + μ·diag JᵀJ) δ = −Jᵀr (positive): 0 would be
    /// Gauss–Newton, large values small gradient steps.
    pub damping: f64,
}

impl Default for LevenbergMarquardt {
    /// A difference step of 10⁻³ and an initial damping of 10⁻².
    fn default() -> Self {
        Self {
            difference_step: 1e-3,
            damping: 1e-2,
        }
    }
}

/// How one image channel enters the image loss of a fit ([`FitConfig::channels`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelLoss {
    /// The weight of its squared differences (finite, non-negative).
    pub weight: f64,
    /// Leave its target pixels equal to 0 out (e.g. a depth channel where the radar saw
    /// nothing within the dynamic range).
    pub ignore_empty_target: bool,
}

/// Where the Gaussian prior on the coefficients is centred.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PriorCentre {
    /// The mean face (coefficients 0): the negative log-density of the model's prior.
    #[default]
    Mean,
    /// The initial coefficients of each row (e.g. an encoder's estimate).
    Start,
}

impl FitConfig {
    /// Defaults for `layout`: 500 steps at learning rate 0.1, tolerance 1e-7, no prior,
    /// optimising shape, expression, translation and rotation (the rendering columns fixed).
    pub fn new(layout: ParamLayout) -> Self {
        Self {
            layout,
            steps: 500,
            learning_rate: 0.1,
            tolerance: 1e-7,
            prior_weight: 0.0,
            ignore_empty_target: false,
            prior_centre: PriorCentre::Mean,
            keep_best: false,
            backtrack: false,
            pose_prior: false,
            loss_pool: 1,
            channels: Vec::new(),
            cauchy_scale: None,
            prior_precision: None,
            average_last: 0,
            cosine_decay: false,
            paired_realisations: false,
            solver: Solver::Adam,
            optimise: vec![
                ParamGroup::Shape,
                ParamGroup::Expression,
                ParamGroup::Translation,
                ParamGroup::Rotation,
            ],
        }
    }

    /// Checks every setting: at least one step, a positive finite learning rate, a
    /// non-negative finite tolerance and prior weight, at least one group to optimise, and a
    /// valid layout.
    pub fn validate(&self) -> Result<()> {
        self.layout.validate()?;
        if self.steps == 0 {
            return Err(AbsFitError::config("fit steps", "must be at least 1"));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(AbsFitError::config(
                "fit learning rate",
                format!("{} must be finite and positive", self.learning_rate),
            ));
        }
        for (name, value) in [
            ("fit tolerance", self.tolerance),
            ("fit prior weight", self.prior_weight),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(AbsFitError::config(
                    name,
                    format!("{value} must be finite and non-negative"),
                ));
            }
        }
        if self.optimise.is_empty() {
            return Err(AbsFitError::config(
                "fit groups",
                "no parameter group to optimise",
            ));
        }
        if self.loss_pool == 0 {
            return Err(AbsFitError::config(
                "fit loss pooling",
                "must be at least 1",
            ));
        }
        if let Some((c, bad)) = (self.channels.iter().enumerate())
            .find(|(_, c)| !(c.weight.is_finite() && c.weight >= 0.0))
        {
            return Err(AbsFitError::config(
                "fit channel weights",
                format!(
                    "channel {c}'s weight {} must be finite and non-negative",
                    bad.weight
                ),
            ));
        }
        if let Some(c) = self.cauchy_scale
            && !(c.is_finite() && c > 0.0)
        {
            return Err(AbsFitError::config(
                "fit Cauchy scale",
                format!("{c} must be finite and positive"),
            ));
        }
        if let Some(precision) = &self.prior_precision {
            check_precision(precision, self.layout.len())?;
        }
        if self.average_last > 1 && (self.keep_best || self.backtrack) {
            return Err(AbsFitError::config(
                "fit iterate averaging",
                "averaging the last iterates returns neither the best nor the last accepted \
                 step: it cannot be combined with keep_best or backtrack",
            ));
        }
        if self.paired_realisations && self.cauchy_scale.is_some() {
            return Err(AbsFitError::config(
                "fit paired realisations",
                "the product of two realisations' differences is no squared difference: it \
                 cannot be combined with the Cauchy loss",
            ));
        }
        if let Solver::LevenbergMarquardt(lm) = self.solver {
            for (name, value) in [
                ("fit difference step", lm.difference_step),
                ("fit damping", lm.damping),
            ] {
                if !(value.is_finite() && value > 0.0) {
                    return Err(AbsFitError::config(
                        name,
                        format!("{value} must be finite and positive"),
                    ));
                }
            }
            let adam_only = [
                ("a Cauchy loss", self.cauchy_scale.is_some()),
                ("paired realisations", self.paired_realisations),
                ("a prior precision", self.prior_precision.is_some()),
                ("keep_best", self.keep_best),
                ("backtrack", self.backtrack),
                ("iterate averaging", self.average_last > 1),
                ("cosine decay", self.cosine_decay),
            ];
            if let Some((what, _)) = adam_only.iter().find(|(_, on)| *on) {
                return Err(AbsFitError::config(
                    "fit solver",
                    format!(
                        "Levenberg-Marquardt fits squared residuals and accepts only steps \
                         that lower each row's loss: it cannot be combined with {what}"
                    ),
                ));
            }
        }
        if !self.channels.is_empty() && self.ignore_empty_target {
            return Err(AbsFitError::config(
                "fit channel weights",
                "per-channel losses say which channels ignore empty target pixels: \
                 ignore_empty_target must be false with them",
            ));
        }
        Ok(())
    }

    /// 1 for every column of an optimised group, 0 elsewhere (P values).
    fn column_mask(&self) -> Vec<f64> {
        let mut mask = vec![0.0; self.layout.len()];
        for &group in &self.optimise {
            mask[self.layout.range(group)].fill(1.0);
        }
        mask
    }

    /// 1 on the prior's columns (the coefficients, and the pose with
    /// [`FitConfig::pose_prior`]), 0 elsewhere (P values).
    fn prior_mask(&self) -> Vec<f64> {
        let mut mask = vec![0.0; self.layout.len()];
        let mut groups = vec![ParamGroup::Shape, ParamGroup::Expression];
        if self.pose_prior {
            groups.extend([ParamGroup::Translation, ParamGroup::Rotation]);
        }
        for group in groups {
            mask[self.layout.range(group)].fill(1.0);
        }
        mask
    }
}

/// The outcome of [`fit`].
#[derive(Debug, Clone)]
pub struct FitResult {
    /// The fitted parameters (B, P), same dtype and device as the initial ones.
    pub params: Tensor,
    /// The loss before each step and, last, the loss of [`FitResult::params`]
    /// (`steps + 1` values).
    pub losses: Vec<f32>,
    /// Optimiser steps taken (fewer than configured if the tolerance stopped it).
    pub steps: usize,
}

/// Fits parameters (B, P) starting from `init` so that `renderer`'s images match `target`
/// (B, C, H, W), as the [module documentation](self) describes. Reports one unit per step to
/// `progress`.
///
/// Fails with [`AbsFitError::Config`] if the renderer is not differentiable or the config is
/// invalid, and with [`AbsFitError::Shape`] if the tensors disagree with the renderer or the
/// layout.
pub fn fit(
    renderer: &dyn Renderer,
    target: &Tensor,
    init: &Tensor,
    config: &FitConfig,
    progress: &mut dyn Progress,
) -> Result<FitResult> {
    config.validate()?;
    let (b, p) = check_inputs(renderer, target, init, config)?;
    let dtype = init.dtype();
    let device = init.device();
    let pool = |images: Tensor| -> Result<Tensor> {
        Ok(match config.loss_pool {
            1 => images,
            k => images.avg_pool2d(k)?,
        })
    };
    let (_, _, h, w) = target.dims4()?;
    if h % config.loss_pool != 0 || w % config.loss_pool != 0 {
        return Err(AbsFitError::config(
            "fit loss pooling",
            format!(
                "{0} × {0} pooling needs images whose sides are multiples of {0}; these are \
                 {h} × {w}",
                config.loss_pool
            ),
        ));
    }
    let target = pool(target.to_dtype(dtype)?.to_device(device)?)?;
    let pixel_weights = pixel_weights(config, &target)?;
    if let Solver::LevenbergMarquardt(settings) = config.solver {
        let init_rows: Vec<Vec<f64>> = init.to_dtype(DType::F64)?.to_vec2()?;
        let columns_where = |mask: Vec<f64>| (0..p).filter(|&j| mask[j] > 0.0).collect();
        let problem = levenberg::Problem {
            renderer,
            pool: &pool,
            target: &target,
            pixel_weights: pixel_weights.as_ref(),
            centre: match config.prior_centre {
                PriorCentre::Mean => vec![vec![0.0; p]; b],
                PriorCentre::Start => init_rows.clone(),
            },
            prior_columns: columns_where(config.prior_mask()),
            prior_weight: config.prior_weight,
            columns: columns_where(config.column_mask()),
            dtype,
        };
        let (params, losses, steps) = levenberg::fit(
            &problem,
            init_rows,
            settings,
            config.steps,
            config.tolerance,
            progress,
        )?;
        return Ok(FitResult {
            params: levenberg::to_tensor(params, init)?,
            losses,
            steps,
        });
    }
    let (mask, coefficient_mask) = column_masks(config, device, dtype)?;
    let params = Var::from_tensor(&init.copy()?)?;
    let mut optimiser = AdamW::new(
        vec![params.clone()],
        ParamsAdamW {
            lr: config.learning_rate,
            weight_decay: 0.0,
            ..ParamsAdamW::default()
        },
    )?;
    let precision = (config.prior_precision.as_ref())
        .map(|values| Tensor::from_slice(values, (p, p), device)?.to_dtype(dtype))
        .transpose()?;
    let centre = match config.prior_centre {
        PriorCentre::Mean => init.zeros_like()?,
        PriorCentre::Start => init.to_dtype(dtype)?,
    };
    // The total loss and each row's (B): image loss plus prior.
    let loss_of = |params: &Tensor| -> Result<(Tensor, Tensor)> {
        let images = pool(
            renderer
                .render(params)?
                .to_device(device)?
                .to_dtype(dtype)?,
        )?;
        let squared = if config.paired_realisations {
            let c = target.dim(1)?;
            let first = (images.narrow(1, 0, c)? - &target)?;
            (first * (images.narrow(1, c, c)? - &target)?)?
        } else {
            (images - &target)?.sqr()?
        };
        let squared = match config.cauchy_scale {
            None => squared,
            Some(c) => ((squared / (c * c))? + 1.0)?.log()?.affine(c * c, 0.0)?,
        };
        let (mut loss, mut rows) = match &pixel_weights {
            Some((w, kept, kept_rows)) => {
                let weighted = squared.mul(w)?;
                (
                    (weighted.sum_all()? / *kept)?,
                    weighted.flatten_from(1)?.sum(1)?.div(kept_rows)?,
                )
            }
            None => (squared.mean_all()?, squared.flatten_from(1)?.mean(1)?),
        };
        if config.prior_weight > 0.0 {
            let offsets = (params - &centre)?.broadcast_mul(&coefficient_mask)?;
            let quadratic = match &precision {
                None => offsets.sqr()?,
                Some(precision) => offsets.matmul(precision)?.mul(&offsets)?,
            };
            let per_row = (quadratic.sum(1)? * config.prior_weight)?;
            loss = (loss + (per_row.sum_all()? / b as f64)?)?;
            rows = (rows + per_row)?;
        }
        Ok((loss, rows))
    };
    // Each row's lowest loss so far and its parameters (with keep_best).
    let mut best: Option<(Tensor, Tensor)> = None;
    // Each row's last accepted step (with backtrack).
    let mut accepted: Option<Accepted> = None;
    // The sum of the iterates averaged so far and their number (with average_last > 1).
    let mut averaged: Option<(Tensor, usize)> = None;

    progress.start("fit", config.steps as u64, 0);
    let mut losses = Vec::with_capacity(config.steps + 1);
    let mut steps = 0;
    loop {
        let (loss, rows) = loss_of(params.as_tensor())?;
        // With backtrack, the rows whose trial raised their loss (B, u8), and the value to
        // record: the mean of the rows' accepted losses.
        let (rejected, recorded) = match (&accepted, config.backtrack) {
            (Some(last), _) => {
                let rejected = rows.detach().gt(&last.rows)?;
                let kept = rejected.where_cond(&last.rows, &rows.detach())?;
                (Some(rejected), Some(kept.mean_all()?))
            }
            (None, true) => (None, Some(rows.mean_all()?)),
            (None, false) => (None, None),
        };
        if config.keep_best {
            let rows = rows.detach();
            // A copy: a detached view of a Var shares its storage, which every step overwrites.
            let current = params.as_tensor().copy()?;
            best = Some(match best.take() {
                None => (rows, current),
                Some((best_rows, best_params)) => {
                    let better = rows.lt(&best_rows)?;
                    (
                        better.where_cond(&rows, &best_rows)?,
                        rows_where(&better, &current, &best_params)?,
                    )
                }
            });
        }
        let value = (recorded.as_ref().unwrap_or(&loss))
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        if !value.is_finite() {
            return Err(AbsFitError::config(
                "fit loss",
                format!("became {value} after {steps} steps (learning rate too large?)"),
            ));
        }
        let previous = losses.last().map(|&l: &f32| l as f64);
        losses.push(value as f32);
        if config.average_last > 1 && steps + config.average_last > config.steps {
            let current = params.as_tensor().detach();
            averaged = Some(match averaged.take() {
                None => (current.copy()?, 1),
                Some((sum, n)) => ((sum + current)?, n + 1),
            });
        }
        // A step that undid some row's trial is no sign of convergence: that row's next step
        // is smaller, not absent.
        let undone = match &rejected {
            Some(rejected) => {
                rejected
                    .to_dtype(DType::F64)?
                    .sum_all()?
                    .to_scalar::<f64>()?
                    > 0.0
            }
            None => false,
        };
        let converged = !undone
            && previous.is_some_and(|prev| {
                config.tolerance > 0.0 && (prev - value).abs() <= config.tolerance * prev.abs()
            });
        if steps == config.steps || converged {
            if let (Some(rejected), Some(last)) = (&rejected, &accepted) {
                params.set(&rows_where(rejected, &last.params, params.as_tensor())?)?;
            }
            break;
        }
        let mut grads = loss.backward()?;
        let grad = grads.remove(params.as_tensor()).ok_or_else(|| {
            AbsFitError::config(
                "fit renderer",
                format!(
                    "renderer '{}' claims to be differentiable but its images carry no \
                     gradient to the parameters",
                    renderer.name()
                ),
            )
        })?;
        let mut grad = grad.broadcast_mul(&mask)?;
        if config.cosine_decay {
            let phase = std::f64::consts::PI * steps as f64 / config.steps as f64;
            optimiser.set_learning_rate(config.learning_rate * 0.5 * (1.0 + phase.cos()));
        }
        if config.backtrack {
            let rows = rows.detach();
            let last = match (accepted.take(), &rejected) {
                (Some(last), Some(rejected)) => {
                    // Rejected rows go back and halve their step; the others are accepted.
                    let halved = (&last.scale * 0.5)?;
                    params.set(&rows_where(rejected, &last.params, params.as_tensor())?)?;
                    grad = rows_where(rejected, &last.grad, &grad)?;
                    Accepted {
                        rows: rejected.where_cond(&last.rows, &rows)?,
                        params: params.as_tensor().copy()?,
                        grad: grad.clone(),
                        scale: rows_where(rejected, &halved, &last.scale)?,
                    }
                }
                _ => Accepted {
                    rows,
                    params: params.as_tensor().copy()?,
                    grad: grad.clone(),
                    scale: Tensor::ones((b, 1), dtype, device)?,
                },
            };
            grads.insert(params.as_tensor(), grad);
            let before = params.as_tensor().copy()?;
            optimiser.step(&grads)?;
            let step = (params.as_tensor() - &before)?.broadcast_mul(&last.scale)?;
            params.set(&(before + step)?)?;
            accepted = Some(last);
        } else {
            grads.insert(params.as_tensor(), grad);
            optimiser.step(&grads)?;
        }
        steps += 1;
        progress.advance(1);
    }
    progress.message(&format!(
        "fit: loss {:.3e} → {:.3e} in {steps} steps",
        losses[0],
        losses[losses.len() - 1]
    ));
    progress.finish();
    Ok(FitResult {
        params: match (best, averaged) {
            (Some((_, best_params)), _) => best_params,
            (None, Some((sum, n))) => (sum / n as f64)?,
            (None, None) => params.as_tensor().detach(),
        },
        losses,
        steps,
    })
}

/// A backtracking fit's last accepted state, per row.
struct Accepted {
    /// Each row's loss (B).
    rows: Tensor,
    /// The parameters (B, P).
    params: Tensor,
    /// The masked gradient at them (B, P).
    grad: Tensor,
    /// Each row's factor on Adam's update (B, 1): halved at every rejection.
    scale: Tensor,
}

/// Row b of `yes` where `pick[b]` is non-zero, else of `no` ((B,) against (B, N) tensors).
fn rows_where(pick: &Tensor, yes: &Tensor, no: &Tensor) -> Result<Tensor> {
    let pick = pick.unsqueeze(1)?.broadcast_as(yes.shape())?;
    Ok(pick.where_cond(yes, no)?)
}

/// Checks that the renderer is differentiable and that `init` (B, P) and `target`
/// (B, C, H, W) fit it and `layout`; returns (B, P).
fn check_inputs(
    renderer: &dyn Renderer,
    target: &Tensor,
    init: &Tensor,
    config: &FitConfig,
) -> Result<(usize, usize)> {
    let layout = &config.layout;
    if !renderer.is_differentiable() {
        return Err(AbsFitError::config(
            "fit renderer",
            format!(
                "renderer '{}' is not differentiable: analysis-by-synthesis fitting needs \
                 gradients of its images",
                renderer.name()
            ),
        ));
    }
    let (b, p) = init.dims2().map_err(|_| AbsFitError::Shape {
        what: "fit initial parameters",
        expected: format!("(B, {})", layout.len()),
        actual: format!("{:?}", init.dims()),
    })?;
    if p != layout.len() {
        return Err(AbsFitError::Shape {
            what: "fit initial parameters",
            expected: format!("{} columns ({:?})", layout.len(), layout),
            actual: format!("{p} columns"),
        });
    }
    let (c, h, w) = renderer.image_shape();
    if config.paired_realisations && c % 2 != 0 {
        return Err(AbsFitError::Shape {
            what: "fit paired realisations",
            expected: "a renderer of two realisations' channels side by side (2C)".into(),
            actual: format!("{c} channels from renderer '{}'", renderer.name()),
        });
    }
    let c = if config.paired_realisations { c / 2 } else { c };
    if target.dims() != [b, c, h, w] {
        return Err(AbsFitError::Shape {
            what: "fit target images",
            expected: format!("({b}, {c}, {h}, {w}) for renderer '{}'", renderer.name()),
            actual: format!("{:?}", target.dims()),
        });
    }
    let dtype = init.dtype();
    if !matches!(dtype, DType::F32 | DType::F64) {
        return Err(AbsFitError::config(
            "fit initial parameters",
            format!("dtype {dtype:?}: need f32 or f64"),
        ));
    }
    Ok((b, p))
}

/// Fails unless `precision` is P × P, finite, symmetric and non-negative on its diagonal.
fn check_precision(precision: &[f64], p: usize) -> Result<()> {
    let bad = |why: String| Err(AbsFitError::config("fit prior precision", why));
    if precision.len() != p * p {
        return bad(format!(
            "{} values where {p} × {p} = {} were expected",
            precision.len(),
            p * p
        ));
    }
    let at = |i: usize, j: usize| precision[i * p + j];
    let scale = precision.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for i in 0..p {
        if !(at(i, i).is_finite() && at(i, i) >= 0.0) {
            return bad(format!("diagonal entry ({i}, {i}) is {}", at(i, i)));
        }
        for j in 0..i {
            if !at(i, j).is_finite() || (at(i, j) - at(j, i)).abs() > 1e-9 * scale {
                return bad(format!(
                    "entries ({i}, {j}) = {} and ({j}, {i}) = {} must be finite and equal",
                    at(i, j),
                    at(j, i)
                ));
            }
        }
    }
    Ok(())
}

/// (1, P) masks: 1 on the columns of the optimised groups, and 1 on the columns of the prior
/// (the coefficients, and the pose with [`FitConfig::pose_prior`]).
fn column_masks(config: &FitConfig, device: &Device, dtype: DType) -> Result<(Tensor, Tensor)> {
    let p = config.layout.len();
    let mask = Tensor::from_vec(config.column_mask(), (1, p), device)?.to_dtype(dtype)?;
    let coefficients = Tensor::from_vec(config.prior_mask(), (1, p), device)?.to_dtype(dtype)?;
    Ok((mask, coefficients))
}

/// The weights of the image loss per target pixel ([`FitConfig::channels`] and
/// [`FitConfig::ignore_empty_target`]; None: 1 everywhere), how many pixels they keep (at least
/// one), and how many per row (B; at least one each, for a row's mean).
fn pixel_weights(config: &FitConfig, target: &Tensor) -> Result<Option<(Tensor, f64, Tensor)>> {
    let non_empty = || -> Result<Tensor> { Ok(target.ne(0.0)?.to_dtype(target.dtype())?) };
    let (kept, weights) = if config.channels.is_empty() {
        if !config.ignore_empty_target {
            return Ok(None);
        }
        let kept = non_empty()?;
        (kept.clone(), kept)
    } else {
        let (_, c, _, _) = target.dims4()?;
        if config.channels.len() != c {
            return Err(AbsFitError::Shape {
                what: "fit channel weights",
                expected: format!("one per image channel ({c})"),
                actual: format!("{} entries", config.channels.len()),
            });
        }
        let ones = target.ones_like()?;
        let non_empty = non_empty()?;
        let (mut kept, mut weights) = (Vec::new(), Vec::new());
        for (k, channel) in config.channels.iter().enumerate() {
            let source = if channel.ignore_empty_target {
                &non_empty
            } else {
                &ones
            };
            let mask = source.narrow(1, k, 1)?;
            weights.push((&mask * channel.weight)?);
            kept.push(mask);
        }
        (Tensor::cat(&kept, 1)?, Tensor::cat(&weights, 1)?)
    };
    let count = kept.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    if count == 0.0 {
        return Err(AbsFitError::config(
            "fit target",
            "every compared target pixel is 0: nothing to fit where empty pixels are ignored",
        ));
    }
    let kept_rows = kept.flatten_from(1)?.sum(1)?.maximum(1.0)?;
    Ok(Some((weights, count, kept_rows)))
}
