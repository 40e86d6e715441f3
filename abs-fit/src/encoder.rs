//! A trained face encoder: images to scaled parameter vectors, read from a stage directory.

use std::path::Path;

use candle_core::{Device, Tensor};
use facenet::{BranchedEncoderConfig, Checkpoint, Encoder, Network};

use crate::card::{CHECKPOINT_DIR, ModelCard, ModelRole, save_model};
use crate::dataset::InputKind;
use crate::{AbsFitError, ParamLayout, Result};

/// Runs an encoder on images (B, C, H, W) after upsampling them `factor`× (a power of two).
pub(crate) fn encode_upsampled(
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
    pub(crate) network: Network<BranchedEncoderConfig>,
    pub(crate) card: ModelCard,
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

    /// The paper's name of the encoder's Table 1 row: "Encoder (Depth)", "Autoencoder
    /// (Amp.-Depth)", ..., "Autoencoder with physics decoder (Amp.-Depth)" (or "... (other
    /// speckle)") for one trained through the physics, with ", N faces" inside the brackets for
    /// an autoencoder trained on the first N faces only, and " + 3D-ID loss (linear)",
    /// "(learned)", "(distilled)" or "(distilled, centred)" for an encoder trained with an
    /// identity loss.
    pub fn method_name(&self) -> String {
        let objective = &self.card.objective;
        let stage = match self.card.stage.as_str() {
            "autoencoder" => match objective.get("decoder").and_then(|d| d.get("physics")) {
                Some(physics) => match physics.get("seeds").and_then(|s| s.as_str()) {
                    Some("other") => "Autoencoder with physics decoder (other speckle)",
                    _ => "Autoencoder with physics decoder",
                },
                None => "Autoencoder",
            },
            _ => "Encoder",
        };
        let faces = objective
            .get("train_faces")
            .and_then(|n| n.as_u64())
            .map_or(String::new(), |n| format!(", {n} faces"));
        let id_loss = objective.get("id_loss");
        let centred = id_loss.and_then(|loss| loss.get("centred")) == Some(&true.into());
        let identity = id_loss
            .and_then(|loss| loss.get("kind"))
            .and_then(|kind| kind.as_str())
            .map_or(String::new(), |kind| {
                let centred = if centred { ", centred" } else { "" };
                format!(" + 3D-ID loss ({kind}{centred})")
            });
        format!("{stage} ({}{faces}){identity}", self.input().paper_name())
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
        if card.stage == crate::card::ITERATIVE_STAGE {
            return Err(AbsFitError::ModelDir {
                dir: dir.to_path_buf(),
                reason: "holds an iterative encoder, which also reads feedback channels: load \
                         it with IterativeEncoder::load"
                    .into(),
            });
        }
        let network = Checkpoint::load(&dir.join(CHECKPOINT_DIR), device)?.network;
        Ok(Self { network, card })
    }
}
