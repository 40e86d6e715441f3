//! The three training stages of the paper (§3.3–3.5), each resumable and observed:
//!
//! 1. [`train_encoder`]: the face encoder (two ResNets with `3 · tanh` heads for shape and
//!    expression, an AlexNet — or a ResNet, [`PoseNetwork`](facenet::PoseNetwork) — for
//!    translation, rotation and the rendering columns) regresses the scaled
//!    [`ParamLayout`] vector of an image; loss = mean squared error over
//!    all P columns (the paper's L2), or optionally the geometry-aware [`ParamLoss::Geometry`]
//!    (mean squared vertex displacement of the coefficients); D ~ U(15, 30) dB per example
//!    ([`RangePolicy::TRAIN`]).
//! 2. [`train_decoder`]: the learned renderer, a reversed ResNet from the parameter vector to the
//!    image at D = 15 dB ([`DECODER_RANGE_DB`]); loss = mean squared error over the pixels.
//! 3. [`train_autoencoder`]: the encoder, starting from its supervised weights, trained through
//!    the frozen decoder with L = L_image + λ·L_params (eq. 1).
//!
//! Every stage works in a directory holding a model card and a facenet checkpoint
//! ([`crate::card`]). Calling a stage again on the same directory resumes from the checkpoint
//! and continues bit for bit as the uninterrupted run would have; the same directory is what
//! [`TrainedEncoder::load`] and [`LearnedRenderer::load`] read. A run is interrupted deliberately with
//! [`TrainSchedule::stop_after_epochs`] (the learning-rate schedule stays that of
//! [`TrainSchedule::epochs`]); a finished run with a constant learning rate can be extended by
//! raising `epochs`. Training runs in f32 on the device its [`TrainSchedule::device`] names
//! (the CPU by default, or a CUDA GPU with the `cuda` feature).
//!
//! Beyond the paper: the iterative encoder ([`train_iterative`]), the mesh encoder of the 3D
//! identity loss ([`train_mesh_encoder`]) and that loss in encoder training ([`IdLoss`]).
//!
//! The modules: `schedule` (epochs, batches, learning rate), `loss` (the parameter term),
//! `id_loss` (the identity term), `config` (each stage's settings), `iterative`, `mesh`, and
//! `stage` (the resumable runner they all share).

mod config;
mod id_loss;
mod iterative;
mod loss;
mod mesh;
mod schedule;
mod stage;

use std::path::Path;

use candle_core::{Device, Tensor};
use facenet::{BranchedEncoderConfig, DecoderConfig, ImageDecoder, Network, OutputGroups};
use morphable::LinearMorphableModel;
use serde::{Deserialize, Serialize};

pub use config::{AutoencoderTrainConfig, DecoderTrainConfig, EncoderTrainConfig};
pub use id_loss::{IdLoss, IdLossKind, ResolvedIdLoss};
pub use iterative::{
    ITERATIVE_GEOMETRY_WEIGHT, IterativeTrainConfig, train_iterative, train_iterative_from,
};
pub use loss::{ParamLoss, VertexGram};
pub use mesh::{MeshEncoderConfig, mesh_edges, mesh_pyramid, train_mesh_encoder};
pub use schedule::{LearningRate, TrainSchedule};

use crate::card::{DECODER_RANGE_DB, ModelRole, card_for};
use crate::dataset::{Dataset, InputKind, RangePolicy};
use crate::encoder::encode_upsampled;
use crate::identity::DistilFidelity;
use crate::render::{DifferentiablePhysicsRenderer, LearnedRenderer, Renderer};
use crate::{AbsFitError, ParamGroup, ParamLayout, Progress, Result, TrainedEncoder};
use loss::mse;
use stage::{Start, examples, run_stage, tensor, training_rows};

/// Trains the face encoder on the training split of `dataset` from `input` images (§3.3), in
/// (or resuming from) the stage directory `dir`, reporting optimiser steps to `progress`.
///
/// Each example is shown at a dynamic range drawn by `config.range`; the target is the scaled
/// parameter vector with its dynamic-range column set to that D, and the loss is
/// `config.param_loss`: the mean squared error over all P columns (the paper), or the
/// geometry-aware loss (mean squared vertex displacement of the coefficients plus the L2 of the
/// pose and rendering columns), plus `config.id_loss`'s identity term when it is set
/// (docs/physics.md §9.3).
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
    if let Some(id_loss) = &config.id_loss {
        id_loss.check(dataset.manifest())?;
        if let serde_json::Value::Object(map) = &mut objective {
            map.insert("id_loss".into(), id_loss.objective()?);
        }
    }
    let card = card_for(
        dataset.manifest(),
        ModelRole::Encoder,
        "encoder",
        input,
        objective,
    );
    // Resolved on the training device at the first batch (a learned term loads a network).
    let mut id_term: Option<ResolvedIdLoss> = None;
    let network_config = encoder_network(config, &card.layout, input.channels());
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
            let loss = param_loss.loss(&predicted, &params)?;
            let Some(id_loss) = &config.id_loss else {
                return Ok(loss);
            };
            if id_term.is_none() {
                let term = id_loss.resolve(dataset.manifest(), device)?;
                if let Some(fidelity) = term.fidelity() {
                    write_distillation(dir, fidelity)?;
                }
                id_term = Some(term);
            }
            match &id_term {
                Some(term) => Ok((loss + term.loss(&predicted, &params)?)?),
                None => Ok(loss),
            }
        },
        progress,
    )?;
    Ok(TrainedEncoder { network, card })
}

/// The file of an encoder's stage directory that records how closely its distilled identity
/// loss follows the mesh encoder ([`IdLossKind::Distilled`]).
pub const DISTILLATION_FILE: &str = "identity-distillation.json";

/// Writes `fidelity` to `dir`/[`DISTILLATION_FILE`] atomically.
fn write_distillation(dir: &Path, fidelity: &DistilFidelity) -> Result<()> {
    let text = serde_json::to_string_pretty(fidelity).map_err(|e| {
        AbsFitError::config(
            "identity distillation",
            format!("cannot be serialised: {e}"),
        )
    })?;
    Ok(morphable::export::atomic_write(
        &dir.join(DISTILLATION_FILE),
        text.as_bytes(),
    )?)
}

/// The face encoder of `config`'s size and pose network for `channels` input channels and
/// `layout`'s shape, expression and other columns.
fn encoder_network(
    config: &EncoderTrainConfig,
    layout: &ParamLayout,
    channels: usize,
) -> BranchedEncoderConfig {
    let shape = layout.range(ParamGroup::Shape).len();
    let expression = layout.range(ParamGroup::Expression).len();
    let groups = OutputGroups {
        shape,
        expression,
        other: layout.len() - shape - expression,
    };
    config
        .preset
        .face_encoder_with(channels, groups, config.pose_network)
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

/// The frozen decoder of the autoencoder stage ([`train_autoencoder`]): the paper's learned
/// renderer (`&LearnedRenderer` converts), or the physics itself ([`FrozenDecoder::physics`]).
pub struct FrozenDecoder<'a>(Decoder<'a>);

enum Decoder<'a> {
    Learned(&'a LearnedRenderer),
    Physics {
        renderer: Box<dyn SeededRenderer + 'a>,
        kind: InputKind,
        seeds: PhysicsSeeds,
    },
}

/// Which realisation of the diffuse field the physics decoder simulates each training face
/// with ([`FrozenDecoder::physics`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhysicsSeeds {
    /// The seed the dataset drew the face with: at the true parameters the decoder renders
    /// the target's own realisation (without its receiver noise), so the image term compares
    /// faces, not speckle. Possible in training only, where the faces are synthetic.
    Target,
    /// Another realisation, fixed per face: the image term meets the speckle a test-time fit
    /// meets.
    Other,
}

/// A renderer whose rows take their own seeds.
trait SeededRenderer: Renderer {
    fn render_seeded(&self, params: &Tensor, seeds: Vec<u64>) -> Result<Tensor>;
}

impl<M: LinearMorphableModel> SeededRenderer for DifferentiablePhysicsRenderer<M> {
    fn render_seeded(&self, params: &Tensor, seeds: Vec<u64>) -> Result<Tensor> {
        DifferentiablePhysicsRenderer::render_seeded(self, params, seeds)
    }
}

impl<'a> FrozenDecoder<'a> {
    /// The differentiable physics renderer ([`DifferentiablePhysicsRenderer`], one realisation
    /// of the diffuse field per image) of `model`'s faces on `dataset`'s imaging, rendering
    /// `kind` images: a model-based autoencoder whose decoder is the simulator and the
    /// back-projection themselves. Each face is simulated with the seed `seeds` says, so that
    /// its realisation does not depend on its place in a batch. It costs about a second of one
    /// core per image at the `cpu` preset's imaging (render plus gradient), hence
    /// [`AutoencoderTrainConfig::train_faces`]. Errors: a dataset whose imaging the renderer
    /// cannot differentiate, or a model that does not match its layout.
    pub fn physics<M: LinearMorphableModel + 'a>(
        model: M,
        dataset: &Dataset,
        kind: InputKind,
        seeds: PhysicsSeeds,
    ) -> Result<Self> {
        Ok(Self(Decoder::Physics {
            renderer: Box::new(DifferentiablePhysicsRenderer::for_dataset(
                model, dataset, kind,
            )?),
            kind,
            seeds,
        }))
    }

    /// The decoder as a renderer.
    fn renderer(&self) -> &dyn Renderer {
        match &self.0 {
            Decoder::Learned(learned) => *learned,
            Decoder::Physics { renderer, .. } => renderer.as_ref(),
        }
    }

    /// The seed of each of `dataset`'s local rows `rows` for this decoder (none for a learned
    /// one).
    fn face_seeds(&self, dataset: &Dataset, rows: &[usize]) -> Result<Vec<u64>> {
        let Decoder::Physics { seeds, .. } = &self.0 else {
            return Ok(Vec::new());
        };
        let config = dataset.config()?;
        let first = dataset.manifest().range.0;
        Ok((rows.iter())
            .map(|&row| {
                let (_, seed) = config.draw(first + row);
                match seeds {
                    PhysicsSeeds::Target => seed,
                    // Any seed the dataset does not use for this face.
                    PhysicsSeeds::Other => seed ^ OTHER_REALISATION,
                }
            })
            .collect())
    }

    /// The images of `params` (B, P), of faces with the seeds `seeds` (ignored by a learned
    /// decoder).
    fn render(&self, params: &Tensor, seeds: Vec<u64>) -> Result<Tensor> {
        match &self.0 {
            Decoder::Learned(learned) => learned.render(params),
            Decoder::Physics { renderer, .. } => renderer.render_seeded(params, seeds),
        }
    }
}

/// Flips the seed of a face into another realisation's ([`PhysicsSeeds::Other`]).
const OTHER_REALISATION: u64 = 0x9e37_79b9_7f4a_7c15;

impl<'a> From<&'a LearnedRenderer> for FrozenDecoder<'a> {
    fn from(learned: &'a LearnedRenderer) -> Self {
        Self(Decoder::Learned(learned))
    }
}

/// Trains `encoder` further as the encoder half of an autoencoder whose decoder is frozen
/// (§3.4, eq. 1), in (or resuming from) `dir`:
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
/// `decoder` is the paper's learned renderer (a `&LearnedRenderer` converts) or the physics
/// itself ([`FrozenDecoder::physics`]). A learned decoder is never given to the optimiser and
/// runs in evaluation mode: its weights and BatchNorm statistics are unchanged. With the
/// physics decoder the card's objective says so (`"decoder": {"physics": {"seeds": …}}`), as
/// it says `"train_faces"` when set, and a run resumes only with the decoder, realisation and
/// faces it started with. Errors also: more training faces asked for than the dataset holds.
pub fn train_autoencoder<'d>(
    dataset: &Dataset,
    encoder: TrainedEncoder,
    decoder: impl Into<FrozenDecoder<'d>>,
    config: &AutoencoderTrainConfig,
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<TrainedEncoder> {
    config.validate()?;
    let decoder = decoder.into();
    let mut rows = training_rows(dataset)?;
    if let Some(n) = config.train_faces {
        if n > rows.len() {
            return Err(AbsFitError::config(
                "autoencoder training faces",
                format!(
                    "{n} asked for, but dataset {} has {} training faces",
                    dataset.dir().display(),
                    rows.len()
                ),
            ));
        }
        rows.truncate(n);
    }
    let input = encoder.card.image;
    let manifest = dataset.manifest();
    check_autoencoder_parts(dataset, &encoder, &decoder)?;
    let face_seeds = decoder.face_seeds(dataset, &rows)?;
    let param_loss = config.param_loss.resolve(manifest)?;
    let mut objective = serde_json::json!({
        "range": config.range,
        "lambda": config.lambda,
    });
    config.param_loss.insert_objective(&mut objective)?;
    if let serde_json::Value::Object(map) = &mut objective {
        // Absent for the paper's autoencoder, so that its earlier cards still resume.
        if let Decoder::Physics { seeds, .. } = &decoder.0 {
            map.insert(
                "decoder".into(),
                serde_json::json!({ "physics": { "seeds": seeds } }),
            );
        }
        if let Some(n) = config.train_faces {
            map.insert("train_faces".into(), n.into());
        }
    }
    let card = card_for(
        dataset.manifest(),
        ModelRole::Encoder,
        "autoencoder",
        input,
        objective,
    );
    let factor = card.upsample;
    let p = card.layout.len();
    let d_column = card.layout.dynamic_range_column();
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
            let seeds = (indices.iter())
                .filter_map(|&i| face_seeds.get(i).copied())
                .collect();
            let rendered = (decoder.render(&decoder_input, seeds))?.to_device(device)?;
            let image_loss = mse(&rendered, &target)?;
            let params_term = param_loss.loss(&predicted, &params)?;
            Ok((image_loss + (params_term * config.lambda)?)?)
        },
        progress,
    )?;
    Ok(TrainedEncoder { network, card })
}

/// Fails unless the decoder renders the encoder's image kind and both networks have the
/// dataset's layout and image size.
fn check_autoencoder_parts(
    dataset: &Dataset,
    encoder: &TrainedEncoder,
    decoder: &FrozenDecoder,
) -> Result<()> {
    let input = encoder.card.image;
    let manifest = dataset.manifest();
    let (renders, decoder_layout) = match &decoder.0 {
        Decoder::Learned(learned) => (learned.card().image, learned.card().layout),
        // Built on the dataset's layout and imaging.
        Decoder::Physics { kind, .. } => (*kind, manifest.layout),
    };
    if renders != input {
        return Err(AbsFitError::config(
            "autoencoder decoder",
            format!(
                "renders {} images but the encoder reads {} images: give the decoder the \
                 encoder's image kind",
                renders.name(),
                input.name()
            ),
        ));
    }
    let (_, decoder_h, decoder_w) = decoder.renderer().image_shape();
    for (what, layout, (h, w)) in [
        (
            "encoder",
            encoder.card.layout,
            (encoder.card.height, encoder.card.width),
        ),
        ("decoder", decoder_layout, (decoder_h, decoder_w)),
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
    Ok(())
}
