//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong in `morphable`. Each variant says what was wrong and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MorphableError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not HDF5, or its HDF5 structures are damaged.
    #[error("{path}: not a readable HDF5 file: {reason}")]
    NotHdf5 { path: PathBuf, reason: String },
    /// A group or dataset the statismo layout requires is absent.
    #[error("{path}: missing HDF5 object '{object}'")]
    Missing { path: PathBuf, object: String },
    /// A dataset has the wrong shape.
    #[error("{path}: dataset '{dataset}' has shape {actual:?}, expected {expected}")]
    Shape {
        path: PathBuf,
        dataset: String,
        expected: String,
        actual: Vec<u64>,
    },
    /// A dataset's values are unusable (NaN, negative variance, index out of range, wrong type...).
    #[error("{path}: dataset '{dataset}': {reason}")]
    Value {
        path: PathBuf,
        dataset: String,
        reason: String,
    },
    /// Two parts of a model disagree (vertex counts, triangle indices...).
    #[error("inconsistent model: {0}")]
    Inconsistent(String),
    /// A coefficient vector is longer than the model has components, or holds NaN.
    #[error("{kind} coefficients: {reason}")]
    Coefficients { kind: &'static str, reason: String },
    /// A mesh does not match the model or is malformed.
    #[error("mesh: {0}")]
    Mesh(String),
    /// An invalid configuration value.
    #[error("invalid {name}: {reason}")]
    Config { name: &'static str, reason: String },
}

/// Result alias of this crate.
pub type Result<T, E = MorphableError> = std::result::Result<T, E>;

impl MorphableError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
