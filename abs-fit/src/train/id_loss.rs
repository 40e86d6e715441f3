//! The 3D identity loss of Xu et al.'s 3D-ID paper (issue 17, docs/physics.md
//! §9.3): λ_id · mean(1 − cos(E(M̂), E(M))) over a batch, beside the parameter loss, with E a
//! frozen mesh encoder ([`IdLossKind::Learned`]) or the closed-form baseline
//! ([`IdLossKind::Linear`]): the cosine of the shape offsets in vertex space,
//! cos_G(α̂, α) = α̂ᵀGα / √(α̂ᵀGα̂ · αᵀGα) with G = WᵀW / N over the layout's shape columns, or
//! E distilled into a small network of the coefficients ([`IdLossKind::Distilled`], §9.4).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use morphable::LinearMorphableModel;
use serde::{Deserialize, Serialize};

use super::loss::VertexGram;
use crate::dataset::Manifest;
use crate::identity::{
    CoefficientIdentity, DistilConfig, DistilFidelity, DistilledIdentity, MeshIdentityEncoder,
    coefficient_basis, cosine_similarity,
};
use crate::{AbsFitError, Result};

/// Which identity vector the loss compares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IdLossKind {
    /// The shape coefficients, compared by cos_G (no network).
    Linear,
    /// E(M) of the mesh encoder trained in `dir` ([`crate::train::train_mesh_encoder`]) on the
    /// meshes of the predicted and the true coefficients (shape and expression).
    Learned {
        /// The mesh encoder's directory.
        dir: PathBuf,
    },
    /// The mesh encoder in `dir` distilled into a small network of the coefficients when the
    /// term is resolved ([`DistilledIdentity`]): E(M(c)) approximately, at a fraction of the
    /// cost; its fidelity is written beside the trained network.
    Distilled {
        /// The mesh encoder's directory.
        dir: PathBuf,
        /// How it is distilled.
        #[serde(default)]
        distil: DistilConfig,
        /// Compare the identities less their mean over the distillation rows, so that the
        /// cosine measures the offsets from the average identity rather than being near 1
        /// for every pair (a code's common part dominates its raw cosine).
        #[serde(default)]
        centred: bool,
    },
}

impl std::str::FromStr for IdLossKind {
    type Err = AbsFitError;

    /// `linear`, `learned:DIR`, `distilled:DIR` or `distilled-centred:DIR` (default
    /// distillation settings).
    fn from_str(s: &str) -> Result<Self> {
        match s.split_once(':') {
            None if s == "linear" => Ok(Self::Linear),
            Some(("learned", dir)) if !dir.is_empty() => Ok(Self::Learned { dir: dir.into() }),
            Some((kind @ ("distilled" | "distilled-centred"), dir)) if !dir.is_empty() => {
                Ok(Self::Distilled {
                    dir: dir.into(),
                    distil: DistilConfig::default(),
                    centred: kind == "distilled-centred",
                })
            }
            _ => Err(AbsFitError::config(
                "identity loss",
                format!(
                    "'{s}': choose linear, learned:DIR, distilled:DIR or \
                     distilled-centred:DIR (DIR: a mesh encoder's directory)"
                ),
            )),
        }
    }
}

/// An identity-loss term of encoder training: `kind`, weighted by `weight`, for the face model
/// the dataset was drawn with (which configs do not serialise).
#[derive(Clone, Serialize, Deserialize)]
pub struct IdLoss {
    /// The identity vector compared.
    #[serde(flatten)]
    pub kind: IdLossKind,
    /// λ_id: finite and positive.
    pub weight: f64,
    #[serde(skip)]
    model: Option<Arc<dyn LinearMorphableModel>>,
}

impl IdLoss {
    /// The term `weight` · mean(1 − cos) of `kind` for `model`'s meshes.
    pub fn new(kind: IdLossKind, weight: f64, model: Arc<dyn LinearMorphableModel>) -> Self {
        Self {
            kind,
            weight,
            model: Some(model),
        }
    }

    /// Checks the weight and that the model is there.
    pub fn validate(&self) -> Result<()> {
        if !(self.weight.is_finite() && self.weight > 0.0) {
            return Err(AbsFitError::config(
                "identity loss",
                format!("weight = {} must be finite and positive", self.weight),
            ));
        }
        if let IdLossKind::Distilled { distil, .. } = &self.kind {
            distil.validate()?;
        }
        if self.model.is_none() {
            return Err(AbsFitError::config(
                "identity loss",
                "has no face model (configs serialise the choice only): build it with \
                 IdLoss::new(kind, weight, model)",
            ));
        }
        Ok(())
    }

    /// The term as used on batches of `manifest`'s dataset on `device`: the model must be the
    /// dataset's, and a learned encoder must have been trained on it.
    pub fn resolve(&self, manifest: &Manifest, device: &Device) -> Result<ResolvedIdLoss> {
        let model = self.check(manifest)?;
        let layout = manifest.layout;
        let gram = VertexGram::new(model, &layout)?;
        let identity = match &self.kind {
            IdLossKind::Linear => ResolvedIdentity::Linear {
                gram: gram
                    .matrix()
                    .narrow(0, 0, layout.n_shape)?
                    .narrow(1, 0, layout.n_shape)?
                    .contiguous()?
                    .to_device(device)?,
            },
            IdLossKind::Learned { dir } => ResolvedIdentity::Learned(Box::new(
                MeshIdentityEncoder::load(dir, model, device)?
                    .for_coefficients(&coefficient_basis(model, &layout, device)?)?,
            )),
            IdLossKind::Distilled {
                dir,
                distil,
                centred,
            } => {
                let exact = MeshIdentityEncoder::load(dir, model, device)?
                    .for_coefficients(&coefficient_basis(model, &layout, device)?)?;
                let identity = DistilledIdentity::distil(&exact, distil)?;
                ResolvedIdentity::Distilled(Box::new(identity), *centred)
            }
        };
        Ok(ResolvedIdLoss {
            weight: self.weight,
            n_coefficients: gram.n_coefficients(),
            n_shape: layout.n_shape,
            identity,
        })
    }

    /// Checks the weight and that the model is the dataset's, returning the model.
    pub fn check(&self, manifest: &Manifest) -> Result<&dyn LinearMorphableModel> {
        self.validate()?;
        let model = self
            .model
            .as_deref()
            .ok_or_else(|| AbsFitError::config("identity loss", "has no face model"))?;
        super::loss::check_model_is_the_datasets(model, manifest, "identity-loss face model")?;
        Ok(model)
    }

    /// The objective entry of a stage card.
    pub(super) fn objective(&self) -> Result<serde_json::Value> {
        serde_json::to_value(self)
            .map_err(|e| AbsFitError::config("identity loss", format!("cannot be serialised: {e}")))
    }
}

impl fmt::Debug for IdLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdLoss")
            .field("kind", &self.kind)
            .field("weight", &self.weight)
            .field("model", &self.model.as_ref().map(|m| m.name().to_string()))
            .finish()
    }
}

impl PartialEq for IdLoss {
    /// Equal kinds and weights and the same model object (or both without one).
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.weight == other.weight
            && match (&self.model, &other.model) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

enum ResolvedIdentity {
    Linear {
        gram: Tensor,
    },
    Learned(Box<CoefficientIdentity>),
    /// The distilled identity, and whether its identities are compared less their mean.
    Distilled(Box<DistilledIdentity>, bool),
}

/// An [`IdLoss`] ready for batches ([`IdLoss::resolve`]).
pub struct ResolvedIdLoss {
    weight: f64,
    n_coefficients: usize,
    n_shape: usize,
    identity: ResolvedIdentity,
}

impl ResolvedIdLoss {
    /// How closely a distilled identity follows its mesh encoder (`None` for other kinds).
    pub fn fidelity(&self) -> Option<&DistilFidelity> {
        match &self.identity {
            ResolvedIdentity::Distilled(d, _) => Some(d.fidelity()),
            _ => None,
        }
    }

    /// The cosines (B,) between the identities of predicted and true (B, P) scaled vectors;
    /// differentiable in `predicted`.
    pub fn cosines(&self, predicted: &Tensor, truth: &Tensor) -> Result<Tensor> {
        match &self.identity {
            ResolvedIdentity::Linear { gram } => {
                let a = predicted.narrow(1, 0, self.n_shape)?;
                let b = truth.narrow(1, 0, self.n_shape)?.detach();
                let gram = gram.to_dtype(a.dtype())?;
                let ga = a.matmul(&gram)?;
                let gb = b.matmul(&gram)?;
                let dot = (&ga * &b)?.sum(1)?;
                let norms = (((&ga * &a)?.sum(1)? * (&gb * &b)?.sum(1)?)? + 1e-20)?.sqrt()?;
                Ok((dot / norms)?)
            }
            ResolvedIdentity::Learned(identity) => {
                self.network_cosines(&|c| identity.embed(c), predicted, truth)
            }
            ResolvedIdentity::Distilled(identity, false) => {
                self.network_cosines(&|c| identity.embed(c), predicted, truth)
            }
            ResolvedIdentity::Distilled(identity, true) => {
                self.network_cosines(&|c| identity.embed_offset(c), predicted, truth)
            }
        }
    }

    /// The cosines of the identities `embed` gives the coefficient columns of `predicted` and
    /// `truth`.
    fn network_cosines(
        &self,
        embed: &dyn Fn(&Tensor) -> Result<Tensor>,
        predicted: &Tensor,
        truth: &Tensor,
    ) -> Result<Tensor> {
        let coefficients = |params: &Tensor| params.narrow(1, 0, self.n_coefficients);
        let e_hat = embed(&coefficients(predicted)?)?;
        let e = embed(&coefficients(&truth.detach())?)?.detach();
        Ok(cosine_similarity(&e_hat, &e)?.to_dtype(predicted.dtype())?)
    }

    /// λ_id · mean(1 − cos) over the batch (a scalar tensor).
    pub fn loss(&self, predicted: &Tensor, truth: &Tensor) -> Result<Tensor> {
        let cos = self.cosines(predicted, truth)?;
        Ok(((cos.neg()? + 1.0)?.mean_all()? * self.weight)?)
    }
}
