//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong in `facenet`. Each variant says what was wrong and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FacenetError {
    /// A configuration value is out of range or inconsistent with another.
    #[error("invalid {config} config: {field}: {reason}")]
    Config {
        /// The config type, e.g. `ResNetConfig`.
        config: &'static str,
        /// The offending field, e.g. `base_width`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor handed to a network has the wrong rank, size, channel count or dtype.
    #[error("{network}: input {what}: expected {expected}, got {actual}")]
    Input {
        /// The network that rejected the input, e.g. `ResNet`.
        network: &'static str,
        /// What was checked: `shape`, `channels`, `dtype`...
        what: &'static str,
        /// What the network accepts.
        expected: String,
        /// What it was given.
        actual: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file (network config, training state) could not be parsed or written.
    #[error("{path}: {source}")]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A safetensors file is unreadable or does not match the network or optimiser it should fill.
    #[error("{path}: {reason}")]
    Weights {
        /// The safetensors file.
        path: PathBuf,
        /// What is missing, extra or of the wrong shape or dtype.
        reason: String,
    },
    /// A checkpoint directory is incomplete or was written for another kind of network.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An optimiser state does not match the parameters it is loaded into.
    #[error("optimizer state: {0}")]
    OptimizerState(String),
    /// Training cannot proceed (nothing to train, empty dataset, loss not a scalar, loss NaN...).
    #[error("training: {0}")]
    Training(String),
    /// A tensor operation failed inside candle.
    #[error("tensor operation: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Result alias of this crate.
pub type Result<T, E = FacenetError> = std::result::Result<T, E>;

impl FacenetError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn json(path: impl Into<PathBuf>, source: serde_json::Error) -> Self {
        Self::Json {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn weights(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Weights {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Checkpoint {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn config(
        config: &'static str,
        field: &'static str,
        reason: impl Into<String>,
    ) -> Self {
        Self::Config {
            config,
            field,
            reason: reason.into(),
        }
    }
}
