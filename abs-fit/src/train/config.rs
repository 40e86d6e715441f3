//! The settings of the three training stages, with the paper's values.

use facenet::PoseNetwork;
use serde::{Deserialize, Serialize};

use super::{IdLoss, LearningRate, ParamLoss, TrainSchedule};
use crate::dataset::RangePolicy;
use crate::{AbsFitError, Result};

/// Settings of [`train_encoder`](super::train_encoder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderTrainConfig {
    /// Network sizes ([`facenet::NetworkSize::Paper`]: ResNet-50s and the published AlexNet).
    pub preset: facenet::NetworkSize,
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
    /// An identity-loss term beside the parameter loss (the 3D-ID paper; the radar paper: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_loss: Option<IdLoss>,
}

impl EncoderTrainConfig {
    /// The paper's settings (§3.5) at network size `preset`: 200 epochs, batches of 50,
    /// 0.01 → 0.001 over 150 epochs, D ~ U(15, 30) dB, the L2 parameter loss, an AlexNet for
    /// the pose.
    pub fn paper(preset: facenet::NetworkSize) -> Self {
        Self {
            preset,
            schedule: TrainSchedule::new(200, 50, LearningRate::PAPER_ENCODER),
            range: RangePolicy::TRAIN,
            param_loss: ParamLoss::L2,
            pose_network: PoseNetwork::AlexNet,
            id_loss: None,
        }
    }

    /// Checks the schedule, the parameter loss and the identity loss.
    pub fn validate(&self) -> Result<()> {
        self.schedule.validate()?;
        self.param_loss.validate()?;
        self.id_loss.as_ref().map_or(Ok(()), IdLoss::validate)
    }
}

/// Settings of [`train_decoder`](super::train_decoder).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DecoderTrainConfig {
    /// Network size of the reversed ResNet.
    pub preset: facenet::NetworkSize,
    /// Epochs, batches, learning rate, seed.
    pub schedule: TrainSchedule,
}

impl DecoderTrainConfig {
    /// The paper's settings (§3.5): 300 epochs, batches of 150, a constant 0.001.
    pub fn paper(preset: facenet::NetworkSize) -> Self {
        Self {
            preset,
            schedule: TrainSchedule::new(300, 150, LearningRate::constant(0.001)),
        }
    }
}

/// Settings of [`train_autoencoder`](super::train_autoencoder); the encoder's architecture is that of the encoder it
/// starts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoencoderTrainConfig {
    /// Epochs, batches, learning rate, seed (the seed drives shuffling and D draws only).
    pub schedule: TrainSchedule,
    /// λ of L = L_image + λ·L_params (the paper: 1); finite and non-negative.
    pub lambda: f64,
    /// Dynamic range per input example (the paper: [`RangePolicy::TRAIN`]); the decoder's target
    /// is always at [`DECODER_RANGE_DB`](crate::card::DECODER_RANGE_DB).
    pub range: RangePolicy,
    /// L_params (the paper: [`ParamLoss::L2`]).
    #[serde(default)]
    pub param_loss: ParamLoss,
    /// Train on the first this many training faces only (at least 1; `None`: all of them): a
    /// budget for a costly decoder such as the physics
    /// ([`FrozenDecoder::physics`](super::FrozenDecoder::physics)), and for a learned-decoder
    /// control on the same faces.
    #[serde(default)]
    pub train_faces: Option<usize>,
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
            train_faces: None,
        }
    }

    /// Checks the schedule, λ, the parameter loss and the number of training faces.
    pub fn validate(&self) -> Result<()> {
        self.schedule.validate()?;
        self.param_loss.validate()?;
        if self.train_faces == Some(0) {
            return Err(AbsFitError::config(
                "autoencoder training faces",
                "must be at least 1",
            ));
        }
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return Err(AbsFitError::config(
                "autoencoder lambda",
                format!("{} must be finite and non-negative", self.lambda),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autoencoder_lambda_must_be_finite() {
        let ae = AutoencoderTrainConfig {
            lambda: f64::NAN,
            ..AutoencoderTrainConfig::paper()
        };
        assert!(ae.validate().is_err());
    }
}
