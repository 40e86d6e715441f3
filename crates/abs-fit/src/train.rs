//! The three training stages of the paper (§3.3–3.5), each resumable and observed:
//!
//! 1. [`train_encoder`]: the face encoder (two ResNets with `3 · tanh` heads for shape and
//!    expression, an AlexNet — or a ResNet, [`PoseNetwork`] — for translation, rotation and the
//!    rendering columns) regresses the scaled [`ParamLayout`] vector of an image; loss = mean
//!    squared error over all P columns (the paper's L2), or optionally the geometry-aware
//!    [`ParamLoss::Geometry`] (mean squared vertex displacement of the coefficients);
//!    D ~ U(15, 30) dB per example ([`RangePolicy::TRAIN`]).
//! 2. [`train_decoder`]: the learned renderer, a reversed ResNet from the parameter vector to the
//!    image at D = 15 dB ([`DECODER_RANGE_DB`]); loss = mean squared error over the pixels.
//! 3. [`train_autoencoder`]: the encoder, starting from its supervised weights, trained through
//!    the frozen decoder with L = L_image + λ·L_params (eq. 1).
//!
//! Every stage works in a directory:
//!
//! ```text
//! DIR/
//!   model.json    what the network means (ModelCard: role, image kind and size, layout, dataset)
//!   checkpoint/   the facenet checkpoint (config, weights, Adam state, training state)
//! ```
//!
//! Calling a stage again on the same directory resumes from the checkpoint and continues bit for
//! bit as the uninterrupted run would have; the same directory is what [`TrainedEncoder::load`]
//! and [`LearnedRenderer::load`] read. A run is interrupted deliberately with
//! [`TrainSchedule::stop_after_epochs`] (the learning-rate schedule stays that of
//! [`TrainSchedule::epochs`]); a finished run with a constant learning rate can be extended by
//! raising `epochs`. Training runs in f32 on the CPU.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use facenet::{
    AdamConfig, AlexNetConfig, BranchedEncoderConfig, Checkpoint, ComputeDevice, DecoderConfig,
    Encoder, EpochReport, ImageDecoder, ImageShape, LinearSchedule, Network, NetworkConfig,
    OutputGroups, PoseNetwork, ResNetConfig, StepReport, TrainObserver, Trainer, TrainerConfig,
};
use morphable::LinearMorphableModel;
use serde::{Deserialize, Serialize};

use crate::dataset::{BatchConfig, Dataset, InputKind, Manifest, ModelIdentity, RangePolicy};
use crate::render::LearnedRenderer;
use crate::render::Renderer;
use crate::{AbsFitError, ParamGroup, ParamLayout, Progress, Result};

/// The dynamic range (dB) of the images the learned renderer is trained on and renders (§3.4).
pub const DECODER_RANGE_DB: f32 = 15.0;

/// Version tag of `model.json`.
const CARD_FORMAT: &str = "abs-fit-model-1";
/// The model description file of a stage directory.
pub const MODEL_FILE: &str = "model.json";
/// The facenet checkpoint inside a stage directory.
pub const CHECKPOINT_DIR: &str = "checkpoint";

/// A learning rate per optimiser step that falls linearly from `start` to `end` over the first
/// `ramp_fraction` of the epochs and then stays at `end` (§3.5: 0.01 → 0.001 over 150 of 200
/// epochs for the encoder, a constant 0.001 for the decoder and the autoencoder).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LearningRate {
    /// Learning rate of the first step (Adam's step size, in parameter units).
    pub start: f64,
    /// Learning rate after the ramp.
    pub end: f64,
    /// Fraction of the epochs, in [0, 1], over which the rate ramps (0: constant `end`).
    pub ramp_fraction: f64,
}

impl LearningRate {
    /// The paper's encoder schedule: 0.01 → 0.001 over the first 75 % of the epochs.
    pub const PAPER_ENCODER: LearningRate = LearningRate {
        start: 0.01,
        end: 0.001,
        ramp_fraction: 0.75,
    };

    /// A constant rate (the paper's decoder and autoencoder: 0.001).
    pub fn constant(lr: f64) -> Self {
        Self {
            start: lr,
            end: lr,
            ramp_fraction: 0.0,
        }
    }

    /// Checks that both rates are finite and positive and the fraction lies in [0, 1].
    pub fn validate(&self) -> Result<()> {
        for (field, lr) in [("start", self.start), ("end", self.end)] {
            if !(lr.is_finite() && lr > 0.0) {
                return Err(AbsFitError::config(
                    "learning rate",
                    format!("{field} = {lr} must be finite and positive"),
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.ramp_fraction) {
            return Err(AbsFitError::config(
                "learning rate",
                format!("ramp_fraction = {} must lie in [0, 1]", self.ramp_fraction),
            ));
        }
        Ok(())
    }

    /// The per-step schedule of a run of `epochs` epochs of `steps_per_epoch` steps: the ramp
    /// covers `round(ramp_fraction · epochs)` whole epochs.
    pub fn schedule(&self, epochs: usize, steps_per_epoch: usize) -> LinearSchedule {
        let ramp_epochs = (self.ramp_fraction * epochs as f64).round() as u64;
        if ramp_epochs == 0 {
            LinearSchedule::constant(self.end)
        } else {
            LinearSchedule::linear(self.start, self.end, ramp_epochs * steps_per_epoch as u64)
        }
    }
}

/// How long and in what batches a stage trains.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainSchedule {
    /// Epochs of the whole run (the learning-rate ramp is a fraction of these).
    pub epochs: usize,
    /// Examples per optimiser step (the paper: 50 for the encoders, 150 for the decoder).
    pub batch_size: usize,
    /// The learning rate.
    pub learning_rate: LearningRate,
    /// Seed of the initial weights, the shuffling and the per-example dynamic ranges.
    pub seed: u64,
    /// Write a checkpoint every this many epochs (and after the last one); at least 1.
    pub checkpoint_every_epochs: usize,
    /// End this call once this many epochs are done in total (a time-sliced run; call the stage
    /// again to continue). `None` trains to `epochs`.
    pub stop_after_epochs: Option<usize>,
    /// Where the network trains. The dataset stays in memory on the CPU and each batch is
    /// copied to the device; checkpoints are device-independent, so a run may resume elsewhere.
    #[serde(default)]
    pub device: ComputeDevice,
}

impl TrainSchedule {
    /// `epochs` epochs of batches of `batch_size` at `learning_rate`, seed 0, a checkpoint every
    /// epoch, no interruption, on the CPU.
    pub fn new(epochs: usize, batch_size: usize, learning_rate: LearningRate) -> Self {
        Self {
            epochs,
            batch_size,
            learning_rate,
            seed: 0,
            checkpoint_every_epochs: 1,
            stop_after_epochs: None,
            device: ComputeDevice::Cpu,
        }
    }

    /// Checks the counts (all at least 1) and the learning rate.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("epochs", self.epochs),
            ("batch size", self.batch_size),
            ("checkpoint interval", self.checkpoint_every_epochs),
        ] {
            if value == 0 {
                return Err(AbsFitError::config(name, "must be at least 1"));
            }
        }
        if self.stop_after_epochs == Some(0) {
            return Err(AbsFitError::config(
                "stop_after_epochs",
                "must be at least 1 (or None)",
            ));
        }
        self.learning_rate.validate()
    }

    /// The facenet trainer settings for `n_samples` training examples. The last batch is dropped
    /// only when it would hold a single example (BatchNorm needs two values per channel).
    fn trainer_config(&self, n_samples: usize) -> TrainerConfig {
        let drop_last = n_samples % self.batch_size == 1 && n_samples > 1;
        let steps = steps_per_epoch(n_samples, self.batch_size, drop_last);
        let schedule = self.learning_rate.schedule(self.epochs, steps);
        TrainerConfig {
            drop_last,
            ..TrainerConfig::new(self.epochs, self.batch_size, AdamConfig::new(schedule))
                .with_seed(self.seed)
        }
    }
}

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
    /// The geometry-aware loss of coefficient regression (coarse-fine-depth-rendering-layer.txt,
    /// §4.1, eq. 4): for the coefficient columns, `weight` times the mean squared vertex
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
    fn resolve(&self, manifest: &Manifest) -> Result<ResolvedParamLoss> {
        self.validate()?;
        match self {
            Self::L2 => Ok(ResolvedParamLoss::L2),
            Self::Geometry { weight, model } => {
                let model = model
                    .as_deref()
                    .ok_or_else(|| AbsFitError::config("geometry loss", "has no face model"))?;
                let identity = ModelIdentity::of(model)?;
                if identity != manifest.model {
                    return Err(AbsFitError::Shape {
                        what: "geometry-loss face model vs the dataset's",
                        expected: format!(
                            "model '{}' (fingerprint {})",
                            manifest.model.name, manifest.model.fingerprint
                        ),
                        actual: format!(
                            "model '{}' (fingerprint {})",
                            identity.name, identity.fingerprint
                        ),
                    });
                }
                Ok(ResolvedParamLoss::Geometry {
                    weight: *weight,
                    gram: VertexGram::new(model, &manifest.layout)?,
                })
            }
        }
    }

    /// The objective entry of a stage card: absent for L2 (so runs from before this option
    /// resume), the serialised choice otherwise.
    fn insert_objective(&self, objective: &mut serde_json::Value) -> Result<()> {
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
enum ResolvedParamLoss {
    L2,
    Geometry { weight: f64, gram: VertexGram },
}

impl ResolvedParamLoss {
    /// The parameter loss of predicted vs true (B, P) scaled vectors (a scalar tensor).
    fn loss(&self, predicted: &Tensor, truth: &Tensor) -> Result<Tensor> {
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

/// Settings of [`train_encoder`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderTrainConfig {
    /// Network sizes ([`facenet::Preset::Paper`]: ResNet-50s and the published AlexNet).
    pub preset: facenet::Preset,
    /// Epochs, batches, learning rate, seed.
    pub schedule: TrainSchedule,
    /// Dynamic range per example (the paper: [`RangePolicy::TRAIN`], D ~ U(15, 30) dB).
    pub range: RangePolicy,
    /// The loss on the parameter vector (the paper: [`ParamLoss::L2`]).
    #[serde(default)]
    pub param_loss: ParamLoss,
    /// The network of the pose and rendering columns (the paper: [`PoseNetwork::AlexNet`]).
    #[serde(default)]
    pub pose_network: PoseNetwork,
}

impl EncoderTrainConfig {
    /// The paper's settings (§3.5) at network size `preset`: 200 epochs, batches of 50,
    /// 0.01 → 0.001 over 150 epochs, D ~ U(15, 30) dB, the L2 parameter loss, an AlexNet for
    /// the pose.
    pub fn paper(preset: facenet::Preset) -> Self {
        Self {
            preset,
            schedule: TrainSchedule::new(200, 50, LearningRate::PAPER_ENCODER),
            range: RangePolicy::TRAIN,
            param_loss: ParamLoss::L2,
            pose_network: PoseNetwork::AlexNet,
        }
    }

    /// Checks the schedule and the parameter loss.
    pub fn validate(&self) -> Result<()> {
        self.schedule.validate()?;
        self.param_loss.validate()
    }
}

/// Settings of [`train_decoder`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DecoderTrainConfig {
    /// Network size of the reversed ResNet.
    pub preset: facenet::Preset,
    /// Epochs, batches, learning rate, seed.
    pub schedule: TrainSchedule,
}

impl DecoderTrainConfig {
    /// The paper's settings (§3.5): 300 epochs, batches of 150, a constant 0.001.
    pub fn paper(preset: facenet::Preset) -> Self {
        Self {
            preset,
            schedule: TrainSchedule::new(300, 150, LearningRate::constant(0.001)),
        }
    }
}

/// Settings of [`train_autoencoder`]; the encoder's architecture is that of the encoder it
/// starts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoencoderTrainConfig {
    /// Epochs, batches, learning rate, seed (the seed drives shuffling and D draws only).
    pub schedule: TrainSchedule,
    /// λ of L = L_image + λ·L_params (the paper: 1); finite and non-negative.
    pub lambda: f64,
    /// Dynamic range per input example (the paper: [`RangePolicy::TRAIN`]); the decoder's target
    /// is always at [`DECODER_RANGE_DB`].
    pub range: RangePolicy,
    /// L_params (the paper: [`ParamLoss::L2`]).
    #[serde(default)]
    pub param_loss: ParamLoss,
}

impl AutoencoderTrainConfig {
    /// The paper's settings (§3.4–3.5): 300 epochs, batches of 50, a constant 0.001, λ = 1,
    /// the L2 parameter loss.
    pub fn paper() -> Self {
        Self {
            schedule: TrainSchedule::new(300, 50, LearningRate::constant(0.001)),
            lambda: 1.0,
            range: RangePolicy::TRAIN,
            param_loss: ParamLoss::L2,
        }
    }

    /// Checks the schedule, λ and the parameter loss.
    pub fn validate(&self) -> Result<()> {
        self.schedule.validate()?;
        self.param_loss.validate()?;
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return Err(AbsFitError::config(
                "autoencoder lambda",
                format!("{} must be finite and non-negative", self.lambda),
            ));
        }
        Ok(())
    }
}

/// What a network of a stage directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelRole {
    /// Images → parameter vectors.
    Encoder,
    /// Parameter vectors → images (a learned renderer).
    Decoder,
}

/// `model.json`: what a trained network maps from and to, so that it can be used without the
/// settings it was trained with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// Version tag, `abs-fit-model-1`.
    pub format: String,
    /// Encoder or decoder.
    pub role: ModelRole,
    /// The stage that trained it: `encoder`, `decoder` or `autoencoder`.
    pub stage: String,
    /// The images: the encoder's input, the decoder's output.
    pub image: InputKind,
    /// Image height and width in pixels, as stored in the dataset.
    pub height: usize,
    /// See [`ModelCard::height`].
    pub width: usize,
    /// Nearest-neighbour upsampling factor applied to images before an encoder (facenet's
    /// networks need at least 32 pixels a side); 1 for decoders.
    pub upsample: usize,
    /// The parameter vector's layout.
    pub layout: ParamLayout,
    /// The dynamic range (dB) of a decoder's images; `None` for an encoder.
    pub dynamic_range_db: Option<f32>,
    /// The dataset it was trained on.
    pub dataset: Manifest,
    /// The loss settings beyond the schedule (λ, ranges), compared when a run resumes.
    pub objective: serde_json::Value,
}

impl ModelCard {
    /// Reads `DIR/model.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MODEL_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| AbsFitError::Io {
            path: path.clone(),
            source,
        })?;
        let card: ModelCard = serde_json::from_str(&text).map_err(|e| AbsFitError::ModelDir {
            dir: dir.to_path_buf(),
            reason: format!("{MODEL_FILE} cannot be parsed: {e}"),
        })?;
        if card.format != CARD_FORMAT {
            return Err(AbsFitError::ModelDir {
                dir: dir.to_path_buf(),
                reason: format!(
                    "{MODEL_FILE} has format '{}', this build reads '{CARD_FORMAT}'",
                    card.format
                ),
            });
        }
        Ok(card)
    }

    /// Writes `DIR/model.json`, creating `DIR`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let io = |path: &Path, source| AbsFitError::Io {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let path = dir.join(MODEL_FILE);
        let text = serde_json::to_string_pretty(self).map_err(|e| AbsFitError::ModelDir {
            dir: dir.to_path_buf(),
            reason: format!("{MODEL_FILE} cannot be serialised: {e}"),
        })?;
        std::fs::write(&path, text).map_err(|e| io(&path, e))
    }

    /// Fails unless the card describes a network of `role`.
    pub(crate) fn expect_role(&self, role: ModelRole, dir: &Path) -> Result<()> {
        if self.role == role {
            Ok(())
        } else {
            Err(AbsFitError::ModelDir {
                dir: dir.to_path_buf(),
                reason: format!("holds a {:?}, expected a {role:?}", self.role),
            })
        }
    }

    /// The network shape of the images (C, H, W) as they are stored (before upsampling).
    pub fn image_shape(&self) -> ImageShape {
        ImageShape::new(self.image.channels(), self.height, self.width)
    }
}

/// The smallest power of two that brings both image sides to facenet's minimum (32 pixels).
fn upsample_factor(height: usize, width: usize) -> usize {
    let min = ResNetConfig::MIN_INPUT_SIZE.max(AlexNetConfig::MIN_INPUT_SIZE);
    let mut factor = 1;
    while height.min(width) * factor < min {
        factor *= 2;
    }
    factor
}

/// Runs an encoder on images (B, C, H, W) after upsampling them `factor`× (a power of two).
fn encode_upsampled(
    network: &Network<BranchedEncoderConfig>,
    images: &Tensor,
    factor: usize,
    train: bool,
) -> Result<Tensor> {
    let mut x = images.clone();
    let mut f = factor;
    while f > 1 {
        x = facenet::upsample_nearest_2x(&x)?;
        f /= 2;
    }
    Ok(network.encode(&x, train)?)
}

/// A trained face encoder: images → scaled parameter vectors.
#[derive(Debug)]
pub struct TrainedEncoder {
    network: Network<BranchedEncoderConfig>,
    card: ModelCard,
}

impl TrainedEncoder {
    /// The parameters (B, P) of images (B, C, H, W) of the card's kind and size, in evaluation
    /// mode (BatchNorm running statistics; nothing changes).
    pub fn predict(&self, images: &Tensor) -> Result<Tensor> {
        let expected = self.card.image_shape();
        let dims = images.dims();
        if dims.len() != 4 || dims[1..] != [expected.channels, expected.height, expected.width] {
            return Err(AbsFitError::Shape {
                what: "encoder input images",
                expected: format!("(B, {expected}) {} images", self.card.image.name()),
                actual: format!("{dims:?}"),
            });
        }
        let images = images
            .to_dtype(self.network.dtype())?
            .to_device(self.network.device())?;
        encode_upsampled(&self.network, &images, self.card.upsample, false)
    }

    /// The network.
    pub fn network(&self) -> &Network<BranchedEncoderConfig> {
        &self.network
    }

    /// What the encoder maps from and to.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The images it reads.
    pub fn input(&self) -> InputKind {
        self.card.image
    }

    /// The layout of the vectors it predicts.
    pub fn layout(&self) -> &ParamLayout {
        &self.card.layout
    }

    /// Writes the encoder to `dir` (`model.json` and a weights-only checkpoint).
    pub fn save(&self, dir: &Path) -> Result<()> {
        save_model(dir, &self.card, &self.network)
    }

    /// Reads an encoder written by [`TrainedEncoder::save`] or by a training stage.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let card = ModelCard::read(dir)?;
        card.expect_role(ModelRole::Encoder, dir)?;
        let network = Checkpoint::load(&dir.join(CHECKPOINT_DIR), device)?.network;
        Ok(Self { network, card })
    }
}

/// Writes `model.json` and a weights-only checkpoint of `network` to `dir`.
pub(crate) fn save_model<C: NetworkConfig>(
    dir: &Path,
    card: &ModelCard,
    network: &Network<C>,
) -> Result<()> {
    card.write(dir)?;
    Ok(Checkpoint::save(
        &dir.join(CHECKPOINT_DIR),
        network,
        None,
        None,
    )?)
}

/// Bridges facenet's [`TrainObserver`] to a [`Progress`], counting optimiser steps, and stops
/// the run after a given number of epochs.
struct ProgressObserver<'a> {
    progress: &'a mut dyn Progress,
    stop_after_epochs: Option<usize>,
    task: &'static str,
}

impl TrainObserver for ProgressObserver<'_> {
    fn on_step(&mut self, _report: &StepReport) {
        self.progress.advance(1);
    }

    fn on_epoch(&mut self, report: &EpochReport) -> facenet::Progress {
        self.progress.message(&format!(
            "{}: epoch {} loss {:.4e} ({:.1} s, {:.0} examples/s)",
            self.task,
            report.epoch + 1,
            report.mean_loss,
            report.seconds,
            report.samples_per_second
        ));
        match self.stop_after_epochs {
            Some(stop) if report.epoch + 1 >= stop => facenet::Progress::Stop,
            _ => facenet::Progress::Continue,
        }
    }
}

/// Where a stage's network starts when there is no checkpoint to resume.
enum Start<C: NetworkConfig> {
    /// Fresh weights from a config and seed.
    Fresh(C),
    /// The given network (the autoencoder starts from the trained encoder).
    From(Network<C>),
}

impl<C: NetworkConfig> Start<C> {
    /// The architecture the stage asks for.
    fn config(&self) -> &C {
        match self {
            Self::Fresh(c) => c,
            Self::From(n) => n.config(),
        }
    }
}

/// A network config as JSON, to compare architectures.
fn config_json<C: NetworkConfig>(config: &C) -> Result<serde_json::Value> {
    serde_json::to_value(config)
        .map_err(|e| AbsFitError::config("network config", format!("cannot be serialised: {e}")))
}

/// One stage: resume or start a trainer in `dir`, run it with `loss` over `n_samples` samples,
/// and return the trained network. `loss` errors are kept typed: the first one ends the run and
/// is returned as it was.
fn run_stage<C, F>(
    dir: &Path,
    card: &ModelCard,
    start: Start<C>,
    schedule: &TrainSchedule,
    n_samples: usize,
    mut loss: F,
    progress: &mut dyn Progress,
) -> Result<Network<C>>
where
    C: NetworkConfig,
    F: FnMut(&Network<C>, &[usize], u64) -> Result<Tensor>,
{
    schedule.validate()?;
    let trainer_config = schedule.trainer_config(n_samples);
    let checkpoint = dir.join(CHECKPOINT_DIR);
    let device = schedule.device.open()?;
    let trainer = if Checkpoint::exists(&checkpoint) {
        let saved = ModelCard::read(dir)?;
        check_resumable(dir, &saved, card)?;
        let saved_config = Checkpoint::read_config::<C>(&checkpoint)?;
        if config_json(&saved_config)? != config_json(start.config())? {
            return Err(AbsFitError::ModelDir {
                dir: dir.to_path_buf(),
                reason: "the checkpoint's network architecture differs from the one asked for"
                    .into(),
            });
        }
        let mut trainer = Trainer::<C>::resume(&checkpoint, &device)?;
        let saved_trainer = trainer.config().clone();
        if (TrainerConfig {
            epochs: trainer_config.epochs,
            ..saved_trainer.clone()
        }) != trainer_config
        {
            return Err(AbsFitError::ModelDir {
                dir: dir.to_path_buf(),
                reason: format!(
                    "was trained with {saved_trainer:?}, now asked for {trainer_config:?}: only \
                     the epoch count may change, and only where the learning-rate schedule \
                     does not depend on it (use stop_after_epochs to interrupt a run)"
                ),
            });
        }
        trainer.set_epochs(trainer_config.epochs)?;
        trainer
    } else {
        card.write(dir)?;
        let network = match start {
            Start::Fresh(config) => Network::new(config, schedule.seed, DType::F32, &device)?,
            Start::From(network) if network.device().same_device(&device) => network,
            Start::From(network) => network.to_device(&device)?,
        };
        Trainer::new(network, trainer_config)?
    };
    let mut trainer = trainer.with_checkpoints(&checkpoint, schedule.checkpoint_every_epochs)?;

    let steps_per_epoch = {
        let c = trainer.config();
        steps_per_epoch(n_samples, c.batch_size, c.drop_last)
    };
    let done = trainer.epochs_done();
    let target = schedule
        .stop_after_epochs
        .map_or(schedule.epochs, |s| s.min(schedule.epochs));
    progress.start(
        stage_task(&card.stage),
        (target.max(done) * steps_per_epoch) as u64,
        (done * steps_per_epoch) as u64,
    );
    let mut failure: Option<AbsFitError> = None;
    let mut observer = ProgressObserver {
        progress: &mut *progress,
        stop_after_epochs: schedule.stop_after_epochs,
        task: stage_task(&card.stage),
    };
    let outcome = if done >= target {
        Ok(())
    } else {
        trainer
            .run(
                n_samples,
                |network, batch| {
                    loss(network, batch.indices, batch.seed).map_err(|e| {
                        let text = e.to_string();
                        failure.get_or_insert(e);
                        facenet::FacenetError::Training(text)
                    })
                },
                &mut observer,
            )
            .map(|_| ())
    };
    progress.finish();
    if let Some(e) = failure {
        return Err(e);
    }
    outcome?;
    Ok(trainer.into_network())
}

/// Optimiser steps in an epoch of `n_samples` examples.
fn steps_per_epoch(n_samples: usize, batch_size: usize, drop_last: bool) -> usize {
    if drop_last {
        n_samples / batch_size
    } else {
        n_samples.div_ceil(batch_size)
    }
}

/// The progress task name of a stage.
fn stage_task(stage: &str) -> &'static str {
    match stage {
        "encoder" => "train encoder",
        "decoder" => "train decoder",
        _ => "train autoencoder",
    }
}

/// Fails unless a saved card describes the same training as `card`.
fn check_resumable(dir: &Path, saved: &ModelCard, card: &ModelCard) -> Result<()> {
    let differs = |what: &str| AbsFitError::ModelDir {
        dir: dir.to_path_buf(),
        reason: format!(
            "holds a run with another {what}: resume it with the same settings or use a new \
             directory"
        ),
    };
    if !saved.dataset.same_dataset(&card.dataset) || saved.dataset.range != card.dataset.range {
        return Err(differs("dataset"));
    }
    if (saved.role, &saved.stage, saved.image) != (card.role, &card.stage, card.image) {
        return Err(differs("stage or image kind"));
    }
    if saved.objective != card.objective {
        return Err(differs("loss (ranges, λ)"));
    }
    if saved != card {
        return Err(differs("layout or image size"));
    }
    Ok(())
}

/// The rows a stage trains on: the dataset's training split, which must not be empty.
fn training_rows(dataset: &Dataset) -> Result<Vec<usize>> {
    let rows = dataset.train_rows();
    if rows.is_empty() {
        return Err(AbsFitError::dataset(
            dataset.dir(),
            "has no training samples (is it a validation-only shard?)",
        ));
    }
    Ok(rows)
}

/// A tensor (B, …) on `device` from a row-major buffer.
fn tensor(values: Vec<f32>, shape: &[usize], device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_vec(values, shape, device)?)
}

/// Inputs (B, C, H, W) and targets (B, P) on `device` of the examples `indices` (into `rows`),
/// with the dynamic ranges drawn from `seed` by `range`.
fn examples(
    dataset: &Dataset,
    rows: &[usize],
    indices: &[usize],
    input: InputKind,
    range: RangePolicy,
    seed: u64,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let chosen: Vec<usize> = indices.iter().map(|&i| rows[i]).collect();
    let config = BatchConfig {
        batch_size: chosen.len().max(1),
        input,
        range,
        shuffle: false,
        seed,
    };
    let mut batches = dataset.batches(&chosen, &config, 0)?;
    let batch = batches.pop().ok_or_else(|| {
        AbsFitError::config("training batch", "no example was selected for the batch")
    })?;
    let images = tensor(batch.inputs, &batch.input_shape, device)?;
    let params = tensor(
        batch.params,
        &[batch.input_shape[0], batch.n_params],
        device,
    )?;
    Ok((images, params))
}

/// Mean squared error over every element.
fn mse(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok((a - b)?.sqr()?.mean_all()?)
}

/// The card of a network trained on the dataset of `manifest`.
fn card_for(
    manifest: &Manifest,
    role: ModelRole,
    stage: &str,
    image: InputKind,
    objective: serde_json::Value,
) -> ModelCard {
    let (height, width) = (manifest.image.height, manifest.image.width);
    ModelCard {
        format: CARD_FORMAT.into(),
        role,
        stage: stage.into(),
        image,
        height,
        width,
        upsample: match role {
            ModelRole::Encoder => upsample_factor(height, width),
            ModelRole::Decoder => 1,
        },
        layout: manifest.layout,
        dynamic_range_db: match role {
            ModelRole::Encoder => None,
            ModelRole::Decoder => Some(DECODER_RANGE_DB),
        },
        dataset: manifest.clone(),
        objective,
    }
}

/// Trains the face encoder on the training split of `dataset` from `input` images (§3.3), in
/// (or resuming from) the stage directory `dir`, reporting optimiser steps to `progress`.
///
/// Each example is shown at a dynamic range drawn by `config.range`; the target is the scaled
/// parameter vector with its dynamic-range column set to that D, and the loss is
/// `config.param_loss`: the mean squared error over all P columns (the paper), or the
/// geometry-aware loss (mean squared vertex displacement of the coefficients plus the L2 of the
/// pose and rendering columns).
pub fn train_encoder(
    dataset: &Dataset,
    input: InputKind,
    config: &EncoderTrainConfig,
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<TrainedEncoder> {
    config.validate()?;
    let rows = training_rows(dataset)?;
    let param_loss = config.param_loss.resolve(dataset.manifest())?;
    let mut objective = serde_json::json!({ "range": config.range });
    config.param_loss.insert_objective(&mut objective)?;
    let card = card_for(
        dataset.manifest(),
        ModelRole::Encoder,
        "encoder",
        input,
        objective,
    );
    let layout = card.layout;
    let shape = layout.range(ParamGroup::Shape).len();
    let expression = layout.range(ParamGroup::Expression).len();
    let groups = OutputGroups {
        shape,
        expression,
        other: layout.len() - shape - expression,
    };
    let network_config =
        config
            .preset
            .face_encoder_with(input.channels(), groups, config.pose_network);
    let factor = card.upsample;
    let network = run_stage(
        dir,
        &card,
        Start::Fresh(network_config),
        &config.schedule,
        rows.len(),
        |network, indices, seed| {
            let device = network.device();
            let (images, params) =
                examples(dataset, &rows, indices, input, config.range, seed, device)?;
            let predicted = encode_upsampled(network, &images, factor, true)?;
            param_loss.loss(&predicted, &params)
        },
        progress,
    )?;
    Ok(TrainedEncoder { network, card })
}

/// The card of a decoder for the dataset of `manifest` rendering `output` images at
/// [`DECODER_RANGE_DB`].
pub(crate) fn decoder_card(manifest: &Manifest, output: InputKind) -> ModelCard {
    let objective = serde_json::json!({ "range": RangePolicy::Fixed(DECODER_RANGE_DB) });
    card_for(manifest, ModelRole::Decoder, "decoder", output, objective)
}

/// Trains the learned renderer (§3.4) on the training split of `dataset`: parameter vectors (with
/// the dynamic-range column at [`DECODER_RANGE_DB`]) → `output` images at 15 dB, loss = mean
/// squared error over the pixels, in (or resuming from) `dir`.
///
/// `output` may be [`InputKind::AmplitudeDepth`], giving a two-channel renderer for the
/// amplitude-depth autoencoder.
pub fn train_decoder(
    dataset: &Dataset,
    output: InputKind,
    config: &DecoderTrainConfig,
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<LearnedRenderer> {
    let rows = training_rows(dataset)?;
    let range = RangePolicy::Fixed(DECODER_RANGE_DB);
    let objective = serde_json::json!({ "range": range });
    let card = card_for(
        dataset.manifest(),
        ModelRole::Decoder,
        "decoder",
        output,
        objective,
    );
    let network_config = config.preset.decoder(card.layout.len(), card.image_shape());
    let network = run_stage(
        dir,
        &card,
        Start::Fresh(network_config),
        &config.schedule,
        rows.len(),
        |network: &Network<DecoderConfig>, indices, seed| {
            let device = network.device();
            let (images, params) = examples(dataset, &rows, indices, output, range, seed, device)?;
            mse(&network.decode(&params, true)?, &images)
        },
        progress,
    )?;
    LearnedRenderer::from_parts(network, card)
}

/// Trains `encoder` further as the encoder half of an autoencoder whose decoder is the frozen
/// learned renderer `decoder` (§3.4, eq. 1), in (or resuming from) `dir`:
///
///   L = MSE(decoder(p̂ with D := 15 dB), x₁₅) + λ · MSE(p̂, p)
///
/// where x is an input image at a dynamic range D drawn by `config.range`, p̂ = encoder(x), p the
/// true scaled parameters (dynamic-range column = D), and x₁₅ the same sample's image at the
/// decoder's 15 dB. The decoder renders at 15 dB only, so its dynamic-range input is always the
/// 15 dB value, whatever the encoder predicts. The decoder must render the encoder's input kind
/// (for amplitude-depth input: a two-channel decoder from [`train_decoder`] with
/// [`InputKind::AmplitudeDepth`]). L_params is `config.param_loss`, as in the encoder stage.
///
/// The decoder is never given to the optimiser and runs in evaluation mode: its weights and
/// BatchNorm statistics are unchanged.
pub fn train_autoencoder(
    dataset: &Dataset,
    encoder: TrainedEncoder,
    decoder: &LearnedRenderer,
    config: &AutoencoderTrainConfig,
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<TrainedEncoder> {
    config.validate()?;
    let rows = training_rows(dataset)?;
    let input = encoder.card.image;
    let manifest = dataset.manifest();
    let decoder_card = decoder.card();
    if decoder_card.image != input {
        return Err(AbsFitError::config(
            "autoencoder decoder",
            format!(
                "renders {} images but the encoder reads {} images: train the decoder on the \
                 encoder's image kind",
                decoder_card.image.name(),
                input.name()
            ),
        ));
    }
    for (what, layout, (h, w)) in [
        (
            "encoder",
            encoder.card.layout,
            (encoder.card.height, encoder.card.width),
        ),
        (
            "decoder",
            decoder_card.layout,
            (decoder_card.height, decoder_card.width),
        ),
    ] {
        if layout != manifest.layout || (h, w) != (manifest.image.height, manifest.image.width) {
            return Err(AbsFitError::Shape {
                what: "autoencoder network vs dataset",
                expected: format!(
                    "layout {:?} and {}×{} images of dataset {}",
                    manifest.layout,
                    manifest.image.height,
                    manifest.image.width,
                    dataset.dir().display()
                ),
                actual: format!("{what} with layout {layout:?} and {h}×{w} images"),
            });
        }
    }
    let param_loss = config.param_loss.resolve(manifest)?;
    let mut objective = serde_json::json!({
        "range": config.range,
        "lambda": config.lambda,
    });
    config.param_loss.insert_objective(&mut objective)?;
    let card = card_for(
        dataset.manifest(),
        ModelRole::Encoder,
        "autoencoder",
        input,
        objective,
    );
    let factor = card.upsample;
    let p = card.layout.len();
    let d_column = card.layout.range(ParamGroup::Render).start + 2;
    let one_hot = |keep_d: bool| -> Result<Tensor> {
        let values: Vec<f32> = (0..p)
            .map(|i| if (i == d_column) == keep_d { 1.0 } else { 0.0 })
            .collect();
        tensor(values, &[1, p], &Device::Cpu)
    };
    let (keep_mask, d_mask) = (one_hot(false)?, one_hot(true)?);
    let fixed = RangePolicy::Fixed(DECODER_RANGE_DB);
    let network = run_stage(
        dir,
        &card,
        Start::From(encoder.network),
        &config.schedule,
        rows.len(),
        |network, indices, seed| {
            let device = network.device();
            let (images, params) =
                examples(dataset, &rows, indices, input, config.range, seed, device)?;
            let (target, params_15) =
                examples(dataset, &rows, indices, input, fixed, seed, device)?;
            let predicted = encode_upsampled(network, &images, factor, true)?;
            let decoder_input = (predicted.broadcast_mul(&keep_mask.to_device(device)?)?
                + params_15.broadcast_mul(&d_mask.to_device(device)?)?)?;
            // The decoder may live elsewhere: it takes its input to its device, and its images
            // come back to the encoder's.
            let rendered = decoder.render(&decoder_input)?.to_device(device)?;
            let image_loss = mse(&rendered, &target)?;
            let params_term = param_loss.loss(&predicted, &params)?;
            Ok((image_loss + (params_term * config.lambda)?)?)
        },
        progress,
    )?;
    Ok(TrainedEncoder { network, card })
}

/// The stage directory's checkpoint path.
pub fn checkpoint_dir(dir: &Path) -> PathBuf {
    dir.join(CHECKPOINT_DIR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The ramp covers round(fraction · epochs) whole epochs: the first step runs at
        /// `start`, every step from the end of the ramp on at `end`, and the rate in between
        /// stays within [end, start].
        #[test]
        fn schedule_ramps_over_the_fraction_of_epochs(
            epochs in 1usize..300,
            steps in 1usize..50,
            fraction in 0.0f64..=1.0,
        ) {
            let lr = LearningRate { start: 0.01, end: 0.001, ramp_fraction: fraction };
            lr.validate().unwrap();
            let s = lr.schedule(epochs, steps);
            let ramp = (fraction * epochs as f64).round() as u64 * steps as u64;
            prop_assert_eq!(s.ramp_steps, ramp);
            if ramp > 0 {
                prop_assert_eq!(s.learning_rate(0), 0.01);
            }
            prop_assert_eq!(s.learning_rate(ramp), 0.001);
            let mid = s.learning_rate(ramp / 2);
            prop_assert!((0.001..=0.01).contains(&mid));
        }

        /// Upsampling reaches facenet's 32-pixel minimum with the smallest power of two.
        #[test]
        fn upsampling_is_the_smallest_sufficient_power_of_two(h in 1usize..80, w in 1usize..80) {
            let f = upsample_factor(h, w);
            prop_assert!(f.is_power_of_two());
            prop_assert!(h.min(w) * f >= 32);
            prop_assert!(f == 1 || h.min(w) * (f / 2) < 32);
        }
    }

    #[test]
    fn paper_encoder_schedule_is_0_01_to_0_001_over_150_of_200_epochs() {
        let s = LearningRate::PAPER_ENCODER.schedule(200, 170);
        assert_eq!(s, LinearSchedule::paper_encoder(170));
    }

    #[test]
    fn invalid_settings_are_refused() {
        let ok = TrainSchedule::new(2, 4, LearningRate::constant(1e-3));
        assert!(ok.validate().is_ok());
        for bad in [
            TrainSchedule { epochs: 0, ..ok },
            TrainSchedule {
                batch_size: 0,
                ..ok
            },
            TrainSchedule {
                checkpoint_every_epochs: 0,
                ..ok
            },
            TrainSchedule {
                stop_after_epochs: Some(0),
                ..ok
            },
            TrainSchedule {
                learning_rate: LearningRate::constant(-1.0),
                ..ok
            },
            TrainSchedule {
                learning_rate: LearningRate {
                    ramp_fraction: 1.5,
                    ..LearningRate::PAPER_ENCODER
                },
                ..ok
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let ae = AutoencoderTrainConfig {
            lambda: f64::NAN,
            ..AutoencoderTrainConfig::paper()
        };
        assert!(ae.validate().is_err());
    }

    /// A last batch of one example is dropped (BatchNorm needs two); otherwise it is kept.
    #[test]
    fn single_example_last_batch_is_dropped() {
        let s = TrainSchedule::new(1, 4, LearningRate::constant(1e-3));
        assert!(s.trainer_config(9).drop_last);
        assert!(!s.trainer_config(10).drop_last);
        assert!(!s.trainer_config(8).drop_last);
    }
}
