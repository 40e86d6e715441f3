//! The parameter term of the encoder and autoencoder losses: the paper's L2 or the
//! geometry-aware vertex loss.

use std::fmt;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use morphable::LinearMorphableModel;
use serde::{Deserialize, Serialize};

use crate::dataset::{Manifest, ModelIdentity};
use crate::{AbsFitError, ParamLayout, Result};

/// The parameter term of the encoder and autoencoder losses.
///
/// Serialises as the choice only (`"l2"` or `{"geometry": {"weight": w}}`): the face model is
/// never written, so a deserialised [`ParamLoss::Geometry`] carries no model and is refused by
/// [`ParamLoss::validate`] until one is attached with [`ParamLoss::geometry`].
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamLoss {
    /// The paper's L2: the mean squared error over all P scaled columns.
    #[default]
    L2,
    /// The geometry-aware loss of coefficient regression (Richardson et al., "Learning Detailed
    /// Face Reconstruction from a Single Image", §4.1, eq. 4): for the coefficient columns, `weight` times the mean squared vertex
    /// displacement (mm²) between the meshes of the predicted and the true coefficients,
    /// |W (ĉ − c)|² / N_vertices with W the model's scaled basis restricted to the layout's
    /// α and γ columns ([`VertexGram`]); plus the mean squared error over the pose and
    /// rendering columns.
    Geometry {
        /// Weight (1/mm²) of the vertex term against the pose/render L2; finite and positive.
        weight: f64,
        /// The face model the dataset was drawn with (not serialised).
        #[serde(skip)]
        model: Option<Arc<dyn LinearMorphableModel>>,
    },
}

impl ParamLoss {
    /// The geometry-aware loss of `model`'s meshes with the vertex term weighted by `weight`
    /// (1/mm²).
    pub fn geometry(model: Arc<dyn LinearMorphableModel>, weight: f64) -> Self {
        Self::Geometry {
            weight,
            model: Some(model),
        }
    }

    /// Whether this is the paper's plain L2.
    pub fn is_l2(&self) -> bool {
        matches!(self, Self::L2)
    }

    /// Checks the weight (finite and positive) and that a geometry loss carries its model.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::L2 => Ok(()),
            Self::Geometry { weight, model } => {
                if !(weight.is_finite() && *weight > 0.0) {
                    return Err(AbsFitError::config(
                        "geometry loss",
                        format!("weight = {weight} must be finite and positive"),
                    ));
                }
                if model.is_none() {
                    return Err(AbsFitError::config(
                        "geometry loss",
                        "has no face model (configs serialise the choice only): build it with \\
                         ParamLoss::geometry(model, weight)",
                    ));
                }
                Ok(())
            }
        }
    }

    /// The loss as used on batches of `manifest`'s dataset: the model must be the one that drew
    /// the dataset, and must have at least the layout's coefficient counts.
    pub(super) fn resolve(&self, manifest: &Manifest) -> Result<ResolvedParamLoss> {
        self.validate()?;
        match self {
            Self::L2 => Ok(ResolvedParamLoss::L2),
            Self::Geometry { weight, model } => {
                let model = model
                    .as_deref()
                    .ok_or_else(|| AbsFitError::config("geometry loss", "has no face model"))?;
                check_model_is_the_datasets(model, manifest, "geometry-loss face model")?;
                Ok(ResolvedParamLoss::Geometry {
                    weight: *weight,
                    gram: VertexGram::new(model, &manifest.layout)?,
                })
            }
        }
    }

    /// The objective entry of a stage card: absent for L2 (so runs from before this option
    /// resume), the serialised choice otherwise.
    pub(super) fn insert_objective(&self, objective: &mut serde_json::Value) -> Result<()> {
        if self.is_l2() {
            return Ok(());
        }
        let value = serde_json::to_value(self).map_err(|e| {
            AbsFitError::config("parameter loss", format!("cannot be serialised: {e}"))
        })?;
        if let serde_json::Value::Object(map) = objective {
            map.insert("param_loss".into(), value);
        }
        Ok(())
    }
}

impl fmt::Debug for ParamLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::L2 => f.write_str("L2"),
            Self::Geometry { weight, model } => f
                .debug_struct("Geometry")
                .field("weight", weight)
                .field("model", &model.as_ref().map(|m| m.name().to_string()))
                .finish(),
        }
    }
}

impl PartialEq for ParamLoss {
    /// Equal choices with equal weights and the same model object (or both without one).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::L2, Self::L2) => true,
            (
                Self::Geometry { weight, model },
                Self::Geometry {
                    weight: w,
                    model: m,
                },
            ) => {
                weight == w
                    && match (model, m) {
                        (None, None) => true,
                        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                        _ => false,
                    }
            }
            _ => false,
        }
    }
}

/// The Gram matrix G = WᵀW / N (mm²) of a face model's scaled basis W (3N × P_c) restricted to
/// a layout's coefficient columns (its α then γ columns, the first P_c = n_shape + n_expression
/// columns of the flat vector): for a coefficient difference d, dᵀ G d is the mean over the N
/// vertices of the squared displacement (mm²) between the two meshes. The model is linear, so
/// the mean and the pose do not enter.
#[derive(Debug, Clone)]
pub struct VertexGram {
    gram: Tensor,
    n_coefficients: usize,
    n_params: usize,
}

impl VertexGram {
    /// G of `model` for the coefficient columns of `layout`, computed once in f64 and stored as
    /// a (P_c, P_c) f32 tensor on the CPU. Fails if the model has fewer components or no
    /// vertices.
    pub fn new(model: &dyn LinearMorphableModel, layout: &ParamLayout) -> Result<Self> {
        let (shape, expression) = (model.shape_block(), model.expression_block());
        if shape.n_components() < layout.n_shape || expression.n_components() < layout.n_expression
        {
            return Err(AbsFitError::Shape {
                what: "face model components vs the parameter layout",
                expected: format!(
                    "at least {} shape and {} expression components",
                    layout.n_shape, layout.n_expression
                ),
                actual: format!(
                    "model '{}' with {} and {}",
                    model.name(),
                    shape.n_components(),
                    expression.n_components()
                ),
            });
        }
        let n_vertices = model.n_vertices();
        if n_vertices == 0 {
            return Err(AbsFitError::config(
                "geometry loss",
                format!("model '{}' has no vertices", model.name()),
            ));
        }
        let columns: Vec<&[f32]> = (0..layout.n_shape)
            .map(|k| shape.component(k))
            .chain((0..layout.n_expression).map(|k| expression.component(k)))
            .collect();
        let p_c = columns.len();
        let mut gram = vec![0.0f32; p_c * p_c];
        for i in 0..p_c {
            for j in i..p_c {
                let dot: f64 = columns[i]
                    .iter()
                    .zip(columns[j])
                    .map(|(&a, &b)| a as f64 * b as f64)
                    .sum();
                let g = (dot / n_vertices as f64) as f32;
                gram[i * p_c + j] = g;
                gram[j * p_c + i] = g;
            }
        }
        Ok(Self {
            gram: Tensor::from_vec(gram, (p_c, p_c), &Device::Cpu)?,
            n_coefficients: p_c,
            n_params: layout.len(),
        })
    }

    /// G, (P_c, P_c), mm² per squared standard deviation.
    pub fn matrix(&self) -> &Tensor {
        &self.gram
    }

    /// P_c: the number of coefficient columns.
    pub fn n_coefficients(&self) -> usize {
        self.n_coefficients
    }

    /// The mean squared vertex displacement (mm²) between the meshes of each row of
    /// `predicted` and `truth`, (B,): both (B, P) scaled parameter vectors of the layout G was
    /// built for. Differentiable in both.
    pub fn mean_squared_displacement(&self, predicted: &Tensor, truth: &Tensor) -> Result<Tensor> {
        for t in [predicted, truth] {
            match t.dims() {
                [_, p] if *p == self.n_params => {}
                dims => {
                    return Err(AbsFitError::Shape {
                        what: "geometry-loss parameter vectors",
                        expected: format!("(B, {})", self.n_params),
                        actual: format!("{dims:?}"),
                    });
                }
            }
        }
        let d = (predicted.narrow(1, 0, self.n_coefficients)?
            - truth.narrow(1, 0, self.n_coefficients)?)?;
        let gram = self.gram.to_dtype(d.dtype())?.to_device(d.device())?;
        Ok(d.matmul(&gram)?.mul(&d)?.sum(1)?)
    }
}

/// A [`ParamLoss`] ready for batches: the geometry variant with its Gram matrix.
pub(super) enum ResolvedParamLoss {
    L2,
    Geometry { weight: f64, gram: VertexGram },
}

impl ResolvedParamLoss {
    /// The parameter loss of predicted vs true (B, P) scaled vectors (a scalar tensor).
    pub(super) fn loss(&self, predicted: &Tensor, truth: &Tensor) -> Result<Tensor> {
        match self {
            Self::L2 => mse(predicted, truth),
            Self::Geometry { weight, gram } => {
                let vertex = (gram
                    .mean_squared_displacement(predicted, truth)?
                    .mean_all()?
                    * *weight)?;
                let p_c = gram.n_coefficients;
                let rest = gram.n_params - p_c;
                let other = mse(
                    &predicted.narrow(1, p_c, rest)?,
                    &truth.narrow(1, p_c, rest)?,
                )?;
                Ok((vertex + other)?)
            }
        }
    }
}

/// Fails unless `model` is the face model that drew the dataset of `manifest`; `what` names
/// the model's role in the error.
pub(super) fn check_model_is_the_datasets(
    model: &dyn LinearMorphableModel,
    manifest: &Manifest,
    what: &'static str,
) -> Result<()> {
    let identity = ModelIdentity::of(model)?;
    if identity == manifest.model {
        return Ok(());
    }
    Err(AbsFitError::Shape {
        what,
        expected: format!(
            "model '{}' (fingerprint {}) of the dataset",
            manifest.model.name, manifest.model.fingerprint
        ),
        actual: format!(
            "model '{}' (fingerprint {})",
            identity.name, identity.fingerprint
        ),
    })
}

/// Mean squared error over every element.
pub(super) fn mse(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok((a - b)?.sqr()?.mean_all()?)
}
