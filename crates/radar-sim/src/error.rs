//! The one error type of this crate.

/// Everything that can go wrong in `radar-sim`. Each variant says what was wrong and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RadarError {
    /// An invalid configuration value (array, sweep, scene, simulation settings).
    #[error("invalid {name}: {reason}")]
    Config { name: &'static str, reason: String },
    /// Array sizes that disagree with each other.
    #[error("shape mismatch in {what}: expected {expected}, got {actual}")]
    Shape {
        what: &'static str,
        expected: String,
        actual: String,
    },
    /// A request would need more memory than allowed.
    #[error("{what} needs {needed_bytes} bytes, over the limit of {limit_bytes} bytes")]
    Memory {
        what: &'static str,
        needed_bytes: u64,
        limit_bytes: u64,
    },
    /// A file could not be read or written.
    #[error("{path}: {reason}")]
    File {
        path: std::path::PathBuf,
        reason: String,
    },
}

impl RadarError {
    /// Shorthand for [`RadarError::Config`].
    pub fn config(name: &'static str, reason: impl Into<String>) -> Self {
        Self::Config {
            name,
            reason: reason.into(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = RadarError> = std::result::Result<T, E>;
