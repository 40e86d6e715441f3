//! The one error type of this crate.

/// Everything that can go wrong in `radar-sim`. Each variant says what was wrong and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RadarError {
    /// An invalid configuration value (array, sweep, scene, simulation settings).
    #[error("invalid {name}: {reason}")]
    Config {
        /// What was configured (e.g. "sweep", "material").
        name: &'static str,
        /// What is wrong with it, with the offending value.
        reason: String,
    },
    /// Array sizes that disagree with each other.
    #[error("shape mismatch in {what}: expected {expected}, got {actual}")]
    Shape {
        /// The arrays concerned.
        what: &'static str,
        /// The expected shape.
        expected: String,
        /// The shape found.
        actual: String,
    },
    /// A request would need more memory than allowed.
    #[error("{what} needs {needed_bytes} bytes, over the limit of {limit_bytes} bytes")]
    Memory {
        /// What would need the memory.
        what: &'static str,
        /// Estimated bytes needed.
        needed_bytes: u64,
        /// The configured limit (bytes).
        limit_bytes: u64,
    },
    /// A file could not be read or written, or its content is not what was expected.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An I/O error on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl RadarError {
    /// Shorthand for [`RadarError::File`].
    pub fn file(path: impl Into<std::path::PathBuf>, reason: impl Into<String>) -> Self {
        Self::File {
            path: path.into(),
            reason: reason.into(),
        }
    }

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
