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

use candle_core::{DType, Device, Module, Tensor};
use facenet::{
    Adam, AdamConfig, Checkpoint, LinearSchedule, MeshAutoencoderConfig, MlpConfig, Network,
};
use morphable::{LinearMorphableModel, MorphableModel};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
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

/// Settings of [`DistilledIdentity::distil`]: the surrogate's widths, its training rows and
/// schedule, and the rows held out to measure its fidelity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistilConfig {
    /// Hidden widths of the surrogate network (SiLU between layers).
    pub hidden: Vec<usize>,
    /// Coefficient rows whose exact identities it is trained on.
    pub samples: usize,
    /// Held-out (truth, estimate) pairs its fidelity is measured on.
    pub held_out: usize,
    /// Passes over the training rows.
    pub epochs: usize,
    /// Rows per optimiser step.
    pub batch: usize,
    /// Adam's rate at the first step, falling linearly to 1 % of it at the last.
    pub learning_rate: f64,
    /// A training row is s · z with z ~ N(0, I) and s uniform in [0, `max_scale`]: it covers
    /// the true faces (s = 1) and the shrunken estimates of encoders.
    pub max_scale: f64,
    /// Seed of the rows, the initial weights and the order of the steps.
    pub seed: u64,
}

impl Default for DistilConfig {
    /// Two hidden layers of 256, 16 384 rows for 40 epochs in batches of 256 from a rate of
    /// 0.001, 1 024 held-out pairs, scales up to 1.5 σ.
    fn default() -> Self {
        Self {
            hidden: vec![256, 256],
            samples: 16_384,
            held_out: 1_024,
            epochs: 40,
            batch: 256,
            learning_rate: 1e-3,
            max_scale: 1.5,
            seed: 0x3D1D_D157,
        }
    }
}

impl DistilConfig {
    /// Checks every count, the rate and the scale.
    pub fn validate(&self) -> Result<()> {
        let err = |reason: String| Err(AbsFitError::config("identity distillation", reason));
        if self.hidden.contains(&0) {
            return err(format!("hidden widths {:?}: each at least 1", self.hidden));
        }
        if self.samples == 0 || self.held_out < 2 || self.epochs == 0 || self.batch == 0 {
            return err(format!(
                "{} samples, {} held out, {} epochs, batch {}: need ≥ 1, ≥ 2, ≥ 1, ≥ 1",
                self.samples, self.held_out, self.epochs, self.batch
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return err(format!(
                "learning rate {} must be finite and positive",
                self.learning_rate
            ));
        }
        if !(self.max_scale.is_finite() && self.max_scale > 0.0) {
            return err(format!(
                "max scale {} must be finite and positive",
                self.max_scale
            ));
        }
        Ok(())
    }
}

/// How closely a [`DistilledIdentity`] follows the mesh encoder it was distilled from, on
/// held-out rows: truths t ~ N(0, I) and estimates 0.6 t + 0.6 z (z ~ N(0, I)), the kind of
/// shrunken, noisy estimate an encoder makes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DistilFidelity {
    /// Held-out pairs.
    pub pairs: usize,
    /// Fraction of the exact identities' variance (over truths and estimates) that the
    /// surrogate's identities leave unexplained.
    pub unexplained_variance: f64,
    /// Mean identity loss 1 − cos(E(M(estimate)), E(M(truth))) through the exact encoder.
    pub exact_loss: f64,
    /// The same through the surrogate.
    pub surrogate_loss: f64,
    /// Mean absolute difference of the two per pair.
    pub loss_abs_error: f64,
    /// Pearson correlation of the two per pair.
    pub loss_correlation: f64,
    /// Mean over pairs of the cosine between the exact and the surrogate gradient of the pair's
    /// loss with respect to the estimate (1: the same direction).
    pub gradient_cosine: f64,
}

/// The identity of a [`CoefficientIdentity`] distilled into a small network of the
/// coefficients: the identity loss only ever sees meshes M(c) of the model's P leading
/// coefficient columns, so E(M(c)) is a smooth function of P numbers, and a network of P
/// inputs learns it from E's own outputs (docs/physics.md §9.4). Its cost is a few small
/// matrix products instead of the mesh encoder's graph convolutions; its fidelity is measured
/// on held-out rows ([`DistilFidelity`]).
#[derive(Debug)]
pub struct DistilledIdentity {
    network: Network<MlpConfig>,
    /// Mean of the exact identities of the training rows, (1, identity).
    mean: Tensor,
    /// Their root mean square deviation (one number): the network predicts
    /// (identity − mean) / spread.
    spread: f64,
    fidelity: DistilFidelity,
}

impl DistilledIdentity {
    /// Distils `exact` by `config` (deterministic: the same seed gives the same weights).
    ///
    /// # Errors
    /// [`AbsFitError::Config`] for invalid settings; candle errors.
    pub fn distil(exact: &CoefficientIdentity, config: &DistilConfig) -> Result<Self> {
        config.validate()?;
        let device = exact.response.device().clone();
        let p = exact.response.dim(0)?;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let normal = |rng: &mut ChaCha8Rng, n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| StandardNormal.sample(rng))
                .map(|z: f64| z as f32)
                .collect()
        };
        let mut rows = normal(&mut rng, config.samples * p);
        for row in rows.chunks_mut(p) {
            let s = (rng.random::<f64>() * config.max_scale) as f32;
            row.iter_mut().for_each(|v| *v *= s);
        }
        let inputs = Tensor::from_vec(rows, (config.samples, p), &device)?;
        let targets = exact_in_batches(exact, &inputs, config.batch)?;
        let mean = targets.mean_keepdim(0)?;
        let spread = targets
            .broadcast_sub(&mean)?
            .sqr()?
            .mean_all()?
            .to_scalar::<f32>()?
            .sqrt() as f64;
        let spread = if spread > 0.0 { spread } else { 1.0 };
        let scaled = (targets.broadcast_sub(&mean)? / spread)?;

        let network = Network::new(
            MlpConfig {
                inputs: p,
                hidden: config.hidden.clone(),
                outputs: mean.dim(1)?,
            },
            config.seed,
            DType::F32,
            &device,
        )?;
        let steps_per_epoch = config.samples.div_ceil(config.batch);
        let total = (config.epochs * steps_per_epoch) as u64;
        let mut adam = Adam::new(
            network.trainable_vars(),
            AdamConfig::new(LinearSchedule::linear(
                config.learning_rate,
                config.learning_rate * 0.01,
                total,
            )),
        )?;
        let mut order: Vec<u32> = (0..config.samples as u32).collect();
        for _ in 0..config.epochs {
            // Fisher-Yates from the run's generator.
            for i in (1..order.len()).rev() {
                order.swap(i, rng.random_range(0..=i));
            }
            for chunk in order.chunks(config.batch) {
                let index = Tensor::from_slice(chunk, chunk.len(), &device)?;
                let x = inputs.index_select(&index, 0)?;
                let y = scaled.index_select(&index, 0)?;
                let loss = network.module().forward(&x)?.sub(&y)?.sqr()?.mean_all()?;
                adam.step(&loss.backward()?)?;
            }
        }
        let truth = Tensor::from_vec(
            normal(&mut rng, config.held_out * p),
            (config.held_out, p),
            &device,
        )?;
        let noise = Tensor::from_vec(
            normal(&mut rng, config.held_out * p),
            (config.held_out, p),
            &device,
        )?;
        let estimate = ((&truth * 0.6)? + (noise * 0.6)?)?;
        let surrogate = |c: &Tensor| -> Result<Tensor> {
            Ok(offsets(&network, spread, c)?.broadcast_add(&mean)?)
        };
        let fidelity = measure_fidelity(exact, &surrogate, &truth, &estimate, config.batch)?;
        Ok(Self {
            network,
            mean,
            spread,
            fidelity,
        })
    }

    /// The identity vectors (B, identity) of coefficient rows `c` (B, P); differentiable in `c`.
    ///
    /// # Errors
    /// [`AbsFitError::Shape`] if `c` is not (B, P).
    pub fn embed(&self, c: &Tensor) -> Result<Tensor> {
        Ok(self.embed_offset(c)?.broadcast_add(&self.mean)?)
    }

    /// The identity vectors of `c` less the mean identity of the distillation rows, (B,
    /// identity); differentiable in `c`.
    ///
    /// # Errors
    /// [`AbsFitError::Shape`] if `c` is not (B, P).
    pub fn embed_offset(&self, c: &Tensor) -> Result<Tensor> {
        let p = self.network.config().inputs;
        if !matches!(c.dims(), [_, q] if *q == p) {
            return Err(AbsFitError::Shape {
                what: "coefficient rows for the distilled identity",
                expected: format!("(B, {p})"),
                actual: format!("{:?}", c.dims()),
            });
        }
        offsets(&self.network, self.spread, c)
    }

    /// How closely it follows the exact encoder on held-out rows.
    pub fn fidelity(&self) -> &DistilFidelity {
        &self.fidelity
    }
}

/// The identities less their mean that a distilled `network` of output scale `spread` gives
/// coefficient rows `c` (B, P).
fn offsets(network: &Network<MlpConfig>, spread: f64, c: &Tensor) -> Result<Tensor> {
    Ok((network.module().forward(&c.to_dtype(DType::F32)?)? * spread)?)
}

/// How closely `surrogate` follows `exact` on held-out `truth` and `estimate` rows (H, P).
fn measure_fidelity(
    exact: &CoefficientIdentity,
    surrogate: &dyn Fn(&Tensor) -> Result<Tensor>,
    truth: &Tensor,
    estimate: &Tensor,
    batch: usize,
) -> Result<DistilFidelity> {
    let h = truth.dim(0)?;
    let (mut exact_losses, mut surrogate_losses) = (Vec::new(), Vec::new());
    let (mut gradient_cosines, mut exact_codes) = (Vec::new(), Vec::new());
    let mut residual = 0.0f64;
    for start in (0..h).step_by(batch) {
        let n = batch.min(h - start);
        let (t, e) = (truth.narrow(0, start, n)?, estimate.narrow(0, start, n)?);
        let a = PairLosses::of(&|c| exact.embed(c), &t, &e)?;
        let b = PairLosses::of(surrogate, &t, &e)?;
        residual += (&b.codes - &a.codes)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f32>()? as f64;
        let cos = cosine_similarity(&a.gradient, &b.gradient)?.to_dtype(DType::F64)?;
        gradient_cosines.extend(cos.to_vec1::<f64>()?);
        exact_losses.extend(a.losses);
        surrogate_losses.extend(b.losses);
        exact_codes.push(a.codes);
    }
    let all = Tensor::cat(&exact_codes, 0)?;
    let total = all
        .broadcast_sub(&all.mean_keepdim(0)?)?
        .sqr()?
        .sum_all()?
        .to_scalar::<f32>()? as f64;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (me, ms) = (mean(&exact_losses), mean(&surrogate_losses));
    let (mut sxy, mut sxx, mut syy, mut abs) = (0.0, 0.0, 0.0, 0.0);
    for (x, y) in exact_losses.iter().zip(&surrogate_losses) {
        sxy += (x - me) * (y - ms);
        sxx += (x - me) * (x - me);
        syy += (y - ms) * (y - ms);
        abs += (x - y).abs();
    }
    Ok(DistilFidelity {
        pairs: h,
        unexplained_variance: residual / total.max(f64::MIN_POSITIVE),
        exact_loss: me,
        surrogate_loss: ms,
        loss_abs_error: abs / h as f64,
        loss_correlation: sxy / (sxx * syy).sqrt().max(f64::MIN_POSITIVE),
        gradient_cosine: mean(&gradient_cosines),
    })
}

/// `exact`'s identities of `inputs` (N, P), computed `batch` rows at a time, detached.
fn exact_in_batches(exact: &CoefficientIdentity, inputs: &Tensor, batch: usize) -> Result<Tensor> {
    let n = inputs.dim(0)?;
    let mut parts = Vec::with_capacity(n.div_ceil(batch));
    for start in (0..n).step_by(batch) {
        parts.push(
            exact
                .embed(&inputs.narrow(0, start, batch.min(n - start))?)?
                .detach(),
        );
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// Per-pair identity losses 1 − cos(E(estimate), E(truth)) through one identity map, their
/// gradients with respect to the estimates, and the identities of estimates then truths.
struct PairLosses {
    losses: Vec<f64>,
    gradient: Tensor,
    codes: Tensor,
}

impl PairLosses {
    fn of(
        embed: &dyn Fn(&Tensor) -> Result<Tensor>,
        truth: &Tensor,
        estimate: &Tensor,
    ) -> Result<Self> {
        let var = candle_core::Var::from_tensor(estimate)?;
        let code_e = embed(var.as_tensor())?;
        let code_t = embed(truth)?.detach();
        let loss = (cosine_similarity(&code_e, &code_t)?.neg()? + 1.0)?;
        let gradient = loss
            .sum_all()?
            .backward()?
            .get(var.as_tensor())
            .cloned()
            .ok_or_else(|| {
                AbsFitError::config("identity distillation", "no gradient reached the estimates")
            })?;
        Ok(Self {
            losses: loss.to_dtype(DType::F64)?.to_vec1::<f64>()?,
            gradient,
            codes: Tensor::cat(&[code_e.detach(), code_t], 0)?,
        })
    }
}
