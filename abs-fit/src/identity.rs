//! 3D identity (the 3D-ID paper of Xu et al., docs/physics.md §9): a mesh
//! autoencoder of Chebyshev spectral graph convolutions (COMA) trained on meshes of the face
//! model in use, whose code — or its leading `identity` entries — is an identity vector E(M).
//!
//! A mesh-encoder directory holds
//!
//! ```text
//! DIR/
//!   mesh-encoder.json  what it was trained on and how well it reconstructs (MeshEncoderCard)
//!   checkpoint/        the facenet checkpoint (config with the graph pyramid, weights, state)
//! ```
//!
//! written by [`crate::train::train_mesh_encoder`] and read by [`MeshIdentityEncoder::load`].

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use facenet::{Checkpoint, MeshAutoencoderConfig, Network};
use morphable::{LinearMorphableModel, MorphableModel};
use serde::{Deserialize, Serialize};

use crate::card::CHECKPOINT_DIR;
use crate::dataset::ModelIdentity;
use crate::{AbsFitError, ParamLayout, Result};

/// The card file of a mesh-encoder directory.
pub const MESH_CARD_FILE: &str = "mesh-encoder.json";
/// Version tag of [`MESH_CARD_FILE`].
pub(crate) const MESH_CARD_FORMAT: &str = "abs-fit-mesh-encoder-1";

/// `mesh-encoder.json`: the face model, the normalisation and the training settings of a mesh
/// encoder, and its reconstruction error on held-out meshes once trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeshEncoderCard {
    /// Version tag, `abs-fit-mesh-encoder-1`.
    pub format: String,
    /// The face model whose meshes it was trained on.
    pub model: ModelIdentity,
    /// Network inputs are (vertices − mean face) / `scale_mm`: the root mean square
    /// displacement of a coordinate over the training distribution (mm).
    pub scale_mm: f64,
    /// Nodes of each level of the graph pyramid, finest (the model's vertices) first.
    pub pyramid: Vec<usize>,
    /// Length of the code.
    pub code: usize,
    /// The leading code entries that make the identity vector.
    pub identity: usize,
    /// The training settings ([`crate::train::MeshEncoderConfig`] as JSON).
    pub training: serde_json::Value,
    /// Reconstruction of held-out meshes, written when training ends.
    pub validation: Option<MeshValidation>,
}

/// Reconstruction errors on held-out meshes (mm).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeshValidation {
    /// Held-out meshes.
    pub meshes: usize,
    /// Mean over meshes and vertices of the Euclidean vertex error.
    pub mean_error_mm: f64,
    /// Root mean square Euclidean vertex error.
    pub rms_error_mm: f64,
    /// The mean Euclidean distance of the held-out meshes' vertices from the mean face: the
    /// error of a code that says nothing.
    pub mean_face_error_mm: f64,
    /// The expected root mean square vertex error of the best linear code of the same length
    /// (the sampled distribution's variance beyond its `code` leading principal directions),
    /// computed in closed form from the model's basis.
    pub best_linear_rms_mm: f64,
}

impl MeshEncoderCard {
    /// Reads `DIR/mesh-encoder.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MESH_CARD_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| AbsFitError::Io {
            path: path.clone(),
            source,
        })?;
        let card: Self = serde_json::from_str(&text).map_err(|e| AbsFitError::ModelDir {
            dir: dir.to_path_buf(),
            reason: format!("{MESH_CARD_FILE} cannot be parsed: {e}"),
        })?;
        if card.format != MESH_CARD_FORMAT {
            return Err(AbsFitError::ModelDir {
                dir: dir.to_path_buf(),
                reason: format!(
                    "{MESH_CARD_FILE} has format '{}', this build reads '{MESH_CARD_FORMAT}'",
                    card.format
                ),
            });
        }
        Ok(card)
    }

    /// Writes `DIR/mesh-encoder.json` atomically, creating `DIR`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| AbsFitError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let text = serde_json::to_string_pretty(self).map_err(|e| AbsFitError::ModelDir {
            dir: dir.to_path_buf(),
            reason: format!("{MESH_CARD_FILE} cannot be serialised: {e}"),
        })?;
        Ok(morphable::export::atomic_write(
            &dir.join(MESH_CARD_FILE),
            text.as_bytes(),
        )?)
    }

    /// Fails unless `model` is the face model the card was trained on.
    pub fn check_model(&self, model: &dyn MorphableModel, dir: &Path) -> Result<()> {
        let identity = ModelIdentity::of(model)?;
        if identity == self.model {
            Ok(())
        } else {
            Err(AbsFitError::ModelDir {
                dir: dir.to_path_buf(),
                reason: format!(
                    "was trained on model '{}' (fingerprint {}), not on '{}' (fingerprint {})",
                    self.model.name, self.model.fingerprint, identity.name, identity.fingerprint
                ),
            })
        }
    }
}

/// A trained, frozen mesh encoder: meshes of its face model (mm) → identity vectors E(M).
#[derive(Debug)]
pub struct MeshIdentityEncoder {
    network: Network<MeshAutoencoderConfig>,
    card: MeshEncoderCard,
    /// The mean face, (1, N, 3) mm, on the network's device.
    mean: Tensor,
}

impl MeshIdentityEncoder {
    /// The encoder of `card` from a trained `network` and the model's mean face; frozen.
    pub(crate) fn from_parts(
        mut network: Network<MeshAutoencoderConfig>,
        card: MeshEncoderCard,
        model: &dyn MorphableModel,
    ) -> Result<Self> {
        network.freeze()?;
        let mean = mean_face(model, network.device())?;
        Ok(Self {
            network,
            card,
            mean,
        })
    }

    /// Reads a mesh encoder trained by [`crate::train::train_mesh_encoder`] on `model`, onto
    /// `device`.
    ///
    /// # Errors
    /// [`AbsFitError::ModelDir`] if the directory holds no mesh encoder, an unfinished one, or
    /// one trained on another face model.
    pub fn load(dir: &Path, model: &dyn MorphableModel, device: &Device) -> Result<Self> {
        let card = MeshEncoderCard::read(dir)?;
        card.check_model(model, dir)?;
        if card.validation.is_none() {
            return Err(AbsFitError::ModelDir {
                dir: dir.to_path_buf(),
                reason: "holds an unfinished mesh encoder: run its training again to finish it"
                    .into(),
            });
        }
        let network = Checkpoint::load(&dir.join(CHECKPOINT_DIR), device)?.network;
        Self::from_parts(network, card, model)
    }

    /// The card: settings and reconstruction errors.
    pub fn card(&self) -> &MeshEncoderCard {
        &self.card
    }

    /// Length of the identity vector.
    pub fn identity_len(&self) -> usize {
        self.card.identity
    }

    /// The network's inputs of meshes `vertices` (B, N, 3) mm.
    fn normalise(&self, vertices: &Tensor) -> Result<Tensor> {
        let n = self.network.module().n_nodes();
        match vertices.dims() {
            [_, v, 3] if *v == n => {}
            dims => {
                return Err(AbsFitError::Shape {
                    what: "meshes for the mesh encoder",
                    expected: format!("(B, {n}, 3) vertices in mm"),
                    actual: format!("{dims:?}"),
                });
            }
        }
        let mean = self.mean.to_dtype(vertices.dtype())?;
        Ok((vertices.broadcast_sub(&mean)? / self.card.scale_mm)?.to_dtype(DType::F32)?)
    }

    /// The identity vectors (B, identity) of meshes `vertices` (B, N, 3) mm: the leading
    /// `identity` entries of the code. Differentiable in `vertices`.
    pub fn embed(&self, vertices: &Tensor) -> Result<Tensor> {
        let code = self.network.module().encode(&self.normalise(vertices)?)?;
        Ok(code.narrow(1, 0, self.identity_len())?)
    }

    /// The encoder specialised to meshes M(c) = mean + c · `basis` of coefficient rows c
    /// (B, P), with `basis` (P, 3N) mm per unit of each coefficient: the finest convolution is
    /// affine in the mesh, so its response to each basis row is tabulated once and a batch's
    /// costs one (B, P) × (P, N · C₀) product instead of K − 1 sparse products over the finest
    /// graph, forward and backward. The identities are E(M(c)) exactly (to rounding).
    ///
    /// # Errors
    /// [`AbsFitError::Shape`] if `basis` is not (P, 3N) for the encoder's N vertices.
    pub fn for_coefficients(self, basis: &Tensor) -> Result<CoefficientIdentity> {
        let module = self.network.module();
        let n = module.n_nodes();
        let p = match basis.dims() {
            [p, v] if *v == 3 * n => *p,
            dims => {
                return Err(AbsFitError::Shape {
                    what: "coefficient basis for the mesh encoder",
                    expected: format!("(P, {}) mm per unit coefficient", 3 * n),
                    actual: format!("{dims:?}"),
                });
            }
        };
        let device = self.network.device();
        let rows = (basis.to_dtype(DType::F32)?.to_device(device)? / self.card.scale_mm)?
            .reshape((p, n, 3))?;
        let offset = module.first_convolution(&Tensor::zeros((1, n, 3), DType::F32, device)?)?;
        let c0 = offset.dim(2)?;
        let response = module
            .first_convolution(&rows)?
            .broadcast_sub(&offset)?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((p, n * c0))?;
        Ok(CoefficientIdentity {
            encoder: self,
            response,
            offset,
        })
    }

    /// The meshes (B, N, 3) mm decoded from the codes of `vertices` (B, N, 3) mm.
    pub fn reconstruct(&self, vertices: &Tensor) -> Result<Tensor> {
        let module = self.network.module();
        let decoded = module.decode(&module.encode(&self.normalise(vertices)?)?)?;
        Ok((decoded * self.card.scale_mm)?.broadcast_add(&self.mean)?)
    }
}

/// A [`MeshIdentityEncoder`] for meshes given by their coefficients
/// ([`MeshIdentityEncoder::for_coefficients`]).
#[derive(Debug)]
pub struct CoefficientIdentity {
    encoder: MeshIdentityEncoder,
    /// The finest convolution's response to each basis row, less its bias: (P, N · C₀).
    response: Tensor,
    /// Its response to the mean face (the bias): (N, 1, C₀).
    offset: Tensor,
}

impl CoefficientIdentity {
    /// The encoder.
    pub fn encoder(&self) -> &MeshIdentityEncoder {
        &self.encoder
    }

    /// The identity vectors (B, identity) of the meshes of coefficient rows `c` (B, P);
    /// differentiable in `c`.
    ///
    /// # Errors
    /// [`AbsFitError::Shape`] if `c` is not (B, P).
    pub fn embed(&self, c: &Tensor) -> Result<Tensor> {
        let p = self.response.dim(0)?;
        let b = match c.dims() {
            [b, q] if *q == p => *b,
            dims => {
                return Err(AbsFitError::Shape {
                    what: "coefficient rows for the mesh encoder",
                    expected: format!("(B, {p})"),
                    actual: format!("{dims:?}"),
                });
            }
        };
        let (n, _, c0) = self.offset.dims3()?;
        let first = c
            .to_dtype(DType::F32)?
            .matmul(&self.response)?
            .reshape((b, n, c0))?
            .transpose(0, 1)?
            .contiguous()?
            .broadcast_add(&self.offset)?;
        let code = self.encoder.network.module().encode_from_first(&first)?;
        Ok(code.narrow(1, 0, self.encoder.identity_len())?)
    }
}

/// The scaled basis of `model` for `layout`'s coefficient columns (its α then γ columns),
/// (P_c, 3N) f32 on `device`.
pub fn coefficient_basis(
    model: &dyn LinearMorphableModel,
    layout: &ParamLayout,
    device: &Device,
) -> Result<Tensor> {
    let (shape, expression) = (model.shape_block(), model.expression_block());
    let n = 3 * model.n_vertices();
    let mut basis = Vec::with_capacity((layout.n_shape + layout.n_expression) * n);
    for k in 0..layout.n_shape {
        basis.extend_from_slice(shape.component(k));
    }
    for k in 0..layout.n_expression {
        basis.extend_from_slice(expression.component(k));
    }
    Ok(Tensor::from_vec(
        basis,
        (layout.n_shape + layout.n_expression, n),
        device,
    )?)
}

/// The mean face of `model` as a (1, N, 3) f32 tensor (mm) on `device`.
pub fn mean_face(model: &dyn MorphableModel, device: &Device) -> Result<Tensor> {
    let flat: Vec<f32> = model
        .mean_mesh()?
        .to_flat()
        .into_iter()
        .map(|c| c as f32)
        .collect();
    let n = flat.len() / 3;
    Ok(Tensor::from_vec(flat, (1, n, 3), device)?)
}

/// The row-wise cosine similarity of two (B, D) tensors, (B,); differentiable (a zero row gives
/// 0, not NaN).
pub fn cosine_similarity(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dot = (a * b)?.sum(1)?;
    let norms = ((a.sqr()?.sum(1)? * b.sqr()?.sum(1)?)? + 1e-20)?.sqrt()?;
    Ok((dot / norms)?)
}
