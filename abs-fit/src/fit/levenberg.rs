//! Levenberg–Marquardt for [`super::fit`] ([`super::Solver::LevenbergMarquardt`]).
//!
//! The loss of a row is a sum of squared residuals: its image differences, each scaled so that
//! their squares sum to the row's image loss (the mean, or the weighted mean over the kept
//! pixels), and √λ times its offsets from the prior's centre on the prior's columns. Each
//! iteration takes, per row, the Jacobian J of those residuals by the optimised columns by
//! forward differences (one render per column), solves
//! (JᵀJ + μ·diag JᵀJ) δ = −Jᵀr and renders the trial p + δ. A trial that lowers the row's loss
//! is accepted and μ shrinks threefold; otherwise the row stays, keeps its Jacobian and μ grows
//! fourfold. Rows are independent; the renders of all rows are batched.

use candle_core::{DType, Tensor};
use nalgebra::{DMatrix, DVector};

use super::LevenbergMarquardt;
use crate::{AbsFitError, Progress, Renderer, Result};

/// What the residuals of a row are made of; the tensors are those [`super::fit`] prepared.
pub(super) struct Problem<'a> {
    pub renderer: &'a dyn Renderer,
    /// Pools the rendered images as the loss compares them.
    pub pool: &'a dyn Fn(Tensor) -> Result<Tensor>,
    /// The pooled targets (B, C, H, W).
    pub target: &'a Tensor,
    /// Per-pixel weights and each row's count of kept pixels, if any.
    pub pixel_weights: Option<&'a (Tensor, f64, Tensor)>,
    /// The prior's centre (B, P).
    pub centre: Vec<Vec<f64>>,
    /// The prior's columns (the coefficients, and the pose with `pose_prior`).
    pub prior_columns: Vec<usize>,
    /// λ of the prior (0: none).
    pub prior_weight: f64,
    /// The optimised columns.
    pub columns: Vec<usize>,
    /// The dtype the renderer is given.
    pub dtype: DType,
}

impl Problem<'_> {
    /// The residuals of parameter rows `params`, row i compared with target row `faces[i]`.
    fn residuals(&self, params: &[Vec<f64>], faces: &[usize]) -> Result<Vec<Vec<f64>>> {
        let device = self.target.device();
        let n = params.len();
        let p = params[0].len();
        let values: Vec<f64> = params.concat();
        let rows = Tensor::from_vec(values, (n, p), device)?.to_dtype(self.dtype)?;
        let images =
            (self.pool)(self.renderer.render(&rows)?.to_device(device)?)?.to_dtype(DType::F64)?;
        let index: Vec<u32> = faces.iter().map(|&f| f as u32).collect();
        let index = Tensor::from_vec(index, n, device)?;
        let pick =
            |t: &Tensor| -> Result<Tensor> { Ok(t.index_select(&index, 0)?.to_dtype(DType::F64)?) };
        let differences = (images - pick(self.target)?)?;
        let scaled = match self.pixel_weights {
            Some((weights, _, kept_rows)) => {
                let per_row = pick(kept_rows)?.sqrt()?.reshape((n, 1, 1, 1))?;
                differences
                    .mul(&pick(weights)?.sqrt()?)?
                    .broadcast_div(&per_row)?
            }
            None => {
                let count = differences.elem_count() / n;
                (differences / (count as f64).sqrt())?
            }
        };
        let mut residuals: Vec<Vec<f64>> = scaled.flatten_from(1)?.to_vec2()?;
        if self.prior_weight > 0.0 {
            let root = self.prior_weight.sqrt();
            for ((r, row), &face) in residuals.iter_mut().zip(params).zip(faces) {
                r.extend(
                    (self.prior_columns.iter()).map(|&j| root * (row[j] - self.centre[face][j])),
                );
            }
        }
        Ok(residuals)
    }
}

/// One row's state.
struct Row {
    params: Vec<f64>,
    residuals: Vec<f64>,
    loss: f64,
    /// The Jacobian at `params` (residuals × optimised columns), until a step is accepted.
    jacobian: Option<DMatrix<f64>>,
    damping: f64,
}

fn squared_norm(r: &[f64]) -> f64 {
    r.iter().map(|v| v * v).sum()
}

/// Runs `steps` iterations from `init` (B rows of P values).
pub(super) fn fit(
    problem: &Problem,
    init: Vec<Vec<f64>>,
    settings: LevenbergMarquardt,
    steps: usize,
    tolerance: f64,
    progress: &mut dyn Progress,
) -> Result<(Vec<Vec<f64>>, Vec<f32>, usize)> {
    let b = init.len();
    let all: Vec<usize> = (0..b).collect();
    let residuals = problem.residuals(&init, &all)?;
    let mut rows: Vec<Row> = (init.into_iter().zip(residuals))
        .map(|(params, residuals)| Row {
            loss: squared_norm(&residuals),
            params,
            residuals,
            jacobian: None,
            damping: settings.damping,
        })
        .collect();
    let h = settings.difference_step;
    let k = problem.columns.len();
    let mean_loss = |rows: &[Row]| rows.iter().map(|r| r.loss).sum::<f64>() / rows.len() as f64;
    let mut losses = vec![mean_loss(&rows) as f32];
    progress.start("fit (Levenberg-Marquardt)", steps as u64, 0);
    let mut done = 0;
    while done < steps {
        // Jacobians of the rows that moved (or start), by forward differences.
        let stale: Vec<usize> = (0..b).filter(|&i| rows[i].jacobian.is_none()).collect();
        if !stale.is_empty() {
            let mut shifted = Vec::with_capacity(stale.len() * k);
            let mut faces = Vec::with_capacity(stale.len() * k);
            for &i in &stale {
                for &j in &problem.columns {
                    let mut row = rows[i].params.clone();
                    row[j] += h;
                    shifted.push(row);
                    faces.push(i);
                }
            }
            let residuals = problem.residuals(&shifted, &faces)?;
            for (n, &i) in stale.iter().enumerate() {
                let r0 = &rows[i].residuals;
                let m = r0.len();
                let jacobian = DMatrix::from_fn(m, k, |row, column| {
                    (residuals[n * k + column][row] - r0[row]) / h
                });
                rows[i].jacobian = Some(jacobian);
            }
        }
        // One damped Gauss-Newton trial per row.
        let trials: Vec<Vec<f64>> = (rows.iter())
            .map(|row| {
                let jacobian = row.jacobian.as_ref().expect("every Jacobian is fresh");
                let r = DVector::from_column_slice(&row.residuals);
                let normal = jacobian.transpose() * jacobian;
                let gradient = jacobian.transpose() * r;
                let largest = normal.diagonal().max().max(f64::MIN_POSITIVE);
                let mut damped = normal.clone();
                for c in 0..k {
                    damped[(c, c)] += row.damping * normal[(c, c)].max(1e-9 * largest);
                }
                let step = damped
                    .cholesky()
                    .map(|c| c.solve(&(-gradient)))
                    .unwrap_or_else(|| DVector::zeros(k));
                let mut trial = row.params.clone();
                for (c, &j) in problem.columns.iter().enumerate() {
                    trial[j] += step[c];
                }
                trial
            })
            .collect();
        let residuals = problem.residuals(&trials, &all)?;
        let mut rejected = false;
        let before = mean_loss(&rows);
        for ((row, trial), residuals) in rows.iter_mut().zip(trials).zip(residuals) {
            let loss = squared_norm(&residuals);
            if loss < row.loss {
                *row = Row {
                    params: trial,
                    residuals,
                    loss,
                    jacobian: None,
                    damping: (row.damping / 3.0).max(1e-9),
                };
            } else {
                row.damping = (row.damping * 4.0).min(1e9);
                rejected = true;
            }
        }
        let value = mean_loss(&rows);
        if !value.is_finite() {
            return Err(AbsFitError::config(
                "fit loss",
                format!("became {value} after {done} Levenberg-Marquardt steps"),
            ));
        }
        losses.push(value as f32);
        done += 1;
        progress.advance(1);
        if !rejected && tolerance > 0.0 && (before - value).abs() <= tolerance * before.abs() {
            break;
        }
    }
    progress.finish();
    Ok((rows.into_iter().map(|r| r.params).collect(), losses, done))
}

/// The parameters (B, P) of `params` rows as a tensor like `like`.
pub(super) fn to_tensor(params: Vec<Vec<f64>>, like: &Tensor) -> Result<Tensor> {
    let (b, p) = like.dims2()?;
    Ok(Tensor::from_vec(params.concat(), (b, p), like.device())?.to_dtype(like.dtype())?)
}
