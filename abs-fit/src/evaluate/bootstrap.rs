//! Uncertainty of Table 1: per-face errors, percentile-bootstrap intervals over validation faces,
//! and paired comparisons of two methods on the same faces (docs/physics.md §6.5).
//!
//! Every cell of Table 1 is a mean over validation faces of a per-face value (a face's mean
//! squared error over a group's columns, or its point distance), so one bootstrap resample —
//! faces drawn with replacement — gives one value of every cell of every row. The same
//! resamples serve all rows, which makes the ratio to the Mean baseline and the difference of
//! two methods *paired*: both are computed on the same faces in each resample, and the variation
//! the faces share cancels.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::metrics::mean;
use super::{MEAN_BASELINE, RowSource, Table1Row};
use crate::{AbsFitError, Result};

/// A cell of Table 1 with a value per face.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cell {
    /// L2 of the shape coefficients.
    Shape,
    /// L2 of the expression coefficients.
    Expression,
    /// L2 of the translation columns.
    Translation,
    /// L2 of yaw, pitch and roll.
    Rotation,
    /// L2 over every shape, expression, translation and rotation element.
    Total,
    /// L2 of the rendering parameters.
    Render,
    /// Point distance (mm).
    PointDistance,
}

/// The number of [`Cell`]s.
const N_CELLS: usize = 7;

impl Cell {
    /// Every cell, in the order of Table 1's columns.
    pub const ALL: [Cell; N_CELLS] = [
        Cell::Shape,
        Cell::Expression,
        Cell::Translation,
        Cell::Rotation,
        Cell::Total,
        Cell::Render,
        Cell::PointDistance,
    ];

    /// The CSV column of the cell: `l2_shape`, …, `point_distance_mm`.
    pub fn column(self) -> &'static str {
        match self {
            Cell::Shape => "l2_shape",
            Cell::Expression => "l2_expression",
            Cell::Translation => "l2_translation",
            Cell::Rotation => "l2_rotation",
            Cell::Total => "l2_total",
            Cell::Render => "l2_render",
            Cell::PointDistance => "point_distance_mm",
        }
    }

    /// A reader's name: "shape L2", …, "point distance (mm)".
    pub fn label(self) -> &'static str {
        match self {
            Cell::Shape => "shape L2",
            Cell::Expression => "expression L2",
            Cell::Translation => "translation L2",
            Cell::Rotation => "rotation L2",
            Cell::Total => "total L2",
            Cell::Render => "rendering L2",
            Cell::PointDistance => "point distance (mm)",
        }
    }
}

/// The errors of one method on every validation face, in the order of [`Cell::ALL`]: the
/// values that Table 1 averages (from [`face_errors`](super::face_errors)).
#[derive(Debug, Clone, PartialEq)]
pub struct FaceErrors {
    /// The method, as in its Table 1 row.
    pub method: String,
    faces: Vec<[f64; N_CELLS]>,
}

impl FaceErrors {
    /// `faces[i]` holds face i's value of each cell, in the order of [`Cell::ALL`] (as
    /// [`face_errors`](super::face_errors) computes them; other sources of per-face errors can
    /// be compared the same way).
    pub fn new(method: impl Into<String>, faces: Vec<[f64; N_CELLS]>) -> Self {
        Self {
            method: method.into(),
            faces,
        }
    }

    /// The number of faces.
    pub fn n_faces(&self) -> usize {
        self.faces.len()
    }

    /// Face i's value of every cell.
    pub fn values(&self, cell: Cell) -> Vec<f64> {
        self.faces.iter().map(|f| f[cell as usize]).collect()
    }

    /// The mean over faces of `cell`: the Table 1 value.
    pub fn mean(&self, cell: Cell) -> f64 {
        mean(&self.values(cell))
    }

    /// The Table 1 row of the point estimates, without intervals.
    pub fn row(&self) -> Table1Row {
        let m = |c| self.mean(c);
        Table1Row {
            method: self.method.clone(),
            source: RowSource::Measured,
            l2_shape: m(Cell::Shape),
            l2_expression: m(Cell::Expression),
            l2_translation: m(Cell::Translation),
            l2_rotation: m(Cell::Rotation),
            l2_total: m(Cell::Total),
            l2_render: Some(m(Cell::Render)),
            point_distance_mm: m(Cell::PointDistance),
            intervals: None,
        }
    }
}

/// A two-sided confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower end.
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

impl Interval {
    /// Half the width: what Markdown tables print after "±".
    pub fn half_width(&self) -> f64 {
        0.5 * (self.high - self.low)
    }

    /// Whether `value` lies in the interval (ends included).
    pub fn contains(&self, value: f64) -> bool {
        (self.low..=self.high).contains(&value)
    }
}

/// The percentile-bootstrap intervals of one measured Table 1 row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowIntervals {
    /// The interval of each cell, in the order of [`Cell::ALL`].
    pub cells: [Interval; N_CELLS],
    /// The interval of the point distance over that of the Mean baseline on the same faces
    /// (paired); `None` without a Mean baseline row, and for the Mean baseline itself.
    pub ratio_to_mean: Option<Interval>,
}

impl RowIntervals {
    /// The interval of `cell`.
    pub fn cell(&self, cell: Cell) -> Interval {
        self.cells[cell as usize]
    }
}

/// How intervals are computed: `resamples` percentile-bootstrap resamples of the validation
/// faces at confidence `level`, drawn from `seed` (the same seed gives the same intervals).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bootstrap {
    /// Resamples (the default 2 000 puts the 2.5 % and 97.5 % percentiles on 50 resamples each).
    pub resamples: usize,
    /// Confidence level in (0, 1): 0.95 for 95 % intervals.
    pub level: f64,
    /// Seed of the resampling.
    pub seed: u64,
}

impl Default for Bootstrap {
    /// 2 000 resamples, 95 %.
    fn default() -> Self {
        Self {
            resamples: 2000,
            level: 0.95,
            seed: 0xB007_57A9,
        }
    }
}

impl Bootstrap {
    fn validate(&self) -> Result<()> {
        if self.resamples < 100 || !(self.level > 0.0 && self.level < 1.0) {
            return Err(AbsFitError::config(
                "bootstrap",
                format!(
                    "{} resamples at level {}: at least 100 resamples and a level in (0, 1)",
                    self.resamples, self.level
                ),
            ));
        }
        Ok(())
    }

    /// The percentile-bootstrap interval of the mean of `values` (independent units, such as
    /// faces or classes). Errors: no values, or an invalid bootstrap.
    pub fn mean_interval(&self, values: &[f64]) -> Result<Interval> {
        self.validate()?;
        if values.is_empty() {
            return Err(AbsFitError::config("bootstrap", "no values to resample"));
        }
        let resampled = self
            .counts(values.len())
            .par_iter()
            .map(|c| weighted_mean(values, c))
            .collect();
        Ok(self.interval(resampled))
    }

    /// The multiplicity of every face in each resample of `n` faces (resample-major).
    fn counts(&self, n: usize) -> Vec<Vec<u32>> {
        (0..self.resamples)
            .into_par_iter()
            .map(|b| {
                let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
                rng.set_stream(b as u64);
                let mut counts = vec![0u32; n];
                for _ in 0..n {
                    counts[rng.random_range(0..n)] += 1;
                }
                counts
            })
            .collect()
    }

    /// The percentile interval of `values` (one per resample).
    fn interval(&self, mut values: Vec<f64>) -> Interval {
        values.sort_by(f64::total_cmp);
        let tail = 0.5 * (1.0 - self.level);
        let at = |q: f64| {
            // Linear interpolation between order statistics.
            let x = q * (values.len() - 1) as f64;
            let (i, frac) = (x.floor() as usize, x.fract());
            let next = values[(i + 1).min(values.len() - 1)];
            values[i] + frac * (next - values[i])
        };
        Interval {
            low: at(tail),
            high: at(1.0 - tail),
        }
    }
}

/// The resampled mean of per-face `values` under `counts`.
fn weighted_mean(values: &[f64], counts: &[u32]) -> f64 {
    values
        .iter()
        .zip(counts)
        .map(|(v, &c)| v * f64::from(c))
        .sum::<f64>()
        / values.len() as f64
}

/// Checks that every row scores the same number of faces (at least one).
fn check_faces(rows: &[&FaceErrors]) -> Result<usize> {
    let n = rows.first().map_or(0, |r| r.n_faces());
    if n == 0 {
        return Err(AbsFitError::config("bootstrap", "no faces to resample"));
    }
    if let Some(row) = rows.iter().find(|r| r.n_faces() != n) {
        return Err(AbsFitError::Shape {
            what: "per-face errors of a paired comparison",
            expected: format!("{n} faces, as '{}'", rows[0].method),
            actual: format!("{} faces for '{}'", row.n_faces(), row.method),
        });
    }
    Ok(n)
}

/// Table 1 with intervals: each row's point estimates and, for every cell, its
/// percentile-bootstrap interval over faces. When a row is the [`MEAN_BASELINE`], every row also
/// gets the paired interval of its point distance over the Mean baseline's.
///
/// All rows must score the same faces in the same order (those of one
/// [`Validation`](super::Validation)). Errors: no rows, rows of different face counts, an
/// invalid `bootstrap`.
pub fn table1(rows: &[FaceErrors], bootstrap: &Bootstrap) -> Result<Vec<Table1Row>> {
    bootstrap.validate()?;
    let n = check_faces(&rows.iter().collect::<Vec<_>>())?;
    let counts = bootstrap.counts(n);
    let mean_row = rows.iter().find(|r| r.method == MEAN_BASELINE);
    let resampled = |values: &[f64]| -> Vec<f64> {
        counts
            .par_iter()
            .map(|c| weighted_mean(values, c))
            .collect()
    };
    let mean_distances = mean_row.map(|r| resampled(&r.values(Cell::PointDistance)));
    Ok(rows
        .iter()
        .map(|errors| {
            let per_cell = Cell::ALL.map(|cell| resampled(&errors.values(cell)));
            // The Mean baseline's own ratio is 1 on every resample: no interval to show.
            let reference = mean_distances
                .as_ref()
                .filter(|_| errors.method != MEAN_BASELINE);
            let ratio_to_mean = reference.map(|reference| {
                let own = &per_cell[Cell::PointDistance as usize];
                bootstrap.interval(own.iter().zip(reference).map(|(a, b)| a / b).collect())
            });
            let cells = per_cell.map(|values| bootstrap.interval(values));
            Table1Row {
                intervals: Some(RowIntervals {
                    cells,
                    ratio_to_mean,
                }),
                ..errors.row()
            }
        })
        .collect())
}

/// The difference of one cell between two methods on the same faces, with its paired
/// bootstrap interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedDifference {
    /// The first method (A).
    pub a: String,
    /// The second method (B).
    pub b: String,
    /// The compared cell.
    pub cell: Cell,
    /// mean(A) − mean(B) over the faces.
    pub difference: f64,
    /// Its percentile-bootstrap interval (faces resampled, both methods on the same resample).
    pub interval: Interval,
}

impl PairedDifference {
    /// Whether the interval excludes zero: the sign of the difference is resolved.
    pub fn resolved(&self) -> bool {
        !self.interval.contains(0.0)
    }

    /// "A lower", "A higher" or "not resolved at this budget" (for errors, lower is better).
    pub fn verdict(&self) -> &'static str {
        match (self.resolved(), self.difference < 0.0) {
            (false, _) => "not resolved at this budget",
            (true, true) => "A lower",
            (true, false) => "A higher",
        }
    }
}

/// The paired difference of `cell` between methods `a` and `b` (A − B) on the same faces.
///
/// Errors: different face counts, an invalid `bootstrap`.
pub fn paired_difference(
    a: &FaceErrors,
    b: &FaceErrors,
    cell: Cell,
    bootstrap: &Bootstrap,
) -> Result<PairedDifference> {
    check_faces(&[a, b])?;
    let differences: Vec<f64> = a
        .values(cell)
        .iter()
        .zip(b.values(cell))
        .map(|(x, y)| x - y)
        .collect();
    Ok(PairedDifference {
        a: a.method.clone(),
        b: b.method.clone(),
        cell,
        difference: mean(&differences),
        interval: bootstrap.mean_interval(&differences)?,
    })
}
