//! Validated configurations: construct → [`Validate::check`] → use.
//!
//! Every config of this crate (networks, optimiser, schedule, trainer) is a plain serde struct.
//! Only a [`ValidConfig`], which [`Validate::check`] alone can make, is accepted by the code that
//! builds networks or trains them, so an invalid value is a typed error at construction and
//! never a panic deep inside candle.

use std::ops::Deref;

use candle_nn::VarBuilder;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Result;

/// A configuration that can check its own values.
pub trait Validate: Sized {
    /// Checks every field and every relation between fields.
    ///
    /// # Errors
    /// [`crate::FacenetError::Config`] naming the config, the field and what is wrong.
    fn validate(&self) -> Result<()>;

    /// Validates and wraps the config so that it can be used.
    ///
    /// # Errors
    /// As [`Validate::validate`].
    fn check(self) -> Result<ValidConfig<Self>> {
        self.validate()?;
        Ok(ValidConfig(self))
    }
}

/// A config whose values have been checked by [`Validate::check`]; read it through `Deref`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct ValidConfig<C>(C);

impl<C> ValidConfig<C> {
    /// The checked config, unwrapped.
    pub fn into_inner(self) -> C {
        self.0
    }
}

impl<C> Deref for ValidConfig<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.0
    }
}

/// A network architecture: a serialisable config that builds a candle module.
///
/// The config is what `config.json` of a checkpoint holds, so that the weights in
/// `weights.safetensors` can be loaded back into the same architecture by anyone.
pub trait NetworkConfig:
    Validate + Clone + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The module this config builds.
    type Module: Send + Sync;

    /// The tag written next to the config in `config.json` (`"resnet"`, `"decoder"`, ...), checked
    /// when a checkpoint is loaded.
    const KIND: &'static str;

    /// Builds the module, creating (or reading) its parameters through `vb` under
    /// torchvision-style names.
    ///
    /// # Errors
    /// A candle error if a parameter cannot be created or has an unexpected shape.
    fn build(config: &ValidConfig<Self>, vb: VarBuilder) -> Result<Self::Module>;
}

/// The shape of one image: channels, height and width in pixels (the C, H, W of (B, C, H, W)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ImageShape {
    /// Number of channels C (e.g. 1 for an amplitude image, 2 for amplitude and depth).
    pub channels: usize,
    /// Height H in pixels.
    pub height: usize,
    /// Width W in pixels.
    pub width: usize,
}

impl ImageShape {
    /// An image shape of `channels` × `height` × `width`.
    pub fn new(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            height,
            width,
        }
    }
}

impl std::fmt::Display for ImageShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}×{}×{}", self.channels, self.height, self.width)
    }
}
