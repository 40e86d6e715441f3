//! Table 1, the cosine study and the run times of trained networks on a dataset: what
//! `radar-face evaluate`, `fit` and `reproduce` compute, as library calls.
//!
//! [`Validation`] holds a dataset's validation split with its true parameters at the paper's
//! evaluation range (D = 20 dB) and scores predictions against them: the two baselines, any
//! [`TrainedEncoder`], and an encoder refined by test-time fitting through any [`FitTarget`].
//! Each score is a [`FaceErrors`] (the errors of every face); [`table1`](super::table1) turns a
//! list of them into Table 1 rows with bootstrap intervals, and
//! [`paired_difference`](super::paired_difference) compares two of them on the same faces.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use morphable::MorphableModel;
use ndarray::{Array2, s};

use super::{
    EncodedStudy, FaceErrors, FitTime, MEAN_BASELINE, RANDOM_BASELINE, RenderTimes,
    cosine_study_faces, face_errors, mean_baseline, random_baseline, render_times,
};
use crate::dataset::{Dataset, EVALUATION_RANGE_DB, InputKind};
use crate::fit::{FitSettings, FitTarget, FittedFaces, fit_faces};
use crate::render::{LearnedRenderer, PhysicsRenderer, Renderer};
use crate::{AbsFitError, Iterate, IterativeEncoder, ParamGroup, Progress, Result, TrainedEncoder};

/// Mixed into the dataset's seed to seed the Random baseline: any seed other than the
/// dataset's, whose draws would repeat its own first faces.
const RANDOM_SEED: u64 = 0x5EED_0000_BA5E_11FE;

/// Faces rendered per physics-renderer call in [`physics_images`]: the unit of progress.
const RENDER_CHUNK: usize = 8;

/// Where an iterative encoder's iterations start ([`Validation::iterative_predictions`]).
#[derive(Debug, Clone, Copy)]
pub enum IterativeStart<'e> {
    /// The mean face at zero pose (every scaled column 0), where inference starts by default.
    Mean,
    /// A trained one-pass encoder's prediction from its own images.
    Encoder(&'e TrainedEncoder),
    /// The true parameters: an oracle, not a method. How far the first iteration moves away
    /// from the truth says how much the feedback of a perfect estimate is worth to the network.
    Truth,
}

/// A dataset's validation faces (all of them, or chosen rows) with their true parameters at
/// the evaluation range, ready to score predictions (Table 1).
///
/// ```
/// use abs_fit::dataset::DatasetConfig;
/// use abs_fit::generation::{GenerateOptions, generate};
/// use abs_fit::evaluate::{MEAN_BASELINE, Validation};
/// use abs_fit::{NoProgress, Preset};
///
/// let model = morphable::builtin::builtin();
/// let config = DatasetConfig { n_samples: 8, ..Preset::Tiny.dataset()? };
/// let dir = tempfile::tempdir()?;
/// let dataset = generate(model, &config, dir.path(), &GenerateOptions::default(), &mut NoProgress)?;
/// let validation = Validation::new(&dataset, model)?;
/// let scores = validation.baselines()?;
/// assert_eq!(scores[0].method, MEAN_BASELINE);
/// let table = abs_fit::evaluate::table1(&scores, &Default::default())?;
/// assert!(table[0].intervals.is_some());
/// // A trained encoder adds its row the same way:
/// // scores.push(validation.encoder_row(&TrainedEncoder::load(dir, &Device::Cpu)?, 64)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Validation<'a> {
    dataset: &'a Dataset,
    model: &'a dyn MorphableModel,
    rows: Vec<usize>,
    truth: Array2<f32>,
}

/// A test-time fit scored for Table 1.
#[derive(Debug, Clone)]
pub struct FitOutcome {
    /// The errors of the fitted parameters on every face.
    pub errors: FaceErrors,
    /// The fitted faces, their images and losses.
    pub faces: FittedFaces,
    /// Wall-clock seconds of the fit of all faces together.
    pub seconds: f64,
}

impl FitOutcome {
    /// Seconds per face of the fit.
    pub fn seconds_per_face(&self) -> f64 {
        self.seconds / self.faces.rows.len().max(1) as f64
    }

    /// The fit's line of the run-time table.
    pub fn time(&self) -> FitTime {
        FitTime {
            method: self.errors.method.clone(),
            faces: self.faces.rows.len(),
            steps: self.faces.steps,
            seconds_per_face: self.seconds_per_face(),
        }
    }
}

impl<'a> Validation<'a> {
    /// Every validation sample of `dataset`. Fails unless `model` is the dataset's face model,
    /// or if the dataset holds no validation sample.
    pub fn new(dataset: &'a Dataset, model: &'a dyn MorphableModel) -> Result<Self> {
        Self::with_rows(dataset, model, dataset.validation_rows())
    }

    /// The dataset rows `rows` (local indices, e.g. a slice of [`Dataset::validation_rows`]).
    pub fn with_rows(
        dataset: &'a Dataset,
        model: &'a dyn MorphableModel,
        rows: Vec<usize>,
    ) -> Result<Self> {
        dataset.check_model(model)?;
        if rows.is_empty() {
            return Err(AbsFitError::dataset(
                dataset.dir(),
                "has no validation samples to evaluate",
            ));
        }
        let truth = dataset.params_at_range(&rows, EVALUATION_RANGE_DB)?;
        Ok(Self {
            dataset,
            model,
            rows,
            truth,
        })
    }

    /// The dataset.
    pub fn dataset(&self) -> &'a Dataset {
        self.dataset
    }

    /// The dataset rows evaluated.
    pub fn rows(&self) -> &[usize] {
        &self.rows
    }

    /// The true scaled parameters (N × P) with the dynamic-range column at 20 dB.
    pub fn truth(&self) -> &Array2<f32> {
        &self.truth
    }

    /// The errors of `predicted` (N × P scaled, one row per face) on every face, under
    /// `method`.
    pub fn score(&self, method: impl Into<String>, predicted: &Array2<f32>) -> Result<FaceErrors> {
        let layout = self.dataset.manifest().layout;
        face_errors(
            method,
            predicted.view(),
            self.truth.view(),
            &layout,
            self.model,
        )
    }

    /// The Mean (training-set mean) and Random (drawn from the dataset's sampling distribution)
    /// baselines.
    pub fn baselines(&self) -> Result<Vec<FaceErrors>> {
        let dataset = self.dataset;
        let manifest = dataset.manifest();
        let train = dataset
            .arrays()
            .params
            .select(ndarray::Axis(0), &dataset.train_rows());
        let n = self.rows.len();
        let mean = mean_baseline(train.view(), n)?;
        let sampling = dataset.config()?.sampling;
        let random = random_baseline(&manifest.layout, &sampling, n, manifest.seed ^ RANDOM_SEED)?;
        Ok(vec![
            self.score(MEAN_BASELINE, &mean)?,
            self.score(RANDOM_BASELINE, &random)?,
        ])
    }

    /// The encoder's predictions (N × P) from the images at 20 dB, `batch` faces at a time.
    pub fn predict(&self, encoder: &TrainedEncoder, batch: usize) -> Result<Array2<f32>> {
        if batch == 0 {
            return Err(AbsFitError::config(
                "prediction batch",
                "must be at least 1",
            ));
        }
        let p = encoder.layout().len();
        let mut values = Vec::with_capacity(self.rows.len() * p);
        for chunk in self.rows.chunks(batch) {
            let images = self
                .dataset
                .input_images(chunk, encoder.input(), EVALUATION_RANGE_DB)?;
            let predicted = encoder.predict(&images)?.to_dtype(DType::F32)?;
            values.extend(predicted.flatten_all()?.to_vec1::<f32>()?);
        }
        matrix(values, (self.rows.len(), p))
    }

    /// An iterative encoder's predictions (N × P) after each of `how.iterations` iterations
    /// from `start`, from the images at 20 dB, `batch` faces at a time. A batch that stops
    /// early (no column moved by more than `how.tolerance`) keeps its last estimate for the
    /// remaining iterations.
    pub fn iterative_predictions(
        &self,
        encoder: &IterativeEncoder,
        start: IterativeStart<'_>,
        how: &Iterate,
        batch: usize,
    ) -> Result<Vec<Array2<f32>>> {
        if batch == 0 {
            return Err(AbsFitError::config(
                "prediction batch",
                "must be at least 1",
            ));
        }
        let p = encoder.layout().len();
        if let IterativeStart::Encoder(one_pass) = start
            && one_pass.card.layout != *encoder.layout()
        {
            return Err(AbsFitError::config(
                "iterative start",
                "the one-pass encoder predicts another parameter layout than the iterative \
                 encoder reads",
            ));
        }
        let mut values = vec![Vec::with_capacity(self.rows.len() * p); how.iterations];
        for (k, chunk) in self.rows.chunks(batch).enumerate() {
            let images = self
                .dataset
                .input_images(chunk, encoder.input(), EVALUATION_RANGE_DB)?;
            let first = match start {
                IterativeStart::Mean => None,
                IterativeStart::Encoder(one_pass) => {
                    let own =
                        self.dataset
                            .input_images(chunk, one_pass.input(), EVALUATION_RANGE_DB)?;
                    Some(one_pass.predict(&own)?.to_dtype(DType::F32)?)
                }
                IterativeStart::Truth => {
                    let truth = self.truth.slice(s![k * batch..k * batch + chunk.len(), ..]);
                    let truth: Vec<f32> = truth.iter().copied().collect();
                    Some(Tensor::from_vec(truth, (chunk.len(), p), &Device::Cpu)?)
                }
            };
            let history = encoder.iterate(&images, first.as_ref(), how)?;
            for (k, out) in values.iter_mut().enumerate() {
                let estimate = &history[k.min(history.len() - 1)];
                out.extend(estimate.flatten_all()?.to_vec1::<f32>()?);
            }
        }
        values
            .into_iter()
            .map(|v| matrix(v, (self.rows.len(), p)))
            .collect()
    }

    /// An iterative encoder's errors after each iteration from `start`, as
    /// [`Validation::iterative_predictions`] computes them, named "Iterative encoder (…),
    /// iteration k" (with the start after it unless it is the mean face).
    pub fn iterative_rows(
        &self,
        encoder: &IterativeEncoder,
        start: IterativeStart<'_>,
        how: &Iterate,
        batch: usize,
    ) -> Result<Vec<FaceErrors>> {
        let from = match start {
            IterativeStart::Mean => String::new(),
            IterativeStart::Encoder(one_pass) => {
                format!(", from the {} estimate", one_pass.method_name())
            }
            IterativeStart::Truth => ", from the truth (oracle)".into(),
        };
        (self
            .iterative_predictions(encoder, start, how, batch)?
            .iter()
            .enumerate())
        .map(|(k, predicted)| {
            let name = format!("{}, iteration {}{from}", encoder.method_name(), k + 1);
            self.score(name, predicted)
        })
        .collect()
    }

    /// The precision (inverse covariance, P × P row-major, scaled units) of the encoder's
    /// residuals (prediction − truth) on these faces, over the columns of `groups` (0 on every
    /// other row and column), for a fit's prior ([`crate::FitConfig::prior_precision`]): the
    /// covariance C = RᵀR/N of the N residual rows R, with `ridge` × its mean diagonal added
    /// to the diagonal before inverting, so that directions the encoder never errs in stay
    /// finite. Estimate it on faces other than those the fit refines. Errors: fewer faces than
    /// columns, or a ridge that is not finite and positive.
    pub fn residual_precision(
        &self,
        encoder: &TrainedEncoder,
        groups: &[ParamGroup],
        ridge: f64,
        batch: usize,
    ) -> Result<Vec<f64>> {
        let layout = self.dataset.manifest().layout;
        let columns: Vec<usize> = groups.iter().flat_map(|&g| layout.range(g)).collect();
        let (n, k) = (self.rows.len(), columns.len());
        if n <= k {
            return Err(AbsFitError::config(
                "residual precision",
                format!("{n} faces cannot estimate the covariance of {k} columns"),
            ));
        }
        if !(ridge.is_finite() && ridge > 0.0) {
            return Err(AbsFitError::config(
                "residual precision ridge",
                format!("{ridge} must be finite and positive"),
            ));
        }
        let predicted = self.predict(encoder, batch)?;
        let residuals = nalgebra::DMatrix::from_fn(n, k, |i, j| {
            f64::from(predicted[[i, columns[j]]]) - f64::from(self.truth[[i, columns[j]]])
        });
        let mut covariance = residuals.transpose() * &residuals / n as f64;
        let shift = ridge * covariance.diagonal().mean();
        for j in 0..k {
            covariance[(j, j)] += shift;
        }
        let inverse = covariance.cholesky().map(|c| c.inverse()).ok_or_else(|| {
            AbsFitError::config(
                "residual precision",
                "the residual covariance is not positive definite",
            )
        })?;
        let p = layout.len();
        let mut precision = vec![0.0; p * p];
        for (a, &i) in columns.iter().enumerate() {
            for (b, &j) in columns.iter().enumerate() {
                // Symmetric to rounding; made exactly so.
                precision[i * p + j] = 0.5 * (inverse[(a, b)] + inverse[(b, a)]);
            }
        }
        Ok(precision)
    }

    /// The encoder's errors under its paper name ([`TrainedEncoder::method_name`]).
    pub fn encoder_row(&self, encoder: &TrainedEncoder, batch: usize) -> Result<FaceErrors> {
        self.score(encoder.method_name(), &self.predict(encoder, batch)?)
    }

    /// The encoder's predictions refined by a test-time fit through `target`, scored under
    /// `method`. The fit keeps the rendering columns but shows the renderer its own dynamic
    /// range; the row is scored with the prediction's rendering columns, as the unfitted row is.
    pub fn fit_row(
        &self,
        method: impl Into<String>,
        encoder: &TrainedEncoder,
        target: &FitTarget<'_>,
        settings: &FitSettings,
        batch: usize,
        progress: &mut dyn Progress,
    ) -> Result<FitOutcome> {
        let predicted = self.predict(encoder, batch)?;
        let started = Instant::now();
        let faces = fit_faces(
            target,
            self.dataset,
            &self.rows,
            &predicted,
            settings,
            progress,
        )?;
        let seconds = started.elapsed().as_secs_f64();
        let layout = self.dataset.manifest().layout;
        let mut evaluated = faces.fitted.clone();
        let render = s![.., layout.range(ParamGroup::Render)];
        evaluated.slice_mut(render).assign(&predicted.slice(render));
        Ok(FitOutcome {
            errors: self.score(method, &evaluated)?,
            faces,
            seconds,
        })
    }
}

/// The faces of a cosine-similarity study (Figures 5–6) encoded by `encoder`: `shapes` ×
/// `expressions` study faces of the dataset's distribution (sampled pose, or the identity pose
/// when `neutral_pose`), rendered by the physics renderer with the dataset's imaging at 20 dB
/// (the encoder's input kind, row k with seed `seed + k`) and encoded. [`EncodedStudy::study`]
/// compares them class by class, for all shapes or the first few (the paper's 10). Reports one
/// unit per rendered face to `progress`.
#[allow(clippy::too_many_arguments)]
pub fn encoder_cosine_study(
    dataset: &Dataset,
    model: &dyn MorphableModel,
    encoder: &TrainedEncoder,
    classes: (usize, usize),
    neutral_pose: bool,
    seed: u64,
    progress: &mut dyn Progress,
) -> Result<EncodedStudy> {
    let mut studies = encoder_cosine_studies(
        dataset,
        model,
        &[encoder],
        classes,
        neutral_pose,
        seed,
        progress,
    )?;
    studies
        .pop()
        .ok_or_else(|| AbsFitError::config("cosine study", "no encoder was given"))
}

/// [`encoder_cosine_study`] of several encoders of one input kind on the same faces, rendered
/// once: one [`EncodedStudy`] per encoder, in order, whose classes are the same faces (so two
/// encoders' matrices compare class by class, [`CosineMatrix::diagonal_maximum_difference`]).
///
/// [`CosineMatrix::diagonal_maximum_difference`]: super::CosineMatrix::diagonal_maximum_difference
#[allow(clippy::too_many_arguments)]
pub fn encoder_cosine_studies(
    dataset: &Dataset,
    model: &dyn MorphableModel,
    encoders: &[&TrainedEncoder],
    (shapes, expressions): (usize, usize),
    neutral_pose: bool,
    seed: u64,
    progress: &mut dyn Progress,
) -> Result<Vec<EncodedStudy>> {
    let Some(first) = encoders.first() else {
        return Ok(Vec::new());
    };
    if let Some(other) = encoders.iter().find(|e| e.input() != first.input()) {
        return Err(AbsFitError::config(
            "cosine study",
            format!(
                "encoders of {} and {} images: studies on the same faces need one input kind",
                first.input().name(),
                other.input().name()
            ),
        ));
    }
    let layout = dataset.manifest().layout;
    let faces = cosine_study_faces(
        &layout,
        &dataset.config()?.sampling,
        shapes,
        expressions,
        neutral_pose,
        seed,
    )?;
    let labels: Vec<(usize, usize)> = faces.iter().map(|(i, j, _)| (*i, *j)).collect();
    let vectors: Vec<f32> = faces
        .into_iter()
        .flat_map(|(_, _, face)| {
            let mut row = layout.to_vector(&face);
            layout.set_dynamic_range(&mut row, f64::from(EVALUATION_RANGE_DB));
            row
        })
        .collect();
    let params = matrix(vectors, (labels.len(), layout.len()))?;
    let images = physics_images(dataset, model, &params, first.input(), seed, progress)?;
    encoders
        .iter()
        .map(|encoder| {
            let predicted = encoder.predict(&images)?.to_dtype(DType::F32)?;
            let predicted = matrix(
                predicted.flatten_all()?.to_vec1::<f32>()?,
                predicted.dims2()?,
            )?;
            Ok(EncodedStudy {
                predicted,
                labels: labels.clone(),
                layout,
            })
        })
        .collect()
}

/// Physics-renderer images (N, C, H, W) of `kind` of the scaled parameter rows `params` with
/// the dataset's imaging, row k simulated with seed `seed + k`; one unit of progress per face.
pub fn physics_images(
    dataset: &Dataset,
    model: &dyn MorphableModel,
    params: &Array2<f32>,
    kind: InputKind,
    seed: u64,
    progress: &mut dyn Progress,
) -> Result<Tensor> {
    let imaging = dataset.config()?.imaging;
    let layout = dataset.manifest().layout;
    let n = params.nrows();
    progress.start("render faces", n as u64, 0);
    let mut images = Vec::new();
    for start in (0..n).step_by(RENDER_CHUNK) {
        let end = (start + RENDER_CHUNK).min(n);
        let renderer = PhysicsRenderer::new(model, layout, imaging.clone())?
            .with_output(kind)
            .with_seed(seed.wrapping_add(start as u64));
        let chunk = params.slice(s![start..end, ..]);
        images.push(renderer.render(&rows_tensor(chunk.iter().copied(), end - start, &layout)?)?);
        progress.advance((end - start) as u64);
    }
    progress.finish();
    Ok(Tensor::cat(&images, 0)?)
}

/// Per-image render times of the physics renderer (the dataset's imaging, `learned`'s image
/// kind) against `learned`, on the faces of dataset `rows` at the learned renderer's dynamic
/// range, medians of `repeats` timed calls after a warm-up.
pub fn renderer_times(
    dataset: &Dataset,
    model: &dyn MorphableModel,
    learned: LearnedRenderer,
    rows: &[usize],
    repeats: usize,
) -> Result<RenderTimes> {
    let target = FitTarget::learned(learned);
    let layout = dataset.manifest().layout;
    let params = dataset.params_at_range(rows, target.target_db)?;
    let tensor = rows_tensor(params.iter().copied(), rows.len(), &layout)?;
    let physics = PhysicsRenderer::new(model, layout, dataset.config()?.imaging)?
        .with_output(target.kind)
        .with_seed(dataset.manifest().seed);
    render_times(&physics, target.renderer.as_ref(), &tensor, repeats)
}

/// A (rows, P) f32 tensor on the CPU of row-major values.
fn rows_tensor(
    values: impl Iterator<Item = f32>,
    rows: usize,
    layout: &crate::ParamLayout,
) -> Result<Tensor> {
    Ok(Tensor::from_vec(
        values.collect::<Vec<f32>>(),
        (rows, layout.len()),
        &Device::Cpu,
    )?)
}

/// An (rows, cols) matrix of row-major values.
fn matrix(values: Vec<f32>, shape: (usize, usize)) -> Result<Array2<f32>> {
    Array2::from_shape_vec(shape, values)
        .map_err(|e| AbsFitError::config("parameter matrix", e.to_string()))
}
