//! The one error type of this crate.

use radar_sim::RadarError;

/// Everything that can go wrong in `backproject`. Each variant says what was wrong and where,
/// with the numbers involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackprojectError {
    /// An error of the radar description (array, sweep, signal cube shape), passed through.
    #[error(transparent)]
    Radar(#[from] RadarError),
    /// A grid axis that is empty, inverted or not finite.
    #[error("invalid {axis} axis (start {start_m} m, stop {stop_m} m, step {step_m} m): {reason}")]
    InvalidAxis {
        /// `"x"`, `"y"` or `"z"`.
        axis: &'static str,
        /// First coordinate (m).
        start_m: f64,
        /// Exclusive end (m).
        stop_m: f64,
        /// Step (m).
        step_m: f64,
        /// What is wrong with it.
        reason: String,
    },
    /// A computation would need more memory than its limit allows; nothing was allocated.
    #[error("{what} needs {needed_bytes} bytes, over the memory limit of {limit_bytes} bytes")]
    MemoryLimit {
        /// What needs the memory.
        what: String,
        /// Estimated need (bytes).
        needed_bytes: u64,
        /// The limit (bytes).
        limit_bytes: u64,
    },
    /// An invalid setting (projector parameters, dynamic range, ...).
    #[error("invalid {name}: {reason}")]
    Config {
        /// The setting.
        name: &'static str,
        /// Why it is invalid, with the value.
        reason: String,
    },
    /// Arrays that should agree in shape do not.
    #[error("shape mismatch in {what}: expected {expected}, got {actual}")]
    Shape {
        /// What was being combined.
        what: &'static str,
        /// The expected shape.
        expected: String,
        /// The shape found.
        actual: String,
    },
    /// A volume with no signal at all: a dB image relative to its maximum is undefined.
    #[error("the volume is zero everywhere (max |I| = {max_magnitude}): no dB level image")]
    ZeroVolume {
        /// The largest magnitude found (0 or not finite).
        max_magnitude: f32,
    },
    /// A file could not be written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl BackprojectError {
    /// Shorthand for [`BackprojectError::Config`].
    pub(crate) fn config(name: &'static str, reason: impl Into<String>) -> Self {
        Self::Config {
            name,
            reason: reason.into(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = BackprojectError> = std::result::Result<T, E>;
