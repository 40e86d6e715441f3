//! Trained networks on disk. A stage directory holds
//!
//! ```text
//! DIR/
//!   model.json    what the network means (ModelCard: role, image kind and size, layout, dataset)
//!   checkpoint/   the facenet checkpoint (config, weights, Adam state, training state)
//! ```
//!
//! written by the training stages ([`crate::train`]) and read by [`TrainedEncoder::load`] and
//! [`LearnedRenderer::load`](crate::LearnedRenderer::load).
//!
//! [`TrainedEncoder::load`]: crate::TrainedEncoder::load

use std::path::{Path, PathBuf};

use facenet::{AlexNetConfig, Checkpoint, ImageShape, Network, NetworkConfig, ResNetConfig};
use serde::{Deserialize, Serialize};

use crate::dataset::{InputKind, Manifest, RangePolicy};
use crate::{AbsFitError, ParamLayout, Result};

/// The dynamic range (dB) of the images the learned renderer is trained on and renders (§3.4).
pub const DECODER_RANGE_DB: f32 = 15.0;

/// Version tag of `model.json`.
const CARD_FORMAT: &str = "abs-fit-model-1";
/// The model description file of a stage directory.
pub const MODEL_FILE: &str = "model.json";
/// The stage name on an iterative encoder's card (one that also reads feedback channels).
pub const ITERATIVE_STAGE: &str = "iterative";
/// The facenet checkpoint inside a stage directory.
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// Where an iterative encoder with learned feedback channels keeps its copy of the learned
/// renderer, inside its own directory.
pub const FEEDBACK_RENDERER_DIR: &str = "feedback-renderer";

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
    /// The stage that trained it: `encoder`, `decoder`, `autoencoder` or `iterative`.
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

    /// Writes `DIR/model.json` atomically, creating `DIR`.
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
        Ok(morphable::export::atomic_write(&path, text.as_bytes())?)
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

/// The card of a network trained on the dataset of `manifest`.
pub(crate) fn card_for(
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

/// The card of a decoder for the dataset of `manifest` rendering `output` images at
/// [`DECODER_RANGE_DB`].
pub(crate) fn decoder_card(manifest: &Manifest, output: InputKind) -> ModelCard {
    let objective = serde_json::json!({ "range": RangePolicy::Fixed(DECODER_RANGE_DB) });
    card_for(manifest, ModelRole::Decoder, "decoder", output, objective)
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

/// The stage directory's checkpoint path.
pub fn checkpoint_dir(dir: &Path) -> PathBuf {
    dir.join(CHECKPOINT_DIR)
}

/// The smallest power of two that brings both image sides to facenet's minimum (32 pixels).
pub(crate) fn upsample_factor(height: usize, width: usize) -> usize {
    let min = ResNetConfig::MIN_INPUT_SIZE.max(AlexNetConfig::MIN_INPUT_SIZE);
    let mut factor = 1;
    while height.min(width) * factor < min {
        factor *= 2;
    }
    factor
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Upsampling reaches facenet's 32-pixel minimum with the smallest power of two.
        #[test]
        fn upsampling_is_the_smallest_sufficient_power_of_two(h in 1usize..80, w in 1usize..80) {
            let f = upsample_factor(h, w);
            prop_assert!(f.is_power_of_two());
            prop_assert!(h.min(w) * f >= 32);
            prop_assert!(f == 1 || h.min(w) * (f / 2) < 32);
        }
    }
}
