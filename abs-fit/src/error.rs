//! The one error type of this crate.

/// Everything that can go wrong in `abs-fit`. Each variant says what was wrong and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AbsFitError {
    /// An invalid configuration value.
    #[error("invalid {name}: {reason}")]
    Config { name: &'static str, reason: String },
    /// Sizes that disagree.
    #[error("shape mismatch in {what}: expected {expected}, got {actual}")]
    Shape {
        what: &'static str,
        expected: String,
        actual: String,
    },
    /// A dataset directory that cannot be used as it is.
    #[error("dataset {dir}: {reason}")]
    Dataset {
        dir: std::path::PathBuf,
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A face-model error.
    #[error(transparent)]
    Model(#[from] morphable::MorphableError),
    /// An imaging (back-projection) error.
    #[error(transparent)]
    Imaging(#[from] backproject::BackprojectError),
    /// A tensor error.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    /// A radar simulation error.
    #[error(transparent)]
    Radar(#[from] radar_sim::RadarError),
    /// A neural-network error (building, running, checkpointing a network).
    #[error(transparent)]
    Network(#[from] facenet::FacenetError),
    /// An output directory another process is writing (its advisory lock is held).
    #[error(
        "{dir} is in use by another radar-face process (pid {holder}, lock file {lock_file}): \
         wait for it to finish or stop it"
    )]
    Locked {
        dir: std::path::PathBuf,
        lock_file: std::path::PathBuf,
        holder: String,
    },
    /// A training or model directory that cannot be used as it is (a resumed run whose settings
    /// differ, a model file of the wrong kind).
    #[error("model directory {dir}: {reason}")]
    ModelDir {
        dir: std::path::PathBuf,
        reason: String,
    },
}

impl AbsFitError {
    /// Shorthand for [`AbsFitError::Config`].
    pub fn config(name: &'static str, reason: impl Into<String>) -> Self {
        Self::Config {
            name,
            reason: reason.into(),
        }
    }
}

impl AbsFitError {
    /// Shorthand for [`AbsFitError::Dataset`].
    pub fn dataset(dir: &std::path::Path, reason: impl Into<String>) -> Self {
        Self::Dataset {
            dir: dir.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = AbsFitError> = std::result::Result<T, E>;
