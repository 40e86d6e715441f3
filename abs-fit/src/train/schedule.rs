//! How long, in what batches and at what learning rate a stage trains.

use facenet::{AdamConfig, ComputeDevice, LinearSchedule, TrainerConfig};
use serde::{Deserialize, Serialize};

use crate::{AbsFitError, Result};

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

    /// The largest learning rate accepted: Adam's steps are about the rate in size, and the
    /// parameters are O(1), so a rate above 1 throws them away (the paper's largest is 0.01).
    pub const MAX: f64 = 1.0;

    /// Checks that both rates lie in (0, [`LearningRate::MAX`]] and the fraction in [0, 1].
    pub fn validate(&self) -> Result<()> {
        for (field, lr) in [("start", self.start), ("end", self.end)] {
            if !(lr.is_finite() && lr > 0.0 && lr <= Self::MAX) {
                return Err(AbsFitError::config(
                    "learning rate",
                    format!("{field} = {lr} must lie in (0, {}]", Self::MAX),
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
    /// The most epochs a schedule may ask for: far beyond any real run, so that step counts
    /// never overflow.
    pub const MAX_EPOCHS: usize = 1_000_000;

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
        if self.epochs > Self::MAX_EPOCHS {
            return Err(AbsFitError::config(
                "epochs",
                format!(
                    "{} is more than {} (the paper trains 300)",
                    self.epochs,
                    Self::MAX_EPOCHS
                ),
            ));
        }
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
    pub(super) fn trainer_config(&self, n_samples: usize) -> TrainerConfig {
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

/// Optimiser steps in an epoch of `n_samples` examples.
pub(super) fn steps_per_epoch(n_samples: usize, batch_size: usize, drop_last: bool) -> usize {
    if drop_last {
        n_samples / batch_size
    } else {
        n_samples.div_ceil(batch_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use facenet::LinearSchedule;
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
