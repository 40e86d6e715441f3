//! The numbers of one Table 1 row: per-group L2 errors of scaled parameters, the mean point
//! distance of the meshes, and the Mean and Random baselines (docs/physics.md §6).

use std::fmt;

use morphable::{MorphableModel, SamplingConfig};
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{FaceErrors, RowIntervals};
use crate::{AbsFitError, FaceDistribution, ParamGroup, ParamLayout, Result};

/// Method name of the Mean baseline (the training-set mean predicted for every sample). Rows of
/// this name are the reference of
/// [`TableOptions::ratio_to_mean`](super::TableOptions::ratio_to_mean).
pub const MEAN_BASELINE: &str = "Baseline (Mean)";
/// Method name of the Random baseline (parameters drawn from the sampling distribution).
pub const RANDOM_BASELINE: &str = "Baseline (Random)";

/// Where a [`Table1Row`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowSource {
    /// Computed here by [`evaluate`].
    Measured,
    /// Published in the paper's Table 1 (Basel Face Model 2019, its own radar and dataset):
    /// a reference for orders of magnitude, not a like-for-like comparison.
    Paper,
}

impl fmt::Display for RowSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RowSource::Measured => "measured",
            RowSource::Paper => "paper (BFM 2019)",
        })
    }
}

/// One row of Table 1: the errors of one method's predictions on a validation set.
///
/// `l2_*` are mean squared errors per element of scaled parameters (dimensionless; see the
/// [module docs](mod@crate::evaluate)). `l2_total` is the mean over every element of the shape,
/// expression, translation and rotation columns together (element-weighted, so the 10 shape
/// columns weigh more than the 3 rotation ones; 23 elements in the paper's layout, whose
/// published totals all satisfy this). The rendering columns (material, antenna size, dynamic range)
/// are *not* in the total, as the paper's total covers the face-model and pose parameters only;
/// their error is reported on its own as `l2_render` (`None` for the paper's rows, which do not
/// have it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table1Row {
    /// The method, such as [`MEAN_BASELINE`] or "Autoencoder (Amp.-Depth)".
    pub method: String,
    /// Where the numbers come from.
    pub source: RowSource,
    /// L2 error of the shape coefficients α.
    pub l2_shape: f64,
    /// L2 error of the expression coefficients γ.
    pub l2_expression: f64,
    /// L2 error of the translation columns (t / 5 cm; t_x, t_y and t_z when the layout has it).
    pub l2_translation: f64,
    /// L2 error of yaw, pitch and roll (angle / 10°).
    pub l2_rotation: f64,
    /// L2 error over all shape, expression, translation and rotation elements.
    pub l2_total: f64,
    /// L2 error of the rendering parameters (mapped onto [−1, 1]); not part of `l2_total`.
    pub l2_render: Option<f64>,
    /// Mean over samples and vertices of |x_i(α̂, γ̂) − x_i(α, γ)| (mm), without pose.
    pub point_distance_mm: f64,
    /// 95 % bootstrap intervals over the validation faces ([`table1`](super::table1)); `None`
    /// for point estimates alone and for the paper's rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intervals: Option<RowIntervals>,
}

/// Checks that a parameter matrix has the layout's columns, at least one row, and finite values.
pub(super) fn check_matrix<T: Copy + Into<f64>>(
    what: &'static str,
    m: ArrayView2<'_, T>,
    layout: &ParamLayout,
) -> Result<()> {
    if m.ncols() != layout.len() {
        return Err(AbsFitError::Shape {
            what,
            expected: format!("{} columns ({})", layout.len(), layout.names().join(" ")),
            actual: format!("{} columns", m.ncols()),
        });
    }
    if m.nrows() == 0 {
        return Err(AbsFitError::Shape {
            what,
            expected: "at least one sample".into(),
            actual: "0 rows".into(),
        });
    }
    if let Some(((row, col), v)) = m
        .indexed_iter()
        .map(|(ij, v)| (ij, (*v).into()))
        .find(|(_, v): &(_, f64)| !v.is_finite())
    {
        return Err(AbsFitError::config(
            what,
            format!("sample {row} column {col} ({}) is {v}", layout.names()[col]),
        ));
    }
    Ok(())
}

/// Checks a predicted and a true matrix: each valid on its own, and the same number of rows.
fn check_pair<T: Copy + Into<f64>>(
    predicted: ArrayView2<'_, T>,
    truth: ArrayView2<'_, T>,
    layout: &ParamLayout,
) -> Result<()> {
    check_matrix("predicted parameters", predicted, layout)?;
    check_matrix("true parameters", truth, layout)?;
    if predicted.nrows() != truth.nrows() {
        return Err(AbsFitError::Shape {
            what: "predicted parameters",
            expected: format!("{} rows (one per true sample)", truth.nrows()),
            actual: format!("{} rows", predicted.nrows()),
        });
    }
    Ok(())
}

/// Per sample, the mean squared error over the columns `cols` (0 for an empty range). With
/// the same number of columns per sample, the mean over samples of these equals the mean over
/// all elements, so a Table 1 cell is their mean and its bootstrap resamples them.
fn per_face_mse<T: Copy + Into<f64>>(
    predicted: ArrayView2<'_, T>,
    truth: ArrayView2<'_, T>,
    cols: std::ops::Range<usize>,
) -> Vec<f64> {
    let n = cols.len();
    predicted
        .rows()
        .into_iter()
        .zip(truth.rows())
        .map(|(p, t)| {
            if n == 0 {
                return 0.0;
            }
            cols.clone()
                .map(|c| {
                    let d = p[c].into() - t[c].into();
                    d * d
                })
                .sum::<f64>()
                / n as f64
        })
        .collect()
}

/// The mean of a non-empty slice.
pub(super) fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The L2 errors of Table 1, per parameter group (dimensionless, scaled parameters).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GroupErrors {
    /// Shape coefficients.
    pub shape: f64,
    /// Expression coefficients.
    pub expression: f64,
    /// Translation columns.
    pub translation: f64,
    /// Yaw, pitch, roll.
    pub rotation: f64,
    /// All shape, expression, translation and rotation elements (render excluded).
    pub total: f64,
    /// Rendering parameters.
    pub render: f64,
}

/// The L2 error of each group of `predicted` against `truth` (N × P scaled matrices in
/// `layout`'s column order). Errors: a matrix with the wrong number of columns, no rows, a
/// non-finite value, or row counts that differ.
pub fn group_errors<T: Copy + Into<f64>>(
    predicted: ArrayView2<'_, T>,
    truth: ArrayView2<'_, T>,
    layout: &ParamLayout,
) -> Result<GroupErrors> {
    check_pair(predicted, truth, layout)?;
    let [shape, expression, translation, rotation, total, render] =
        per_face_groups(predicted, truth, layout).map(|v| mean(&v));
    Ok(GroupErrors {
        shape,
        expression,
        translation,
        rotation,
        total,
        render,
    })
}

/// Per sample, the mean squared error of each group in the order of [`GroupErrors`]: shape,
/// expression, translation, rotation, total, render.
fn per_face_groups<T: Copy + Into<f64>>(
    predicted: ArrayView2<'_, T>,
    truth: ArrayView2<'_, T>,
    layout: &ParamLayout,
) -> [Vec<f64>; 6] {
    let mse = |cols| per_face_mse(predicted, truth, cols);
    [
        mse(layout.range(ParamGroup::Shape)),
        mse(layout.range(ParamGroup::Expression)),
        mse(layout.range(ParamGroup::Translation)),
        mse(layout.range(ParamGroup::Rotation)),
        // The groups are contiguous and in this order: shape first, rotation last.
        mse(layout.range(ParamGroup::Shape).start..layout.range(ParamGroup::Rotation).end),
        mse(layout.range(ParamGroup::Render)),
    ]
}

/// The coefficients (α, γ) of one row, in standard deviations.
fn coefficients<T: Copy + Into<f64>>(
    row: ndarray::ArrayView1<'_, T>,
    layout: &ParamLayout,
) -> (Vec<f64>, Vec<f64>) {
    let take = |g| {
        row.slice(ndarray::s![layout.range(g)])
            .iter()
            .map(|v| (*v).into())
            .collect()
    };
    (take(ParamGroup::Shape), take(ParamGroup::Expression))
}

/// Mean over samples of the point distance (mm) between the model instances of the predicted
/// and the true coefficients, without pose: `morphable::metrics::point_distance`, the mean over
/// vertices of |x_i(α̂, γ̂) − x_i(α, γ)|. Samples are computed in parallel.
///
/// Errors: the matrix checks of [`group_errors`], or a layout with more coefficients than the
/// model has.
pub fn mean_point_distance_mm<T: Copy + Into<f64> + Sync>(
    predicted: ArrayView2<'_, T>,
    truth: ArrayView2<'_, T>,
    layout: &ParamLayout,
    model: &dyn MorphableModel,
) -> Result<f64> {
    check_pair(predicted, truth, layout)?;
    Ok(mean(&point_distances_mm(predicted, truth, layout, model)?))
}

/// The point distance (mm) of every sample; the matrices are checked by the caller.
fn point_distances_mm<T: Copy + Into<f64> + Sync>(
    predicted: ArrayView2<'_, T>,
    truth: ArrayView2<'_, T>,
    layout: &ParamLayout,
    model: &dyn MorphableModel,
) -> Result<Vec<f64>> {
    if layout.n_shape > model.n_shape() || layout.n_expression > model.n_expression() {
        return Err(AbsFitError::Shape {
            what: "parameter layout against the face model",
            expected: format!(
                "at most {} + {} coefficients (model '{}')",
                model.n_shape(),
                model.n_expression(),
                model.name()
            ),
            actual: format!("{} + {}", layout.n_shape, layout.n_expression),
        });
    }
    (0..predicted.nrows())
        .into_par_iter()
        .map(|i| {
            let (shape_hat, expression_hat) = coefficients(predicted.row(i), layout);
            let (shape, expression) = coefficients(truth.row(i), layout);
            let a = model.instance(&shape_hat, &expression_hat)?;
            let b = model.instance(&shape, &expression)?;
            Ok(morphable::metrics::point_distance(&a, &b)?)
        })
        .collect()
}

/// One row of Table 1 for `method`, point estimates only: the [`group_errors`] and the
/// [`mean_point_distance_mm`] of `predicted` against `truth` (N × P scaled matrices in
/// `layout`'s column order; f32 or f64). [`face_errors`] keeps the per-face values, from which
/// [`table1`](super::table1) adds bootstrap intervals.
pub fn evaluate<T: Copy + Into<f64> + Sync>(
    method: impl Into<String>,
    predicted: ArrayView2<'_, T>,
    truth: ArrayView2<'_, T>,
    layout: &ParamLayout,
    model: &dyn MorphableModel,
) -> Result<Table1Row> {
    Ok(face_errors(method, predicted, truth, layout, model)?.row())
}

/// The errors of every face for `method` (the cells of [`evaluate`] before averaging): what
/// bootstrap intervals and paired comparisons resample.
pub fn face_errors<T: Copy + Into<f64> + Sync>(
    method: impl Into<String>,
    predicted: ArrayView2<'_, T>,
    truth: ArrayView2<'_, T>,
    layout: &ParamLayout,
    model: &dyn MorphableModel,
) -> Result<FaceErrors> {
    check_pair(predicted, truth, layout)?;
    let [shape, expression, translation, rotation, total, render] =
        per_face_groups(predicted, truth, layout);
    let distances = point_distances_mm(predicted, truth, layout, model)?;
    let faces = (0..predicted.nrows())
        .map(|i| {
            [
                shape[i],
                expression[i],
                translation[i],
                rotation[i],
                total[i],
                render[i],
                distances[i],
            ]
        })
        .collect();
    Ok(FaceErrors::new(method, faces))
}

/// The Mean baseline: the column means of the training parameters (N_train × P, any layout),
/// predicted for each of `n_val` validation samples (`n_val` × P, f32 like the dataset's
/// parameters; the means are accumulated in f64).
///
/// Errors: no training rows, or a non-finite training value.
pub fn mean_baseline<T: Copy + Into<f64>>(
    train_params: ArrayView2<'_, T>,
    n_val: usize,
) -> Result<Array2<f32>> {
    if train_params.nrows() == 0 {
        return Err(AbsFitError::Shape {
            what: "training parameters of the Mean baseline",
            expected: "at least one sample".into(),
            actual: "0 rows".into(),
        });
    }
    let means: Vec<f64> = train_params
        .axis_iter(Axis(1))
        .map(|col| col.iter().map(|v| (*v).into()).sum::<f64>() / col.len() as f64)
        .collect();
    if let Some(c) = means.iter().position(|m| !m.is_finite()) {
        return Err(AbsFitError::config(
            "training parameters of the Mean baseline",
            format!("column {c} has a non-finite value"),
        ));
    }
    Ok(Array2::from_shape_fn((n_val, means.len()), |(_, c)| {
        means[c] as f32
    }))
}

/// The dataset's face distribution for `sampling`, `layout` and `seed`, validated.
pub(super) fn distribution(
    layout: &ParamLayout,
    sampling: &SamplingConfig,
    seed: u64,
) -> Result<FaceDistribution> {
    let distribution = FaceDistribution {
        sampling: *sampling,
        layout: *layout,
        seed,
    };
    distribution.validate()?;
    Ok(distribution)
}

/// The Random baseline: `n` parameter vectors (n × P scaled, f32) drawn from the sampling
/// distribution — α, γ ~ N(0, 1), translation and angles uniform within `sampling`'s ranges,
/// rendering parameters uniform within `layout.render_ranges` — by the same code that draws a
/// dataset ([`FaceDistribution::draw`]). Use a `seed` other than the dataset's, or the draws repeat
/// its first samples.
///
/// Errors: an invalid sampling config or layout, or the two disagreeing on coefficient counts
/// or on t_z.
pub fn random_baseline(
    layout: &ParamLayout,
    sampling: &SamplingConfig,
    n: usize,
    seed: u64,
) -> Result<Array2<f32>> {
    let config = distribution(layout, sampling, seed)?;
    let rows: Vec<Vec<f32>> = (0..n)
        .into_par_iter()
        .map(|i| layout.to_vector(&config.draw(i).0))
        .collect();
    Ok(Array2::from_shape_fn((n, layout.len()), |(i, c)| {
        rows[i][c]
    }))
}
