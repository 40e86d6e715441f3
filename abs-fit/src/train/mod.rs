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
use crate::render::{LearnedRenderer, Renderer};
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
                id_term = Some(id_loss.resolve(dataset.manifest(), device)?);
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
    check_autoencoder_parts(dataset, &encoder, decoder)?;
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
            let rendered = decoder.render(&decoder_input)?.to_device(device)?;
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
    decoder: &LearnedRenderer,
) -> Result<()> {
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
    Ok(())
}
