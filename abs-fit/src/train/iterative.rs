//! The iterative encoder's stage: an encoder that reads the radar image and the feedback
//! channels of a current estimate r_t, and predicts the truth (the coarse-to-fine paper's
//! CoarseNet, §3.2, eq. 3).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use facenet::{BranchedEncoderConfig, Network};
use morphable::{LinearMorphableModel, SamplingConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::stage::{Start, examples, run_stage, training_rows};
use super::{EncoderTrainConfig, encoder_network};
use crate::card::{ITERATIVE_STAGE, ModelCard, ModelRole, card_for};
use crate::dataset::{Dataset, InputKind};
use crate::encoder::{TrainedEncoder, encode_upsampled};
use crate::evaluate::random_baseline;
use crate::iterative::IterativeEncoder;
use crate::render::{FeedbackRenderer, FeedbackSet, LearnedRenderer};
use crate::{AbsFitError, ParamLayout, Progress, Result};

/// Mixed into a batch's seed to draw its current estimates, apart from the dynamic ranges.
const ESTIMATE_SEED: u64 = 0x17E2_A71F_EEDB_ACC5;
/// Mixed into a batch's seed to choose whether it trains on the network's own estimates.
const OWN_ESTIMATE_SEED: u64 = 0x0E57_1AA7_E5E1_F000;

/// The weight (1/mm²) of the geometry-aware coefficient loss that the command line and
/// `reproduce` give the iterative stage.
pub const ITERATIVE_GEOMETRY_WEIGHT: f64 = 0.1;

/// Settings of [`train_iterative`](super::train_iterative).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterativeTrainConfig {
    /// Network size, schedule, dynamic ranges, parameter loss and pose network, as for the
    /// one-pass encoder. The input has the feedback channels besides the image's.
    pub encoder: EncoderTrainConfig,
    /// The feedback channels the network reads.
    pub feedback: FeedbackSet,
    /// The fraction of examples whose current estimate is the mean face at zero pose (all
    /// scaled columns 0), where inference starts; the others get
    /// r_t = β·r_gt + (1 − β)·r_rnd with β ~ U(0, 1) and r_rnd drawn from the dataset's
    /// sampling distribution (the paper's eq. 3).
    pub mean_start_fraction: f64,
    /// The fraction of batches whose drawn estimates are replaced by the network's own
    /// prediction from them (one step in evaluation mode, no gradient), so that training sees
    /// estimates like those of inference, where r_t is the network's previous output.
    #[serde(default)]
    pub own_estimate_fraction: f64,
    /// The learned renderer whose images the `learned` feedback channels show (a decoder
    /// directory of the input's kind on the same dataset); needed exactly when the set has
    /// them. The trained encoder keeps a copy.
    #[serde(default)]
    pub feedback_renderer: Option<PathBuf>,
    /// The factor the residual channel is multiplied by
    /// ([`FeedbackRenderer::with_residual_gain`]; 1 by default).
    #[serde(default = "unit_gain")]
    pub residual_gain: f64,
}

fn unit_gain() -> f64 {
    1.0
}

impl IterativeTrainConfig {
    /// The iterative stage of `encoder`'s settings, reading `input`'s default feedback
    /// ([`FeedbackSet::default_for`]: depth and residual), with half the drawn estimates at the mean face and half the batches on the
    /// network's own estimates. Measured on the `cpu` run's 8 000 faces (depth input, `cpu`
    /// networks, 10 epochs, 1 200 validation faces, point distance after iterations 1–4):
    /// a quarter at the mean and no own estimates 5.80, 5.98, 6.16, 6.26 mm (the error grows
    /// with every iteration); half own estimates 5.65, 5.44, 5.51, 5.56; these defaults 5.65,
    /// 5.34, 5.34, 5.35 (every feedback channel in each case).
    pub fn new(encoder: EncoderTrainConfig, input: InputKind) -> Self {
        Self {
            encoder,
            feedback: FeedbackSet::default_for(input),
            mean_start_fraction: 0.5,
            own_estimate_fraction: 0.5,
            feedback_renderer: None,
            residual_gain: 1.0,
        }
    }

    /// Checks the encoder settings, that both fractions lie in [0, 1], and that a residual gain
    /// other than 1 comes with the residual channel (the gain itself is checked where the
    /// feedback renderer is built).
    pub fn validate(&self) -> Result<()> {
        self.encoder.validate()?;
        for (name, value) in [
            ("mean_start_fraction", self.mean_start_fraction),
            ("own_estimate_fraction", self.own_estimate_fraction),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(AbsFitError::config(
                    "iterative encoder",
                    format!("{name} = {value} must lie in [0, 1]"),
                ));
            }
        }
        if self.residual_gain != 1.0 && !self.feedback.residual {
            return Err(AbsFitError::config(
                "iterative encoder",
                format!(
                    "a residual gain of {} was given, but the feedback set {} has no residual",
                    self.residual_gain, self.feedback
                ),
            ));
        }
        Ok(())
    }
}

/// Trains an iterative encoder on the training split of `dataset` from `input` images and
/// the feedback channels of `model`'s faces, in (or resuming from) `dir`, from fresh weights.
///
/// Each example shows the image at a dynamic range drawn by the encoder settings' range policy
/// beside the feedback of a current estimate r_t, drawn from the batch's seed as
/// [`IterativeTrainConfig::mean_start_fraction`] and
/// [`IterativeTrainConfig::own_estimate_fraction`] say; the target is the true row and the
/// loss the encoder settings' parameter loss. With [`FeedbackSet::NONE`] the stage trains exactly the
/// network [`train_encoder`](super::train_encoder) does.
pub fn train_iterative<M: LinearMorphableModel>(
    dataset: &Dataset,
    model: &M,
    input: InputKind,
    config: &IterativeTrainConfig,
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<IterativeEncoder> {
    iterative_stage(dataset, model, input, None, config, dir, progress)
}

/// As [`train_iterative`], but starting from the trained one-pass encoder `start` of the same
/// input kind and architecture: its weights on the image channels and zeros on the feedback
/// channels ([`facenet::Network::widen_input`]), so that training begins where the one-pass
/// encoder ends (whatever the estimate, it predicts what `start` predicts) and learns what the
/// feedback adds. The card's objective records the start's stage and objective, so a run
/// resumes only from the same start.
pub fn train_iterative_from<M: LinearMorphableModel>(
    dataset: &Dataset,
    model: &M,
    start: TrainedEncoder,
    config: &IterativeTrainConfig,
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<IterativeEncoder> {
    let input = start.card.image;
    iterative_stage(dataset, model, input, Some(start), config, dir, progress)
}

/// The iterative stage from fresh weights or from a one-pass encoder.
fn iterative_stage<M: LinearMorphableModel>(
    dataset: &Dataset,
    model: &M,
    input: InputKind,
    start: Option<TrainedEncoder>,
    config: &IterativeTrainConfig,
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<IterativeEncoder> {
    config.validate()?;
    config.feedback.check_input(input)?;
    dataset.check_model(model)?;
    let rows = training_rows(dataset)?;
    let manifest = dataset.manifest();
    let settings = dataset.config()?;
    let encoder = &config.encoder;
    let param_loss = encoder.param_loss.resolve(manifest)?;
    let mut objective = serde_json::json!({
        "range": encoder.range,
        "feedback": config.feedback,
        "mean_start_fraction": config.mean_start_fraction,
        "own_estimate_fraction": config.own_estimate_fraction,
    });
    encoder.param_loss.insert_objective(&mut objective)?;
    // Recorded only when it is not 1, so that earlier runs resume.
    if config.residual_gain != 1.0 {
        objective["residual_gain"] = serde_json::json!(config.residual_gain);
    }
    let learned = match (&config.feedback_renderer, config.feedback.learned) {
        (Some(path), true) => {
            let learned = LearnedRenderer::load(path, &Device::Cpu)?;
            if learned.output() != input {
                return Err(AbsFitError::config(
                    "iterative encoder",
                    format!(
                        "the feedback renderer {} draws {} images, but the encoder reads {}: \
                         the learned channels compare with the input, so give a decoder of its \
                         kind",
                        path.display(),
                        learned.output().name(),
                        input.name()
                    ),
                ));
            }
            objective["feedback_renderer"] = serde_json::json!({
                "image": learned.output(),
                "fingerprint": learned.fingerprint()?,
            });
            Some(learned)
        }
        (None, false) => None,
        (None, true) => {
            return Err(AbsFitError::config(
                "iterative encoder",
                "the learned feedback channels need a learned renderer (feedback_renderer; \
                 the command line's --decoder DIR)",
            ));
        }
        (Some(path), false) => {
            return Err(AbsFitError::config(
                "iterative encoder",
                format!(
                    "a feedback renderer ({}) was given, but the feedback set {} has no \
                     learned channels: add 'learned' to it or drop the renderer",
                    path.display(),
                    config.feedback
                ),
            ));
        }
    };
    if let Some(start) = &start {
        objective["start"] = serde_json::json!({
            "stage": start.card.stage,
            "objective": start.card.objective,
        });
    }
    let card = card_for(
        manifest,
        ModelRole::Encoder,
        ITERATIVE_STAGE,
        input,
        objective,
    );
    let layout = card.layout;
    let feedback =
        FeedbackRenderer::with_learned(model, layout, &settings.imaging, config.feedback, learned)?
            .with_residual_gain(config.residual_gain)?;
    let network_config = encoder_network(
        encoder,
        &layout,
        input.channels() + config.feedback.channels(input),
    );
    let factor = card.upsample;
    let start = match start {
        None => Start::Fresh(network_config),
        Some(start) => {
            let narrow = encoder_network(encoder, &layout, input.channels());
            Start::From(widened(start, &card, &narrow, network_config)?)
        }
    };
    let network = run_stage(
        dir,
        &card,
        start,
        &encoder.schedule,
        rows.len(),
        |network, indices, seed| {
            let device = network.device();
            let (images, params) =
                examples(dataset, &rows, indices, input, encoder.range, seed, device)?;
            let images = if config.feedback.channels(input) == 0 {
                images
            } else {
                let mut estimates = training_estimates(
                    &params,
                    &layout,
                    &settings.sampling,
                    config.mean_start_fraction,
                    seed,
                )?;
                let own = ChaCha8Rng::seed_from_u64(seed ^ OWN_ESTIMATE_SEED).random::<f64>();
                if own < config.own_estimate_fraction {
                    let inputs = feedback.append(&images, input, &estimates)?;
                    estimates = encode_upsampled(network, &inputs, factor, false)?
                        .detach()
                        .to_device(&Device::Cpu)?;
                }
                feedback.append(&images, input, &estimates)?
            };
            let predicted = encode_upsampled(network, &images, factor, true)?;
            param_loss.loss(&predicted, &params)
        },
        progress,
    )?;
    let trained = IterativeEncoder::from_parts(network, card, Arc::new(feedback));
    trained.save_feedback_renderer(dir)?;
    Ok(trained)
}

/// The one-pass encoder `start` widened to the iterative network `config` (zeros on the
/// feedback channels), after checking that it was trained on the card's dataset, image kind,
/// size and layout, and that its architecture is `narrow`, the iterative network's without the
/// feedback channels.
fn widened(
    start: TrainedEncoder,
    card: &ModelCard,
    narrow: &BranchedEncoderConfig,
    config: BranchedEncoderConfig,
) -> Result<Network<BranchedEncoderConfig>> {
    let source = &start.card;
    if source.role != ModelRole::Encoder
        || source.image != card.image
        || source.layout != card.layout
        || (source.height, source.width) != (card.height, card.width)
        || !source.dataset.same_dataset(&card.dataset)
    {
        return Err(AbsFitError::config(
            "iterative encoder start",
            format!(
                "the start is a {} network of {} images ({}×{}); the iterative stage needs an \
                 encoder of its own {} images ({}×{}), parameter layout and dataset",
                source.stage,
                source.image.name(),
                source.height,
                source.width,
                card.image.name(),
                card.height,
                card.width,
            ),
        ));
    }
    if serde_json::to_value(narrow).ok() != serde_json::to_value(start.network.config()).ok() {
        return Err(AbsFitError::config(
            "iterative encoder start",
            "the start's network has another architecture (preset or pose network) than the \
             iterative encoder asked for",
        ));
    }
    Ok(start.network.widen_input(config)?)
}

/// The current estimates (B, P, on the CPU) of a batch whose true rows are `truth`: per
/// example, the mean face at zero pose with probability `mean_fraction`, else
/// β·truth + (1 − β)·r_rnd with β ~ U(0, 1) and r_rnd drawn from `sampling`. Deterministic
/// in `seed`.
fn training_estimates(
    truth: &Tensor,
    layout: &ParamLayout,
    sampling: &SamplingConfig,
    mean_fraction: f64,
    seed: u64,
) -> Result<Tensor> {
    let (b, p) = truth.dims2()?;
    let truth: Vec<f32> = truth
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ESTIMATE_SEED);
    let random = random_baseline(layout, sampling, b, rng.random())?;
    let mut estimates = vec![0.0f32; b * p];
    for (i, estimate) in estimates.chunks_exact_mut(p).enumerate() {
        if rng.random::<f64>() < mean_fraction {
            continue;
        }
        let beta: f32 = rng.random();
        for (k, e) in estimate.iter_mut().enumerate() {
            *e = beta * truth[i * p + k] + (1.0 - beta) * random[[i, k]];
        }
    }
    Ok(Tensor::from_vec(estimates, (b, p), &Device::Cpu)?)
}
