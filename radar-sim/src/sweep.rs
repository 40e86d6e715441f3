//! Stepped-frequency sweeps.

use serde::{Deserialize, Serialize};

use crate::{RadarError, Result};

/// Speed of light in vacuum (m/s).
pub const SPEED_OF_LIGHT: f64 = 299_792_458.0;

/// A stepped-frequency sweep f_n = f_0 + n·Δf, n = 0..N−1, with Δf = (f_{N−1} − f_0)/(N − 1)
/// (docs/physics.md §1). Frequencies in Hz. Construct with [`FrequencySweep::new`], which validates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SweepSpec", into = "SweepSpec")]
pub struct FrequencySweep {
    start_hz: f64,
    stop_hz: f64,
    steps: usize,
}

/// The serialised form of a sweep, validated on the way in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct SweepSpec {
    start_hz: f64,
    stop_hz: f64,
    steps: usize,
}

impl TryFrom<SweepSpec> for FrequencySweep {
    type Error = RadarError;
    fn try_from(s: SweepSpec) -> Result<Self> {
        Self::new(s.start_hz, s.stop_hz, s.steps)
    }
}
impl From<FrequencySweep> for SweepSpec {
    fn from(s: FrequencySweep) -> Self {
        Self {
            start_hz: s.start_hz,
            stop_hz: s.stop_hz,
            steps: s.steps,
        }
    }
}

impl FrequencySweep {
    /// A sweep from `start_hz` to `stop_hz` (both included) in `steps` steps. Frequencies must be
    /// finite and positive, `stop_hz > start_hz`, and `steps ≥ 2`.
    pub fn new(start_hz: f64, stop_hz: f64, steps: usize) -> Result<Self> {
        if !(start_hz.is_finite() && start_hz > 0.0) {
            return Err(RadarError::config(
                "sweep",
                format!("start frequency {start_hz} Hz must be finite and positive"),
            ));
        }
        if !(stop_hz.is_finite() && stop_hz > start_hz) {
            return Err(RadarError::config(
                "sweep",
                format!(
                    "stop frequency {stop_hz} Hz must be finite and above the start {start_hz} Hz"
                ),
            ));
        }
        if steps < 2 {
            return Err(RadarError::config(
                "sweep",
                format!("{steps} steps: a sweep needs at least 2"),
            ));
        }
        Ok(Self {
            start_hz,
            stop_hz,
            steps,
        })
    }

    /// The QAR50-like default: 72–82 GHz in 128 steps.
    pub fn qar50() -> Self {
        Self {
            start_hz: 72e9,
            stop_hz: 82e9,
            steps: 128,
        }
    }

    /// First frequency f_0 (Hz).
    pub fn start_hz(&self) -> f64 {
        self.start_hz
    }
    /// Last frequency f_{N−1} (Hz).
    pub fn stop_hz(&self) -> f64 {
        self.stop_hz
    }
    /// Number of steps N.
    pub fn steps(&self) -> usize {
        self.steps
    }
    /// Step Δf (Hz).
    pub fn step_hz(&self) -> f64 {
        (self.stop_hz - self.start_hz) / (self.steps - 1) as f64
    }
    /// Bandwidth B = f_{N−1} − f_0 (Hz).
    pub fn bandwidth_hz(&self) -> f64 {
        self.stop_hz - self.start_hz
    }
    /// Frequency n (Hz).
    pub fn frequency(&self, n: usize) -> f64 {
        self.start_hz + n as f64 * self.step_hz()
    }
    /// All frequencies (Hz).
    pub fn frequencies(&self) -> Vec<f64> {
        (0..self.steps).map(|n| self.frequency(n)).collect()
    }
    /// Centre frequency (Hz).
    pub fn centre_hz(&self) -> f64 {
        0.5 * (self.start_hz + self.stop_hz)
    }
    /// Centre wavelength λ_c (m).
    pub fn centre_wavelength(&self) -> f64 {
        SPEED_OF_LIGHT / self.centre_hz()
    }
    /// Unambiguous range c/(2Δf) (m).
    pub fn unambiguous_range(&self) -> f64 {
        SPEED_OF_LIGHT / (2.0 * self.step_hz())
    }
    /// The same band with every `factor`-th step (at least 2 steps remain).
    pub fn decimated(&self, factor: usize) -> Result<Self> {
        if factor == 0 {
            return Err(RadarError::config("sweep", "decimation factor 0"));
        }
        let steps = (self.steps - 1) / factor + 1;
        Self::new(
            self.start_hz,
            self.start_hz + (steps - 1) as f64 * factor as f64 * self.step_hz(),
            steps,
        )
    }
}

impl Default for FrequencySweep {
    fn default() -> Self {
        Self::qar50()
    }
}
