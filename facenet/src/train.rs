//! A deterministic, resumable training loop over one network, observed rather than printed.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::{Checkpoint, TrainingState};
use crate::config::{NetworkConfig, ValidConfig, Validate};
use crate::error::{FacenetError, Result};
use crate::network::Network;
use crate::optim::Adam;
use crate::trainer_config::TrainerConfig;

/// One mini-batch as the loss function sees it.
#[derive(Debug, Clone, Copy)]
pub struct MiniBatch<'a> {
    /// Indices of the samples, into the caller's dataset.
    pub indices: &'a [usize],
    /// 0-based epoch.
    pub epoch: usize,
    /// 0-based optimiser step over the whole run.
    pub step: u64,
    /// A seed for anything random in the loss (augmentation, noise): a fixed function of the
    /// trainer's seed and `step`, so that a resumed run draws the same numbers.
    pub seed: u64,
}

/// Progress of one optimiser step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// 0-based epoch.
    pub epoch: usize,
    /// 0-based step over the whole run.
    pub step: u64,
    /// Samples in the batch.
    pub batch_size: usize,
    /// The batch loss before the update.
    pub loss: f64,
    /// The learning rate of the update.
    pub learning_rate: f64,
}

/// Progress of one epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochReport {
    /// 0-based epoch just completed.
    pub epoch: usize,
    /// Optimiser steps in the epoch.
    pub steps: usize,
    /// Mean of the batch losses, weighted by batch size.
    pub mean_loss: f64,
    /// Wall-clock duration in seconds.
    pub seconds: f64,
    /// Samples per second.
    pub samples_per_second: f64,
}

/// Watches training (progress bars, logs, early stopping); every method defaults to doing
/// nothing, as argmin's `Observe`.
pub trait TrainObserver {
    /// After every optimiser step.
    fn on_step(&mut self, _report: &StepReport) {}
    /// After every epoch: [`ControlFlow::Break`] ends [`Trainer::run`] after this epoch (its
    /// checkpoint, if due, is still written).
    fn on_epoch(&mut self, _report: &EpochReport) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
    /// After a checkpoint has been written to `dir` at the end of epoch `epoch` (0-based).
    fn on_checkpoint(&mut self, _dir: &Path, _epoch: usize) {}
}

/// The observer that observes nothing.
impl TrainObserver for () {}

impl<O: TrainObserver + ?Sized> TrainObserver for &mut O {
    fn on_step(&mut self, report: &StepReport) {
        (**self).on_step(report);
    }
    fn on_epoch(&mut self, report: &EpochReport) -> ControlFlow<()> {
        (**self).on_epoch(report)
    }
    fn on_checkpoint(&mut self, dir: &Path, epoch: usize) {
        (**self).on_checkpoint(dir, epoch);
    }
}

/// An observer that records every step's loss.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LossHistory {
    /// Loss of every step, in order.
    pub step_losses: Vec<f64>,
    /// Mean loss of every epoch, in order.
    pub epoch_losses: Vec<f64>,
}

impl TrainObserver for LossHistory {
    fn on_step(&mut self, report: &StepReport) {
        self.step_losses.push(report.loss);
    }
    fn on_epoch(&mut self, report: &EpochReport) -> ControlFlow<()> {
        self.epoch_losses.push(report.mean_loss);
        ControlFlow::Continue(())
    }
}

/// What [`Trainer::run`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingSummary {
    /// Epochs completed in total (including those before a resume).
    pub epochs: usize,
    /// Optimiser steps taken in total.
    pub steps: u64,
    /// Mean loss of the last completed epoch (NaN if none).
    pub final_loss: f64,
    /// Whether an observer stopped the run early.
    pub stopped_early: bool,
}

#[derive(Debug, Clone)]
struct CheckpointPolicy {
    dir: PathBuf,
    every_epochs: usize,
}

/// Trains one [`Network`] with [`Adam`] on mini-batches of sample indices.
///
/// The caller owns the data: the loss function receives the network and a [`MiniBatch`] of indices
/// and returns a scalar loss. Other networks the loss passes through (a frozen decoder in an
/// autoencoder) are captured by the closure; only this trainer's network is updated. Given the
/// same seed, data and loss, a run is deterministic, and a run resumed from a checkpoint
/// ([`Trainer::resume`]) continues exactly as the uninterrupted run would have.
pub struct Trainer<C: NetworkConfig> {
    network: Network<C>,
    optimizer: Adam,
    config: ValidConfig<TrainerConfig>,
    rng: ChaCha8Rng,
    epoch: usize,
    epoch_losses: Vec<f64>,
    checkpoints: Option<CheckpointPolicy>,
}

impl<C: NetworkConfig> std::fmt::Debug for Trainer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("network", &self.network)
            .field("optimizer", &self.optimizer)
            .field("config", &*self.config)
            .field("epoch", &self.epoch)
            .finish()
    }
}

/// splitmix64: a well-mixed 64-bit function of the step, for per-batch seeds.
fn batch_seed(seed: u64, step: u64) -> u64 {
    let mut z = seed ^ step.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl<C: NetworkConfig> Trainer<C> {
    /// A trainer for `network` from epoch 0.
    ///
    /// # Errors
    /// [`FacenetError::Config`] for invalid settings, [`FacenetError::Training`] if the network is
    /// frozen (nothing to train).
    pub fn new(network: Network<C>, config: TrainerConfig) -> Result<Self> {
        let config = config.check()?;
        let optimizer = Adam::new(network.trainable_vars(), config.adam)?;
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        Ok(Self {
            network,
            optimizer,
            config,
            rng,
            epoch: 0,
            epoch_losses: Vec::new(),
            checkpoints: None,
        })
    }

    /// Continues the run saved in the checkpoint `dir`: weights, BatchNorm statistics, Adam's
    /// moments and step, the shuffling generator, the settings and the loss history. Periodic
    /// checkpointing is not part of the saved state: set it again with
    /// [`Trainer::with_checkpoints`].
    ///
    /// # Errors
    /// As [`Checkpoint::load`]; [`FacenetError::Checkpoint`] if the checkpoint holds no
    /// optimiser or training state.
    pub fn resume(dir: &Path, device: &Device) -> Result<Self> {
        let loaded = Checkpoint::load::<C>(dir, device)?;
        let (Some(adam_state), Some(state)) = (loaded.optimizer, loaded.state) else {
            return Err(FacenetError::checkpoint(
                dir,
                "holds weights only: no optimiser or training state to resume from",
            ));
        };
        let config = state.trainer.check()?;
        let mut optimizer = Adam::new(loaded.network.trainable_vars(), config.adam)?;
        optimizer.load_state(adam_state)?;
        if optimizer.steps_taken() != state.step {
            return Err(FacenetError::checkpoint(
                dir,
                format!(
                    "optimiser state is at step {}, training state at step {}",
                    optimizer.steps_taken(),
                    state.step
                ),
            ));
        }
        Ok(Self {
            network: loaded.network,
            optimizer,
            config,
            rng: state.rng.restore()?,
            epoch: state.epoch,
            epoch_losses: state.epoch_losses,
            checkpoints: None,
        })
    }

    /// Writes a checkpoint to `dir` every `every_epochs` epochs and after the last one.
    ///
    /// # Errors
    /// [`FacenetError::Config`] if `every_epochs` is 0.
    pub fn with_checkpoints(
        mut self,
        dir: impl Into<PathBuf>,
        every_epochs: usize,
    ) -> Result<Self> {
        if every_epochs == 0 {
            return Err(FacenetError::config(
                "Trainer",
                "every_epochs",
                "must be at least 1",
            ));
        }
        self.checkpoints = Some(CheckpointPolicy {
            dir: dir.into(),
            every_epochs,
        });
        Ok(self)
    }

    /// Changes the total number of epochs (to extend a finished or resumed run).
    ///
    /// # Errors
    /// [`FacenetError::Config`] if `epochs` is 0.
    pub fn set_epochs(&mut self, epochs: usize) -> Result<()> {
        let mut config = (*self.config).clone();
        config.epochs = epochs;
        self.config = config.check()?;
        Ok(())
    }

    /// The network being trained.
    pub fn network(&self) -> &Network<C> {
        &self.network
    }

    /// The trained network.
    pub fn into_network(self) -> Network<C> {
        self.network
    }

    /// The optimiser.
    pub fn optimizer(&self) -> &Adam {
        &self.optimizer
    }

    /// The settings.
    pub fn config(&self) -> &TrainerConfig {
        &self.config
    }

    /// Epochs completed.
    pub fn epochs_done(&self) -> usize {
        self.epoch
    }

    /// Mean loss of every completed epoch.
    pub fn epoch_losses(&self) -> &[f64] {
        &self.epoch_losses
    }

    /// The training state as it would be saved now.
    pub fn state(&self) -> TrainingState {
        TrainingState::new(
            self.epoch,
            self.optimizer.steps_taken(),
            &self.rng,
            (*self.config).clone(),
            self.epoch_losses.clone(),
        )
    }

    /// Writes a checkpoint of the current state to `dir`.
    ///
    /// # Errors
    /// As [`Checkpoint::save`].
    pub fn save_checkpoint(&self, dir: &Path) -> Result<()> {
        Checkpoint::save(
            dir,
            &self.network,
            Some(&self.optimizer),
            Some(&self.state()),
        )
    }

    /// One epoch over `n_samples` samples.
    ///
    /// # Errors
    /// [`FacenetError::Training`] if `n_samples` is 0, no batch is left, or a loss is not a finite
    /// scalar; whatever `loss` returns.
    pub fn run_epoch<F, O>(
        &mut self,
        n_samples: usize,
        mut loss: F,
        observer: &mut O,
    ) -> Result<EpochReport>
    where
        F: FnMut(&Network<C>, &MiniBatch<'_>) -> Result<Tensor>,
        O: TrainObserver + ?Sized,
    {
        if n_samples == 0 {
            return Err(FacenetError::Training("the dataset is empty".into()));
        }
        let start = Instant::now();
        let mut order: Vec<usize> = (0..n_samples).collect();
        if self.config.shuffle {
            order.shuffle(&mut self.rng);
        }
        let (mut weighted_loss, mut samples, mut steps) = (0.0, 0usize, 0usize);
        for indices in order.chunks(self.config.batch_size) {
            if self.config.drop_last && indices.len() < self.config.batch_size {
                continue;
            }
            let step = self.optimizer.steps_taken();
            let batch = MiniBatch {
                indices,
                epoch: self.epoch,
                step,
                seed: batch_seed(self.config.seed, step),
            };
            let batch_loss = loss(&self.network, &batch)?;
            if batch_loss.rank() != 0 {
                return Err(FacenetError::Training(format!(
                    "the loss must be a scalar, got shape {:?}",
                    batch_loss.dims()
                )));
            }
            let value = batch_loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !value.is_finite() {
                return Err(FacenetError::Training(format!(
                    "loss is {value} at epoch {} step {step}",
                    self.epoch
                )));
            }
            let learning_rate = self.optimizer.learning_rate();
            self.optimizer.backward_step(&batch_loss)?;
            observer.on_step(&StepReport {
                epoch: self.epoch,
                step,
                batch_size: indices.len(),
                loss: value,
                learning_rate,
            });
            weighted_loss += value * indices.len() as f64;
            samples += indices.len();
            steps += 1;
        }
        if steps == 0 {
            return Err(FacenetError::Training(format!(
                "{n_samples} samples make no complete batch of {} (drop_last is set)",
                self.config.batch_size
            )));
        }
        let seconds = start.elapsed().as_secs_f64();
        let report = EpochReport {
            epoch: self.epoch,
            steps,
            mean_loss: weighted_loss / samples as f64,
            seconds,
            samples_per_second: samples as f64 / seconds.max(f64::MIN_POSITIVE),
        };
        self.epoch += 1;
        self.epoch_losses.push(report.mean_loss);
        Ok(report)
    }

    /// Trains until [`TrainerConfig::epochs`] epochs are done or the observer stops, writing
    /// checkpoints as set by [`Trainer::with_checkpoints`].
    ///
    /// # Errors
    /// As [`Trainer::run_epoch`] and [`Checkpoint::save`].
    pub fn run<F, O>(
        &mut self,
        n_samples: usize,
        mut loss: F,
        observer: &mut O,
    ) -> Result<TrainingSummary>
    where
        F: FnMut(&Network<C>, &MiniBatch<'_>) -> Result<Tensor>,
        O: TrainObserver + ?Sized,
    {
        let mut stopped_early = false;
        while self.epoch < self.config.epochs {
            let report = self.run_epoch(n_samples, &mut loss, observer)?;
            let flow = observer.on_epoch(&report);
            let last = self.epoch == self.config.epochs || flow.is_break();
            if let Some(policy) = &self.checkpoints
                && (self.epoch.is_multiple_of(policy.every_epochs) || last)
            {
                let dir = policy.dir.clone();
                self.save_checkpoint(&dir)?;
                observer.on_checkpoint(&dir, report.epoch);
            }
            if flow.is_break() {
                stopped_early = self.epoch < self.config.epochs;
                break;
            }
        }
        Ok(TrainingSummary {
            epochs: self.epoch,
            steps: self.optimizer.steps_taken(),
            final_loss: self.epoch_losses.last().copied().unwrap_or(f64::NAN),
            stopped_early,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_seeds_differ_between_steps_and_seeds() {
        assert_ne!(batch_seed(0, 0), batch_seed(0, 1));
        assert_ne!(batch_seed(0, 0), batch_seed(1, 0));
        assert_eq!(batch_seed(5, 9), batch_seed(5, 9));
    }
}
