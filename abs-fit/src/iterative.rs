//! The iterative encoder: a face encoder that reads the radar image beside the feedback channels
//! of its own current estimate and predicts the truth, applied several times at inference (the
//! coarse-to-fine paper's CoarseNet, Richardson et al., "Learning Detailed Face Reconstruction
//! from a Single Image", §3.2–3.4, for radar images).
//!
//! [`train_iterative`](crate::train::train_iterative) trains it; [`IterativeEncoder::iterate`]
//! starts from the mean face at zero pose (or a given estimate, e.g. a one-pass encoder's) and
//! records the estimate after every iteration.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use facenet::{BranchedEncoderConfig, Checkpoint, Network};
use morphable::LinearMorphableModel;

use crate::card::{
    CHECKPOINT_DIR, FEEDBACK_RENDERER_DIR, ITERATIVE_STAGE, ModelCard, ModelRole, save_model,
};
use crate::dataset::{DatasetConfig, InputKind, ModelIdentity};
use crate::encoder::encode_upsampled;
use crate::render::{FeedbackRenderer, FeedbackSet, LearnedRenderer};
use crate::{AbsFitError, ParamLayout, Result};

/// How [`IterativeEncoder::iterate`] iterates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Iterate {
    /// Iterations at most (the paper: four).
    pub iterations: usize,
    /// Stop early once no column of any row moved by more than this (scaled units) in the
    /// last iteration; 0 never stops early.
    pub tolerance: f64,
}

impl Default for Iterate {
    /// Four iterations, stopping early below a change of 10⁻³ (scaled units).
    fn default() -> Self {
        Self {
            iterations: 4,
            tolerance: 1e-3,
        }
    }
}

/// A trained iterative encoder: (images, current estimate) → a better estimate.
#[derive(Debug)]
pub struct IterativeEncoder {
    network: Network<BranchedEncoderConfig>,
    card: ModelCard,
    feedback: Arc<FeedbackRenderer>,
}

impl IterativeEncoder {
    pub(crate) fn from_parts(
        network: Network<BranchedEncoderConfig>,
        card: ModelCard,
        feedback: Arc<FeedbackRenderer>,
    ) -> Self {
        Self {
            network,
            card,
            feedback,
        }
    }

    /// Reads an iterative encoder written by its training stage or [`IterativeEncoder::save`];
    /// `model` must be the face model its dataset was drawn with (the feedback channels render
    /// its faces).
    pub fn load<M: LinearMorphableModel>(dir: &Path, model: &M, device: &Device) -> Result<Self> {
        let card = ModelCard::read(dir)?;
        card.expect_role(ModelRole::Encoder, dir)?;
        let bad = |reason: String| AbsFitError::ModelDir {
            dir: dir.to_path_buf(),
            reason,
        };
        if card.stage != ITERATIVE_STAGE {
            return Err(bad(format!(
                "holds a one-pass '{}' encoder, not an iterative one: load it with \
                 TrainedEncoder::load",
                card.stage
            )));
        }
        let identity = ModelIdentity::of(model)?;
        if identity != card.dataset.model {
            return Err(bad(format!(
                "was trained on faces of model '{}' (fingerprint {}), but the model given is \
                 '{}' (fingerprint {})",
                card.dataset.model.name,
                card.dataset.model.fingerprint,
                identity.name,
                identity.fingerprint
            )));
        }
        let set: FeedbackSet = serde_json::from_value(card.objective["feedback"].clone())
            .map_err(|e| bad(format!("its card names no valid feedback set: {e}")))?;
        let settings: DatasetConfig = serde_json::from_value(card.dataset.settings.clone())
            .map_err(|e| bad(format!("its card's dataset settings cannot be read: {e}")))?;
        let learned = if set.learned {
            let copy = dir.join(FEEDBACK_RENDERER_DIR);
            let learned = LearnedRenderer::load(&copy, &Device::Cpu)?;
            let recorded = &card.objective["feedback_renderer"]["fingerprint"];
            if recorded.as_str() != Some(learned.fingerprint()?.as_str()) {
                return Err(bad(format!(
                    "its copy of the feedback renderer ({}) is not the one it was trained with",
                    copy.display()
                )));
            }
            Some(learned)
        } else {
            None
        };
        let gain = card.objective.get("residual_gain").map_or(Ok(1.0), |g| {
            g.as_f64()
                .ok_or_else(|| bad(format!("its card's residual gain {g} is not a number")))
        })?;
        let feedback =
            FeedbackRenderer::with_learned(model, card.layout, &settings.imaging, set, learned)?
                .with_residual_gain(gain)?;
        let network = Checkpoint::load(&dir.join(CHECKPOINT_DIR), device)?.network;
        Ok(Self::from_parts(network, card, Arc::new(feedback)))
    }

    /// Writes the encoder to `dir` (`model.json`, a weights-only checkpoint and, with learned
    /// feedback channels, a copy of their renderer).
    pub fn save(&self, dir: &Path) -> Result<()> {
        save_model(dir, &self.card, &self.network)?;
        self.save_feedback_renderer(dir)
    }

    /// Writes the copy of the learned feedback channels' renderer to `dir`, if it has them.
    pub(crate) fn save_feedback_renderer(&self, dir: &Path) -> Result<()> {
        match self.feedback.learned() {
            Some(learned) => learned.save(&dir.join(FEEDBACK_RENDERER_DIR)),
            None => Ok(()),
        }
    }

    /// What the encoder maps from and to.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The network.
    pub fn network(&self) -> &Network<BranchedEncoderConfig> {
        &self.network
    }

    /// The images it reads (without the feedback channels).
    pub fn input(&self) -> InputKind {
        self.card.image
    }

    /// The feedback channels it reads after the images.
    pub fn feedback(&self) -> FeedbackSet {
        self.feedback.set()
    }

    /// The layout of the vectors it reads and predicts.
    pub fn layout(&self) -> &ParamLayout {
        &self.card.layout
    }

    /// The Table 1 row name: "Iterative encoder (Depth)", ...
    pub fn method_name(&self) -> String {
        format!("Iterative encoder ({})", self.input().paper_name())
    }

    /// One iteration in evaluation mode: the prediction (B, P) from images (B, C, H, W) of
    /// the card's kind and size and current estimates (B, P).
    pub fn step(&self, images: &Tensor, estimates: &Tensor) -> Result<Tensor> {
        let expected = self.card.image_shape();
        let dims = images.dims();
        if dims.len() != 4 || dims[1..] != [expected.channels, expected.height, expected.width] {
            return Err(AbsFitError::Shape {
                what: "iterative encoder input images",
                expected: format!("(B, {expected}) {} images", self.input().name()),
                actual: format!("{dims:?}"),
            });
        }
        let cpu = images.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        let inputs = self.feedback.append(&cpu, self.input(), estimates)?;
        let inputs = inputs
            .to_dtype(self.network.dtype())?
            .to_device(self.network.device())?;
        Ok(
            encode_upsampled(&self.network, &inputs, self.card.upsample, false)?
                .to_device(&Device::Cpu)?,
        )
    }

    /// Iterates from `start` (B, P; `None`: the mean face at zero pose, every scaled column 0)
    /// as `how` says: the estimates (B, P, on the CPU) after each iteration, in order, at least
    /// one.
    pub fn iterate(
        &self,
        images: &Tensor,
        start: Option<&Tensor>,
        how: &Iterate,
    ) -> Result<Vec<Tensor>> {
        if how.iterations == 0 || how.tolerance.is_nan() || how.tolerance < 0.0 {
            return Err(AbsFitError::config(
                "iterations",
                format!("{how:?}: at least one iteration and a tolerance ≥ 0"),
            ));
        }
        let b = images.dims().first().copied().unwrap_or(0);
        let mut estimate = match start {
            Some(s) => s.to_device(&Device::Cpu)?.to_dtype(DType::F32)?,
            None => Tensor::zeros((b, self.layout().len()), DType::F32, &Device::Cpu)?,
        };
        let mut history = Vec::with_capacity(how.iterations);
        for _ in 0..how.iterations {
            let next = self.step(images, &estimate)?;
            let change = (&next - &estimate)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()?;
            history.push(next.clone());
            estimate = next;
            if f64::from(change) <= how.tolerance {
                break;
            }
        }
        Ok(history)
    }
}
