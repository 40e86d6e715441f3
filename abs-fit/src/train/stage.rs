//! One training stage: resume or start a facenet trainer in a stage directory, feed it
//! examples of a dataset, report progress, and hand back the trained network.

use std::ops::ControlFlow;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use facenet::{
    Checkpoint, EpochReport, Network, NetworkConfig, StepReport, TrainObserver, Trainer,
    TrainerConfig,
};

use super::TrainSchedule;
use super::schedule::steps_per_epoch;
use crate::card::{CHECKPOINT_DIR, ModelCard};
use crate::dataset::{BatchConfig, Dataset, InputKind, RangePolicy};
use crate::lock::DirLock;
use crate::{AbsFitError, Progress, Result};

/// Bridges facenet's [`TrainObserver`] to a [`Progress`], counting optimiser steps, and stops
/// the run after a given number of epochs.
struct ProgressObserver<'a> {
    progress: &'a mut dyn Progress,
    stop_after_epochs: Option<usize>,
    task: &'static str,
}

impl TrainObserver for ProgressObserver<'_> {
    fn on_step(&mut self, _report: &StepReport) {
        self.progress.advance(1);
    }

    fn on_epoch(&mut self, report: &EpochReport) -> ControlFlow<()> {
        self.progress.message(&format!(
            "{}: epoch {} loss {:.4e} ({:.1} s, {:.0} examples/s)",
            self.task,
            report.epoch + 1,
            report.mean_loss,
            report.seconds,
            report.samples_per_second
        ));
        match self.stop_after_epochs {
            Some(stop) if report.epoch + 1 >= stop => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        }
    }
}

/// What a stage directory says its network is: written when a run starts, compared when it
/// resumes.
pub(super) trait StageCard {
    /// The progress task name.
    fn task(&self) -> &'static str;
    /// Writes the card to `dir` atomically, creating `dir`.
    fn write_card(&self, dir: &Path) -> Result<()>;
    /// Fails unless the card saved in `dir` describes the same training.
    fn check_saved(&self, dir: &Path) -> Result<()>;
}

impl StageCard for ModelCard {
    fn task(&self) -> &'static str {
        stage_task(&self.stage)
    }

    fn write_card(&self, dir: &Path) -> Result<()> {
        self.write(dir)
    }

    fn check_saved(&self, dir: &Path) -> Result<()> {
        check_resumable(dir, &ModelCard::read(dir)?, self)
    }
}

/// Where a stage's network starts when there is no checkpoint to resume.
pub(super) enum Start<C: NetworkConfig> {
    /// Fresh weights from a config and seed.
    Fresh(C),
    /// The given network (the autoencoder starts from the trained encoder).
    From(Network<C>),
}

impl<C: NetworkConfig> Start<C> {
    /// The architecture the stage asks for.
    fn config(&self) -> &C {
        match self {
            Self::Fresh(c) => c,
            Self::From(n) => n.config(),
        }
    }
}

/// A network config as JSON, to compare architectures.
fn config_json<C: NetworkConfig>(config: &C) -> Result<serde_json::Value> {
    serde_json::to_value(config)
        .map_err(|e| AbsFitError::config("network config", format!("cannot be serialised: {e}")))
}

/// One stage: resume or start a trainer in `dir`, run it with `loss` over `n_samples` samples,
/// and return the trained network. `loss` errors are kept typed: the first one ends the run and
/// is returned as it was.
pub(super) fn run_stage<C, F>(
    dir: &Path,
    card: &dyn StageCard,
    start: Start<C>,
    schedule: &TrainSchedule,
    n_samples: usize,
    mut loss: F,
    progress: &mut dyn Progress,
) -> Result<Network<C>>
where
    C: NetworkConfig,
    F: FnMut(&Network<C>, &[usize], u64) -> Result<Tensor>,
{
    schedule.validate()?;
    let device = schedule.device.open()?;
    // One process per stage directory at a time; released when the stage returns.
    let _lock = DirLock::acquire(dir)?;
    let trainer_config = schedule.trainer_config(n_samples);
    let checkpoint = dir.join(CHECKPOINT_DIR);
    // Under the lock, what a killed save left is provably nobody's.
    for leftover in Checkpoint::remove_leftovers(&checkpoint)? {
        progress.message(&format!(
            "removed {}, left by an interrupted run",
            leftover.display()
        ));
    }
    let trainer = open_trainer(dir, card, start, device, trainer_config)?;
    let mut trainer = trainer.with_checkpoints(&checkpoint, schedule.checkpoint_every_epochs)?;

    let steps_per_epoch = {
        let c = trainer.config();
        steps_per_epoch(n_samples, c.batch_size, c.drop_last)
    };
    let done = trainer.epochs_done();
    let target = schedule
        .stop_after_epochs
        .map_or(schedule.epochs, |s| s.min(schedule.epochs));
    progress.start(
        card.task(),
        (target.max(done) * steps_per_epoch) as u64,
        (done * steps_per_epoch) as u64,
    );
    let mut failure: Option<AbsFitError> = None;
    let mut observer = ProgressObserver {
        progress: &mut *progress,
        stop_after_epochs: schedule.stop_after_epochs,
        task: card.task(),
    };
    let outcome = if done >= target {
        Ok(())
    } else {
        trainer
            .run(
                n_samples,
                |network, batch| {
                    loss(network, batch.indices, batch.seed).map_err(|e| {
                        let text = e.to_string();
                        failure.get_or_insert(e);
                        facenet::FacenetError::Training(text)
                    })
                },
                &mut observer,
            )
            .map(|_| ())
    };
    progress.finish();
    if let Some(e) = failure {
        return Err(e);
    }
    outcome?;
    Ok(trainer.into_network())
}

/// The trainer of a stage in `dir` on `device`: resumed from the directory's checkpoint when
/// there is one (after checking that it holds the same training), started from `start`
/// otherwise (writing the card first).
fn open_trainer<C: NetworkConfig>(
    dir: &Path,
    card: &dyn StageCard,
    start: Start<C>,
    device: Device,
    trainer_config: TrainerConfig,
) -> Result<Trainer<C>> {
    let checkpoint = dir.join(CHECKPOINT_DIR);
    Ok(if Checkpoint::exists(&checkpoint) {
        card.check_saved(dir)?;
        let saved_config = Checkpoint::read_config::<C>(&checkpoint)?;
        if config_json(&saved_config)? != config_json(start.config())? {
            return Err(AbsFitError::ModelDir {
                dir: dir.to_path_buf(),
                reason: "the checkpoint's network architecture differs from the one asked for"
                    .into(),
            });
        }
        let mut trainer = Trainer::<C>::resume(&checkpoint, &device)?;
        let saved_trainer = trainer.config().clone();
        if (TrainerConfig {
            epochs: trainer_config.epochs,
            ..saved_trainer.clone()
        }) != trainer_config
        {
            return Err(AbsFitError::ModelDir {
                dir: dir.to_path_buf(),
                reason: format!(
                    "was trained with {saved_trainer:?}, now asked for {trainer_config:?}: only \
                     the epoch count may change, and only where the learning-rate schedule \
                     does not depend on it (use stop_after_epochs to interrupt a run)"
                ),
            });
        }
        trainer.set_epochs(trainer_config.epochs)?;
        trainer
    } else {
        card.write_card(dir)?;
        let network = match start {
            Start::Fresh(config) => Network::new(config, trainer_config.seed, DType::F32, &device)?,
            Start::From(network) if network.device().same_device(&device) => network,
            Start::From(network) => network.to_device(&device)?,
        };
        Trainer::new(network, trainer_config)?
    })
}

/// The progress task name of a stage.
fn stage_task(stage: &str) -> &'static str {
    match stage {
        "encoder" => "train encoder",
        "decoder" => "train decoder",
        crate::card::ITERATIVE_STAGE => "train iterative encoder",
        _ => "train autoencoder",
    }
}

/// Fails unless a saved card describes the same training as `card`.
fn check_resumable(dir: &Path, saved: &ModelCard, card: &ModelCard) -> Result<()> {
    let differs = |what: &str| AbsFitError::ModelDir {
        dir: dir.to_path_buf(),
        reason: format!(
            "holds a run with another {what}: resume it with the same settings or use a new \
             directory"
        ),
    };
    if !saved.dataset.same_dataset(&card.dataset) || saved.dataset.range != card.dataset.range {
        return Err(differs("dataset"));
    }
    if (saved.role, &saved.stage, saved.image) != (card.role, &card.stage, card.image) {
        return Err(differs("stage or image kind"));
    }
    if saved.objective != card.objective {
        return Err(differs("loss (ranges, λ)"));
    }
    if saved != card {
        return Err(differs("layout or image size"));
    }
    Ok(())
}

/// The rows a stage trains on: the dataset's training split, which must not be empty.
pub(super) fn training_rows(dataset: &Dataset) -> Result<Vec<usize>> {
    let rows = dataset.train_rows();
    if rows.is_empty() {
        return Err(AbsFitError::dataset(
            dataset.dir(),
            "has no training samples (is it a validation-only shard?)",
        ));
    }
    Ok(rows)
}

/// A tensor (B, …) on `device` from a row-major buffer.
pub(super) fn tensor(values: Vec<f32>, shape: &[usize], device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_vec(values, shape, device)?)
}

/// Inputs (B, C, H, W) and targets (B, P) on `device` of the examples `indices` (into `rows`),
/// with the dynamic ranges drawn from `seed` by `range`.
pub(super) fn examples(
    dataset: &Dataset,
    rows: &[usize],
    indices: &[usize],
    input: InputKind,
    range: RangePolicy,
    seed: u64,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let chosen: Vec<usize> = indices.iter().map(|&i| rows[i]).collect();
    let config = BatchConfig {
        batch_size: chosen.len().max(1),
        input,
        range,
        shuffle: false,
        seed,
    };
    let mut batches = dataset.batches(&chosen, &config, 0)?;
    let batch = batches.pop().ok_or_else(|| {
        AbsFitError::config("training batch", "no example was selected for the batch")
    })?;
    let images = tensor(batch.inputs, &batch.input_shape, device)?;
    let params = tensor(
        batch.params,
        &[batch.input_shape[0], batch.n_params],
        device,
    )?;
    Ok((images, params))
}
