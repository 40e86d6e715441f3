//! The learned renderer (§3.4): a trained reversed-ResNet decoder from scaled parameter vectors to
//! images at [`DECODER_RANGE_DB`](crate::card::DECODER_RANGE_DB), differentiable, frozen.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use facenet::{Checkpoint, DecoderConfig, ImageDecoder, Network};

use super::Renderer;
use crate::card::{
    CHECKPOINT_DIR, DECODER_RANGE_DB, ModelCard, ModelRole, decoder_card, save_model,
};
use crate::dataset::{Fnv1a, InputKind, Manifest};
use crate::{AbsFitError, ParamLayout, Result};

/// A trained decoder used as a [`Renderer`]: (B, P) scaled parameters → (B, C, H, W) images of
/// its [`InputKind`] at its dynamic range (15 dB).
///
/// The network is frozen: it runs in evaluation mode (BatchNorm running statistics), its weights
/// enter the graph detached, and gradients flow only to the parameters, so fitting or
/// autoencoder training never changes it. Its dynamic-range input column was always the 15 dB
/// value in training; other values are outside what it has learned.
#[derive(Debug)]
pub struct LearnedRenderer {
    network: Network<DecoderConfig>,
    card: ModelCard,
    name: String,
}

impl LearnedRenderer {
    /// Wraps a decoder network described by `card` (role decoder), freezing it.
    pub(crate) fn from_parts(mut network: Network<DecoderConfig>, card: ModelCard) -> Result<Self> {
        let shape = network.output_shape();
        if network.input_dim() != card.layout.len() || shape != card.image_shape() {
            return Err(AbsFitError::Shape {
                what: "learned renderer network vs its model card",
                expected: format!("{} parameters → {}", card.layout.len(), card.image_shape()),
                actual: format!("{} parameters → {shape}", network.input_dim()),
            });
        }
        network.freeze()?;
        let name = format!("learned-{}", card.image.name());
        Ok(Self {
            network,
            card,
            name,
        })
    }

    /// An untrained renderer: a freshly initialised decoder of network size `preset` (weights
    /// drawn from `seed`, f32 on the CPU) for the dataset described by `manifest` (see
    /// [`DatasetConfig::manifest`](crate::dataset::DatasetConfig::manifest)), rendering
    /// `output` images. Its images are meaningless; it costs what a trained one of the same
    /// size costs, for timing and for tests.
    pub fn untrained(
        preset: facenet::NetworkSize,
        manifest: &Manifest,
        output: InputKind,
        seed: u64,
    ) -> Result<Self> {
        let card = decoder_card(manifest, output);
        let config = preset.decoder(card.layout.len(), card.image_shape());
        let network = Network::new(config, seed, DType::F32, &Device::Cpu)?;
        Self::from_parts(network, card)
    }

    /// Reads a renderer written by [`LearnedRenderer::save`] or by
    /// [`train_decoder`](crate::train::train_decoder) from `dir` onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let card = ModelCard::read(dir)?;
        card.expect_role(ModelRole::Decoder, dir)?;
        let network = Checkpoint::load(&dir.join(CHECKPOINT_DIR), device)?.network;
        Self::from_parts(network, card)
    }

    /// Writes the renderer to `dir` (`model.json` and a weights-only checkpoint).
    pub fn save(&self, dir: &Path) -> Result<()> {
        save_model(dir, &self.card, &self.network)
    }

    /// The frozen decoder network.
    pub fn network(&self) -> &Network<DecoderConfig> {
        &self.network
    }

    /// What the renderer maps from and to.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The kind of images it renders.
    pub fn output(&self) -> InputKind {
        self.card.image
    }

    /// The layout of the parameter vectors it reads.
    pub fn layout(&self) -> &ParamLayout {
        &self.card.layout
    }

    /// The dynamic range (dB) of the images it renders, the only value its D column was
    /// trained at ([`DECODER_RANGE_DB`] for a card that does not say).
    pub fn dynamic_range_db(&self) -> f32 {
        self.card.dynamic_range_db.unwrap_or(DECODER_RANGE_DB)
    }

    /// A fingerprint of its weights (FNV-1a 64 over every tensor's name and f32 values, in
    /// name order, as 16 hex digits): two renderers with the same fingerprint draw the same
    /// images. Stages that read a renderer record it, so a run resumes only with the same one.
    pub fn fingerprint(&self) -> Result<String> {
        let mut h = Fnv1a::default();
        for (name, tensor) in self.network.params().snapshot()? {
            h.write(name.as_bytes());
            let values: Vec<f32> = tensor
                .to_device(&Device::Cpu)?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1()?;
            for v in values {
                h.write(&v.to_le_bytes());
            }
        }
        Ok(format!("{:016x}", h.0))
    }
}

impl Renderer for LearnedRenderer {
    fn name(&self) -> &str {
        &self.name
    }

    fn render(&self, params: &Tensor) -> Result<Tensor> {
        let p = self.card.layout.len();
        match params.dims() {
            [_, cols] if *cols == p => {}
            dims => {
                return Err(AbsFitError::Shape {
                    what: "learned renderer parameters",
                    expected: format!("(B, {p})"),
                    actual: format!("{dims:?}"),
                });
            }
        }
        let params = params
            .to_dtype(self.network.dtype())?
            .to_device(self.network.device())?;
        Ok(self.network.decode(&params, false)?)
    }

    fn is_differentiable(&self) -> bool {
        true
    }

    fn image_shape(&self) -> (usize, usize, usize) {
        let s = self.network.output_shape();
        (s.channels, s.height, s.width)
    }
}
