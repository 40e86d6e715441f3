//! The settings of a training run: epochs, batches, shuffling and the optimiser. Checkpoints
//! store them, so they sit below both the trainer and the checkpoint.

use serde::{Deserialize, Serialize};

use crate::config::Validate;
use crate::error::{FacenetError, Result};
use crate::optim::AdamConfig;

/// Settings of a [`Trainer`](crate::Trainer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerConfig {
    /// Epochs to train in total (a resumed run continues up to this count).
    pub epochs: usize,
    /// Samples per optimiser step (the paper: 50 for encoders, 150 for the decoder).
    pub batch_size: usize,
    /// Seed of the batch-shuffling generator and of the per-batch seeds.
    pub seed: u64,
    /// Whether each epoch visits the samples in a fresh random order.
    pub shuffle: bool,
    /// Whether an incomplete last batch is skipped (BatchNorm needs two values per channel).
    pub drop_last: bool,
    /// The optimiser.
    pub adam: AdamConfig,
}

impl TrainerConfig {
    /// `epochs` epochs of batches of `batch_size`, shuffled with seed 0, last batch kept.
    pub fn new(epochs: usize, batch_size: usize, adam: AdamConfig) -> Self {
        Self {
            epochs,
            batch_size,
            seed: 0,
            shuffle: true,
            drop_last: false,
            adam,
        }
    }

    /// The same settings with another seed.
    pub fn with_seed(self, seed: u64) -> Self {
        Self { seed, ..self }
    }
}

impl Validate for TrainerConfig {
    fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(FacenetError::config(
                "TrainerConfig",
                "epochs",
                "must be at least 1",
            ));
        }
        if self.batch_size == 0 {
            return Err(FacenetError::config(
                "TrainerConfig",
                "batch_size",
                "must be at least 1",
            ));
        }
        self.adam.validate()
    }
}
