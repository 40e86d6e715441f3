//! The cosine-similarity study of Figures 5–6: faces of a few shape and expression classes, and
//! the matrices of mean cosine similarity between the predicted coefficient vectors of classes.

use morphable::{Pose, SamplingConfig};
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use super::metrics::{check_matrix, distribution};
use super::{Bootstrap, Interval};
use crate::{AbsFitError, FaceParams, ParamGroup, ParamLayout, Result};

/// The most faces a cosine study may draw (shapes × expressions).
pub const MAX_STUDY_FACES: usize = 100_000;

/// The faces of the cosine-similarity study (Figures 5–6): `n_shapes` shape instances, each with
/// the same `n_expressions` expressions, as `(shape id, expression id, face)` in shape-major
/// order. Shapes and expressions are drawn once each (N(0, 1)); every instance gets its own
/// sampled pose and rendering parameters, or the identity pose when `neutral_pose` (Figure 5b).
/// All draws come from [`FaceDistribution::draw`](crate::FaceDistribution::draw), so they
/// follow the dataset's distribution, on streams that do not depend on the study's size: the
/// faces of a study of `n` shapes are the first `n × n_expressions` faces of any larger one.
/// The paper uses 10 shapes × 5 expressions. The caller renders and encodes the faces.
///
/// Errors: those of [`random_baseline`](super::random_baseline), no shapes or no expressions,
/// or more than [`MAX_STUDY_FACES`] faces.
pub fn cosine_study_faces(
    layout: &ParamLayout,
    sampling: &SamplingConfig,
    n_shapes: usize,
    n_expressions: usize,
    neutral_pose: bool,
    seed: u64,
) -> Result<Vec<(usize, usize, FaceParams)>> {
    if n_shapes == 0 || n_expressions == 0 {
        return Err(AbsFitError::config(
            "cosine study",
            format!("{n_shapes} shapes × {n_expressions} expressions: both must be positive"),
        ));
    }
    let n_instances = n_shapes
        .checked_mul(n_expressions)
        .filter(|&n| n <= MAX_STUDY_FACES)
        .ok_or_else(|| {
            AbsFitError::config(
                "cosine study",
                format!(
                    "{n_shapes} shapes × {n_expressions} expressions: at most \
                     {MAX_STUDY_FACES} faces (the paper: 10 × 5)"
                ),
            )
        })?;
    let config = distribution(layout, sampling, seed)?;
    // Draw streams that do not depend on the study's size: shape i from stream i, expression j
    // from stream MAX + j, instance (i, j) from stream (2 + i)·MAX + j. So the faces of a study
    // of fewer shapes are the first faces of a larger one.
    const MAX: usize = MAX_STUDY_FACES;
    let shapes: Vec<Vec<f64>> = (0..n_shapes).map(|i| config.draw(i).0.shape).collect();
    let expressions: Vec<Vec<f64>> = (0..n_expressions)
        .map(|j| config.draw(MAX + j).0.expression)
        .collect();
    Ok((0..n_instances)
        .map(|k| {
            let (i, j) = (k / n_expressions, k % n_expressions);
            let drawn = config.draw((2 + i) * MAX + j).0;
            let face = FaceParams {
                shape: shapes[i].clone(),
                expression: expressions[j].clone(),
                pose: if neutral_pose {
                    Pose::identity()
                } else {
                    drawn.pose
                },
                render: drawn.render,
            };
            (i, j, face)
        })
        .collect())
}

/// A K × K cosine-similarity matrix (Figures 5–6): cell (i, j) is the mean cosine similarity
/// between the vectors of the instances of true class i and those of true class j. Pairs of an
/// instance with itself are left out (their similarity is 1 whatever was predicted), so the
/// diagonal is the mean over distinct instances of the same class. The matrix is symmetric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CosineMatrix {
    /// Cell (i, j) is `values[i][j]`, in [−1, 1].
    pub values: Vec<Vec<f64>>,
    /// Instances of each class.
    pub counts: Vec<usize>,
}

impl CosineMatrix {
    /// K, the number of classes.
    pub fn n_classes(&self) -> usize {
        self.counts.len()
    }

    /// Fraction of rows whose largest value lies on the diagonal (a tie with the diagonal
    /// counts as on it): 1 for a model that tells every class apart.
    pub fn diagonal_max_fraction(&self) -> f64 {
        self.diagonal_max_count() as f64 / self.n_classes() as f64
    }

    /// The number of rows whose largest value lies on the diagonal (ties count as on it).
    pub fn diagonal_max_count(&self) -> usize {
        self.above_diagonal().iter().filter(|&&b| b == 0).count()
    }

    /// Per row, the number of off-diagonal cells larger than the diagonal one.
    fn above_diagonal(&self) -> Vec<usize> {
        self.values
            .iter()
            .enumerate()
            .map(|(i, row)| row.iter().filter(|&&v| v > row[i]).count())
            .collect()
    }

    /// The diagonal-maximum fraction that a study of `subset` classes drawn from these would
    /// have on average, with a percentile-bootstrap interval over classes. Row i peaks on the
    /// diagonal of a random subset holding i and `subset − 1` other classes with probability
    /// C(K − 1 − b_i, subset − 1) / C(K − 1, subset − 1), where b_i of its K − 1 off-diagonal
    /// cells exceed its diagonal; the statistic is the mean of these over rows. With
    /// `subset` = K it is [`CosineMatrix::diagonal_max_fraction`]. This puts a study of many
    /// classes (100 shapes) on the scale of the paper's (10), where one class is a tenth of the
    /// answer.
    ///
    /// Errors: `subset` < 2 or above K, or an invalid `bootstrap`.
    pub fn diagonal_maximum(
        &self,
        subset: usize,
        bootstrap: &Bootstrap,
    ) -> Result<DiagonalMaximum> {
        let per_class = self.diagonal_maximum_per_class(subset)?;
        Ok(DiagonalMaximum {
            classes: self.n_classes(),
            subset,
            fraction: super::metrics::mean(&per_class),
            interval: bootstrap.mean_interval(&per_class)?,
        })
    }

    /// This matrix's [`CosineMatrix::diagonal_maximum`] fraction minus `other`'s, two studies
    /// of the same classes (two encoders on the same faces), with its paired
    /// percentile-bootstrap interval: a resample draws classes, and both matrices' rows of
    /// each drawn class. Errors: different class counts, and those of `diagonal_maximum`.
    pub fn diagonal_maximum_difference(
        &self,
        other: &CosineMatrix,
        subset: usize,
        bootstrap: &Bootstrap,
    ) -> Result<(f64, Interval)> {
        if other.n_classes() != self.n_classes() {
            return Err(AbsFitError::config(
                "diagonal maximum difference",
                format!(
                    "studies of {} and {} classes: a paired difference needs the same classes",
                    self.n_classes(),
                    other.n_classes()
                ),
            ));
        }
        let differences: Vec<f64> = self
            .diagonal_maximum_per_class(subset)?
            .into_iter()
            .zip(other.diagonal_maximum_per_class(subset)?)
            .map(|(a, b)| a - b)
            .collect();
        Ok((
            super::metrics::mean(&differences),
            bootstrap.mean_interval(&differences)?,
        ))
    }

    /// Per class, the probability that its row peaks on the diagonal of a random
    /// `subset`-class study holding it ([`CosineMatrix::diagonal_maximum`]).
    fn diagonal_maximum_per_class(&self, subset: usize) -> Result<Vec<f64>> {
        let k = self.n_classes();
        if !(2..=k).contains(&subset) {
            return Err(AbsFitError::config(
                "diagonal maximum",
                format!("a subset of {subset} of {k} classes: it needs 2 to {k}"),
            ));
        }
        Ok(self
            .above_diagonal()
            .into_iter()
            .map(|b| choose_ratio(k - 1 - b, k - 1, subset - 1))
            .collect())
    }
}

/// C(n, r) / C(m, r) for n ≤ m, as a product of r ratios (exact to rounding, no overflow).
fn choose_ratio(n: usize, m: usize, r: usize) -> f64 {
    if r > n {
        return 0.0;
    }
    (0..r).map(|t| (n - t) as f64 / (m - t) as f64).product()
}

/// The diagonal-maximum statistic of one [`CosineMatrix`] on the scale of a `subset`-class
/// study ([`CosineMatrix::diagonal_maximum`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DiagonalMaximum {
    /// Classes K of the matrix.
    pub classes: usize,
    /// Classes of the study it is put on the scale of.
    pub subset: usize,
    /// The expected fraction of rows peaking on the diagonal in a `subset`-class study.
    pub fraction: f64,
    /// Its 95 % percentile-bootstrap interval over the K classes.
    pub interval: Interval,
}

/// The cosine-similarity matrix of `vectors` (N × D, one row per instance) grouped by `labels`
/// (N true class ids in 0..K, K = the largest id + 1). See [`CosineMatrix`].
///
/// Errors: a label count other than N, a class without instances or with a single one (its
/// diagonal cell has no pair), a zero-length or non-finite vector.
pub fn cosine_similarity_matrix<T: Copy + Into<f64>>(
    vectors: ArrayView2<'_, T>,
    labels: &[usize],
) -> Result<CosineMatrix> {
    if labels.len() != vectors.nrows() {
        return Err(AbsFitError::Shape {
            what: "cosine-similarity labels",
            expected: format!("{} labels (one per vector)", vectors.nrows()),
            actual: format!("{} labels", labels.len()),
        });
    }
    let n_classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut counts = vec![0usize; n_classes];
    for &l in labels {
        counts[l] += 1;
    }
    if n_classes == 0 {
        return Err(AbsFitError::Shape {
            what: "cosine-similarity vectors",
            expected: "at least one instance".into(),
            actual: "0 rows".into(),
        });
    }
    if let Some(c) = counts.iter().position(|&n| n < 2) {
        return Err(AbsFitError::config(
            "cosine-similarity labels",
            format!(
                "class {c} has {} instance(s); every class 0..{n_classes} needs at least two",
                counts[c]
            ),
        ));
    }
    let unit: Vec<Vec<f64>> = vectors
        .rows()
        .into_iter()
        .enumerate()
        .map(|(a, row)| {
            let v: Vec<f64> = row.iter().map(|x| (*x).into()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            if !(norm.is_finite() && norm > 0.0) {
                return Err(AbsFitError::config(
                    "cosine-similarity vectors",
                    format!("vector {a} has norm {norm}: its direction is undefined"),
                ));
            }
            Ok(v.into_iter().map(|x| x / norm).collect())
        })
        .collect::<Result<_>>()?;
    let mut sums = Array2::<f64>::zeros((n_classes, n_classes));
    for (a, (ua, &la)) in unit.iter().zip(labels).enumerate() {
        for (b, (ub, &lb)) in unit.iter().zip(labels).enumerate() {
            if a != b {
                sums[(la, lb)] += ua.iter().zip(ub).map(|(x, y)| x * y).sum::<f64>();
            }
        }
    }
    let values = (0..n_classes)
        .map(|i| {
            (0..n_classes)
                .map(|j| {
                    let pairs = if i == j {
                        counts[i] * (counts[i] - 1)
                    } else {
                        counts[i] * counts[j]
                    };
                    sums[(i, j)] / pairs as f64
                })
                .collect()
        })
        .collect();
    Ok(CosineMatrix { values, counts })
}

/// The two matrices of Figures 5–6.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CosineStudy {
    /// Predicted shape vectors grouped by true shape id.
    pub shape: CosineMatrix,
    /// Predicted expression vectors grouped by true expression id.
    pub expression: CosineMatrix,
}

impl CosineStudy {
    /// The two matrices under their labels: `("shape", …)`, then `("expression", …)`.
    pub fn matrices(&self) -> [(&'static str, &CosineMatrix); 2] {
        [("shape", &self.shape), ("expression", &self.expression)]
    }
}

/// The shape and expression [`CosineMatrix`]es of predicted parameter vectors (N × P scaled, in
/// `layout`'s order) of instances labelled `(true shape id, true expression id)`, such as the
/// faces of [`cosine_study_faces`].
pub fn cosine_study<T: Copy + Into<f64>>(
    predicted: ArrayView2<'_, T>,
    labels: &[(usize, usize)],
    layout: &ParamLayout,
) -> Result<CosineStudy> {
    check_matrix(
        "predicted parameters of the cosine study",
        predicted,
        layout,
    )?;
    let shape_ids: Vec<usize> = labels.iter().map(|l| l.0).collect();
    let expression_ids: Vec<usize> = labels.iter().map(|l| l.1).collect();
    let columns = |g| predicted.slice_move(ndarray::s![.., layout.range(g)]);
    Ok(CosineStudy {
        shape: cosine_similarity_matrix(columns(ParamGroup::Shape), &shape_ids)?,
        expression: cosine_similarity_matrix(columns(ParamGroup::Expression), &expression_ids)?,
    })
}

/// The predicted vectors of a cosine study's faces ([`encoder_cosine_study`](super::encoder_cosine_study)),
/// in shape-major order with their `(shape id, expression id)` labels: the whole study, or its
/// first shapes, become a [`CosineStudy`] without rendering again.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedStudy {
    /// Predicted parameters (N × P scaled).
    pub predicted: Array2<f32>,
    /// The true `(shape id, expression id)` of each row.
    pub labels: Vec<(usize, usize)>,
    /// The layout of the rows.
    pub layout: ParamLayout,
}

impl EncodedStudy {
    /// The study of the faces of the first `n_shapes` shapes (all of them when `n_shapes` is
    /// at least the study's). Errors: those of [`cosine_study`].
    pub fn study(&self, n_shapes: usize) -> Result<CosineStudy> {
        let rows: Vec<usize> = (0..self.labels.len())
            .filter(|&r| self.labels[r].0 < n_shapes)
            .collect();
        let labels: Vec<(usize, usize)> = rows.iter().map(|&r| self.labels[r]).collect();
        let predicted = self.predicted.select(ndarray::Axis(0), &rows);
        cosine_study(predicted.view(), &labels, &self.layout)
    }
}
