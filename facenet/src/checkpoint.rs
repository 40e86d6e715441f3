//! Checkpoints: a directory with the weights, the config that builds the network, and optionally
//! the optimiser state and the training state, replaced atomically as a whole.
//!
//! ```text
//! run/checkpoint/
//!   config.json            {"format": "facenet-network-1", "kind": "resnet", "config": {...}}
//!   weights.safetensors    every parameter and BatchNorm running statistic, torchvision names
//!   optimizer.safetensors  Adam's moments (exp_avg.NAME, exp_avg_sq.NAME), step and config
//!   state.json             epoch, step, shuffling generator, trainer config, loss history
//! ```
//!
//! All four files are written to a sibling staging directory, flushed to disk, and the staging
//! directory is then renamed over the old checkpoint (which is first moved aside and removed
//! afterwards), so a reader sees either the old or the new checkpoint, never a mixture. If a
//! crash strikes between the two renames, [`Checkpoint::load`] finds the moved-aside copy.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::Device;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::NetworkConfig;
use crate::error::{FacenetError, Result};
use crate::network::Network;
use crate::optim::{Adam, AdamState};
use crate::trainer_config::TrainerConfig;

/// Version tag of `config.json`.
const NETWORK_FORMAT: &str = "facenet-network-1";
/// Version of `state.json`.
const STATE_FORMAT: u32 = 1;

/// The exact state of a ChaCha8 generator, for JSON: the 32-byte seed in hex, the stream, and
/// the word position as a decimal string (a u128 does not survive JSON readers that use doubles).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The seed, 64 hex digits.
    pub seed: String,
    /// The stream number.
    pub stream: u64,
    /// Position in the key stream, in 32-bit words, decimal.
    pub word_pos: String,
}

impl RngState {
    /// Captures the state of `rng`.
    pub fn capture(rng: &ChaCha8Rng) -> Self {
        Self {
            seed: rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    /// A generator in exactly the captured state.
    ///
    /// # Errors
    /// [`FacenetError::Training`] if the seed or position cannot be parsed.
    pub fn restore(&self) -> Result<ChaCha8Rng> {
        let bad = |what: &str| FacenetError::Training(format!("generator state: invalid {what}"));
        if self.seed.len() != 64 || !self.seed.is_ascii() {
            return Err(bad("seed (expected 64 hex digits)"));
        }
        let mut seed = [0u8; 32];
        for (i, byte) in seed.iter_mut().enumerate() {
            *byte =
                u8::from_str_radix(&self.seed[2 * i..2 * i + 2], 16).map_err(|_| bad("seed"))?;
        }
        let word_pos: u128 = self.word_pos.parse().map_err(|_| bad("word position"))?;
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(word_pos);
        Ok(rng)
    }
}

/// Where a training run stands, saved as `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// Version of this layout.
    pub format_version: u32,
    /// Epochs completed.
    pub epoch: usize,
    /// Optimiser steps taken.
    pub step: u64,
    /// The batch-shuffling generator after `epoch` epochs.
    pub rng: RngState,
    /// The trainer's settings.
    pub trainer: TrainerConfig,
    /// Mean training loss of every completed epoch.
    pub epoch_losses: Vec<f64>,
    /// Anything the caller wants to keep with the run (dataset identity, notes); `null` if unused.
    #[serde(default)]
    pub extra: serde_json::Value,
}

impl TrainingState {
    /// A state at `epoch` / `step` with generator `rng`.
    pub fn new(
        epoch: usize,
        step: u64,
        rng: &ChaCha8Rng,
        trainer: TrainerConfig,
        epoch_losses: Vec<f64>,
    ) -> Self {
        Self {
            format_version: STATE_FORMAT,
            epoch,
            step,
            rng: RngState::capture(rng),
            trainer,
            epoch_losses,
            extra: serde_json::Value::Null,
        }
    }
}

/// A checkpoint read back by [`Checkpoint::load`].
#[derive(Debug)]
pub struct LoadedCheckpoint<C: NetworkConfig> {
    /// The network, with the saved weights and running statistics (not frozen).
    pub network: Network<C>,
    /// The optimiser state, if one was saved.
    pub optimizer: Option<AdamState>,
    /// The training state, if one was saved.
    pub state: Option<TrainingState>,
}

#[derive(Serialize, Deserialize)]
struct ConfigFile<C> {
    format: String,
    kind: String,
    config: C,
}

#[derive(Deserialize)]
struct ConfigHeader {
    format: String,
    kind: String,
}

/// Reading and writing checkpoint directories.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoint;

impl Checkpoint {
    /// File holding the network config.
    pub const CONFIG: &'static str = "config.json";
    /// File holding the weights.
    pub const WEIGHTS: &'static str = "weights.safetensors";
    /// File holding the optimiser state.
    pub const OPTIMIZER: &'static str = "optimizer.safetensors";
    /// File holding the training state.
    pub const STATE: &'static str = "state.json";

    /// Writes a checkpoint of `network` (and, if given, the optimiser and training state) to the
    /// directory `dir`, atomically replacing whatever checkpoint was there.
    ///
    /// # Errors
    /// [`FacenetError::Io`] / [`FacenetError::Weights`] / [`FacenetError::Json`] naming the file
    /// that could not be written; [`FacenetError::Checkpoint`] if `dir` has no file name.
    pub fn save<C: NetworkConfig>(
        dir: &Path,
        network: &Network<C>,
        optimizer: Option<&Adam>,
        state: Option<&TrainingState>,
    ) -> Result<()> {
        let (parent, name) = split_dir(dir)?;
        std::fs::create_dir_all(&parent).map_err(|e| FacenetError::io(&parent, e))?;
        let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| FacenetError::io(&staging, e))?;
        }
        std::fs::create_dir(&staging).map_err(|e| FacenetError::io(&staging, e))?;

        let config = ConfigFile {
            format: NETWORK_FORMAT.to_string(),
            kind: C::KIND.to_string(),
            config: network.config(),
        };
        write_json(&staging.join(Self::CONFIG), &config)?;
        let weights = staging.join(Self::WEIGHTS);
        network.save_weights(&weights)?;
        sync_file(&weights)?;
        if let Some(optimizer) = optimizer {
            let path = staging.join(Self::OPTIMIZER);
            optimizer.save(&path)?;
            sync_file(&path)?;
        }
        if let Some(state) = state {
            write_json(&staging.join(Self::STATE), state)?;
        }

        let previous = parent.join(format!(".{name}.previous-{}", std::process::id()));
        if dir.exists() {
            if previous.exists() {
                std::fs::remove_dir_all(&previous).map_err(|e| FacenetError::io(&previous, e))?;
            }
            std::fs::rename(dir, &previous).map_err(|e| FacenetError::io(dir, e))?;
        }
        std::fs::rename(&staging, dir).map_err(|e| FacenetError::io(dir, e))?;
        if previous.exists() {
            std::fs::remove_dir_all(&previous).map_err(|e| FacenetError::io(&previous, e))?;
        }
        Ok(())
    }

    /// Removes what interrupted saves of the checkpoint `dir` left beside it: staging
    /// directories (`.NAME.partial-PID`) always, and the previous copies
    /// (`.NAME.previous-PID`) once `dir` itself holds a complete checkpoint. Returns what was
    /// removed. Call it only while no other process writes this checkpoint (abs-fit holds its
    /// directory's lock).
    ///
    /// # Errors
    /// [`FacenetError::Io`] naming a leftover that could not be removed.
    pub fn remove_leftovers(dir: &Path) -> Result<Vec<PathBuf>> {
        let (parent, name) = split_dir(dir)?;
        let complete = dir.join(Self::CONFIG).exists() && dir.join(Self::WEIGHTS).exists();
        let partial = format!(".{name}.partial-");
        let previous = format!(".{name}.previous-");
        let mut removed = Vec::new();
        let Ok(entries) = std::fs::read_dir(&parent) else {
            return Ok(removed);
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            if file_name.starts_with(&partial) || (complete && file_name.starts_with(&previous)) {
                let path = entry.path();
                std::fs::remove_dir_all(&path).map_err(|e| FacenetError::io(&path, e))?;
                removed.push(path);
            }
        }
        removed.sort();
        Ok(removed)
    }

    /// Reads the network config stored in a checkpoint.
    ///
    /// # Errors
    /// [`FacenetError::Checkpoint`] if the config was written for another kind of network or
    /// another format; [`FacenetError::Io`] / [`FacenetError::Json`] if it cannot be read.
    pub fn read_config<C: NetworkConfig>(dir: &Path) -> Result<C> {
        let dir = resolve(dir)?;
        let path = dir.join(Self::CONFIG);
        let text = std::fs::read_to_string(&path).map_err(|e| FacenetError::io(&path, e))?;
        let header: ConfigHeader =
            serde_json::from_str(&text).map_err(|e| FacenetError::json(&path, e))?;
        if header.format != NETWORK_FORMAT {
            return Err(FacenetError::checkpoint(
                &dir,
                format!(
                    "config format '{}', expected '{NETWORK_FORMAT}'",
                    header.format
                ),
            ));
        }
        if header.kind != C::KIND {
            return Err(FacenetError::checkpoint(
                &dir,
                format!("holds a '{}' network, expected '{}'", header.kind, C::KIND),
            ));
        }
        let file: ConfigFile<C> =
            serde_json::from_str(&text).map_err(|e| FacenetError::json(&path, e))?;
        Ok(file.config)
    }

    /// Reads a checkpoint onto `device`: the network (in the dtype of the saved weights), and the
    /// optimiser and training states if present.
    ///
    /// # Errors
    /// As [`Checkpoint::read_config`], [`Network::from_weights`], [`Adam::read_state`]; a
    /// [`FacenetError::Json`] for an unreadable `state.json`.
    pub fn load<C: NetworkConfig>(dir: &Path, device: &Device) -> Result<LoadedCheckpoint<C>> {
        let config = Self::read_config::<C>(dir)?;
        let dir = resolve(dir)?;
        let network = Network::from_weights(config, &dir.join(Self::WEIGHTS), device)?;
        let optimizer_path = dir.join(Self::OPTIMIZER);
        let optimizer = if optimizer_path.exists() {
            Some(Adam::read_state(&optimizer_path, device)?)
        } else {
            None
        };
        let state_path = dir.join(Self::STATE);
        let state = if state_path.exists() {
            let text = std::fs::read_to_string(&state_path)
                .map_err(|e| FacenetError::io(&state_path, e))?;
            let state: TrainingState =
                serde_json::from_str(&text).map_err(|e| FacenetError::json(&state_path, e))?;
            if state.format_version != STATE_FORMAT {
                return Err(FacenetError::checkpoint(
                    &dir,
                    format!(
                        "state format version {}, expected {STATE_FORMAT}",
                        state.format_version
                    ),
                ));
            }
            Some(state)
        } else {
            None
        };
        Ok(LoadedCheckpoint {
            network,
            optimizer,
            state,
        })
    }

    /// Whether `dir` (or a copy moved aside by an interrupted save) holds a checkpoint.
    pub fn exists(dir: &Path) -> bool {
        resolve(dir).is_ok()
    }
}

/// The parent directory and final name of a checkpoint directory.
fn split_dir(dir: &Path) -> Result<(PathBuf, String)> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| FacenetError::checkpoint(dir, "the path has no final directory name"))?
        .to_string();
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name))
}

/// The directory to read: `dir` itself, or the copy an interrupted save moved aside.
fn resolve(dir: &Path) -> Result<PathBuf> {
    if dir.join(Checkpoint::CONFIG).exists() && dir.join(Checkpoint::WEIGHTS).exists() {
        return Ok(dir.to_path_buf());
    }
    let (parent, name) = split_dir(dir)?;
    let prefix = format!(".{name}.previous-");
    if !dir.exists()
        && let Ok(entries) = std::fs::read_dir(&parent)
    {
        for entry in entries.flatten() {
            let candidate = entry.path();
            let is_copy = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix));
            if is_copy
                && candidate.join(Checkpoint::CONFIG).exists()
                && candidate.join(Checkpoint::WEIGHTS).exists()
            {
                return Ok(candidate);
            }
        }
    }
    Err(FacenetError::checkpoint(
        dir,
        format!(
            "no {} and {} found",
            Checkpoint::CONFIG,
            Checkpoint::WEIGHTS
        ),
    ))
}

fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| FacenetError::json(path, e))?;
    let mut file = File::create(path).map_err(|e| FacenetError::io(path, e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|e| FacenetError::io(path, e))
}

fn sync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| FacenetError::io(path, e))
}
