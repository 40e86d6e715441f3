//! Simulation settings: hit density, material, element pattern, roughness, noise, seed, method
//! and memory limit. Validated by [`SimulationConfig::validate`] (and by
//! [`Simulator::new`](crate::Simulator::new), which calls it).

use serde::{Deserialize, Serialize};

use crate::{ElementPattern, Material, RadarError, Result};

/// How densely surfaces are sampled with hits (area-stratified, docs/physics.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum HitDensity {
    /// About one hit per `spacing²` of surface (m): N = ⌈area/spacing²⌉ hits over the whole
    /// scene. 2 mm is the default; λ/4 ≈ 1 mm integrates a face coherently with less speckle.
    Spacing(f64),
    /// Exactly this many hits over the whole scene, however large.
    Count(usize),
}

impl HitDensity {
    /// The number of hits for a scene of `area_m2` (m²), as f64 (it may not fit a `usize`).
    pub(crate) fn hits_for_area(&self, area_m2: f64) -> f64 {
        match *self {
            Self::Spacing(spacing) => (area_m2 / (spacing * spacing)).ceil(),
            Self::Count(n) => n as f64,
        }
    }
}

impl Default for HitDensity {
    fn default() -> Self {
        Self::Spacing(SimulationConfig::DEFAULT_SPACING_M)
    }
}

/// How the sum over hits, channels and frequencies is evaluated. Both give the same signal to
/// f32 precision (see the crate documentation for the measured agreement) and the same noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SumMethod {
    /// The golden reference: docs/physics.md §3 term by term in f64, one sin/cos per
    /// (tx, rx, frequency, hit). Exact and slow: for tests and checks.
    Direct,
    /// The same sum in f32 with the phase separated per element (exp(−jk·d_t)·exp(−jk·d_r)
    /// precomputed once per element and hit), phasor recurrences over the frequency steps and
    /// SIMD lanes over hits (AVX2/FMA when the CPU has them), in parallel over transmitters.
    /// Exact up to f32 rounding: no term is approximated.
    #[default]
    Fast,
}

/// Everything a simulation needs besides the array, the sweep and the scene.
///
/// Plain data: build it with struct-update syntax from [`SimulationConfig::default`], then
/// [`Simulator::new`](crate::Simulator::new) validates it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SimulationConfig {
    /// Hit density on surfaces (default: 2 mm spacing).
    pub hits: HitDensity,
    /// The material (default m = 0.5, n_s = 50).
    pub material: Material,
    /// The antenna element pattern (default sinc pattern, s = 0.25 cm).
    pub pattern: ElementPattern,
    /// Standard deviation σ_r of the sub-wavelength surface roughness δ_h ~ N(0, σ_r) (m);
    /// each hit gets an extra phase exp(j·2k·δ_h) (default 0.2 mm; 0 disables it).
    pub roughness_m: f64,
    /// Signal-to-noise ratio (dB) of complex white Gaussian noise over the mean signal power of
    /// the working channels; `None` for a noiseless signal (default 30 dB).
    pub snr_db: Option<f64>,
    /// Seed of every random choice (hit positions, roughness, noise). The same seed gives the
    /// same signal bit for bit on one machine, whatever the number of threads.
    pub seed: u64,
    /// Refuse a simulation whose working memory would exceed this many bytes (default 4 GiB).
    pub memory_limit_bytes: u64,
    /// How the sum is evaluated (default [`SumMethod::Fast`]).
    pub method: SumMethod,
}

impl SimulationConfig {
    /// The default hit spacing (m).
    pub const DEFAULT_SPACING_M: f64 = 0.002;
    /// The default roughness σ_r (m).
    pub const DEFAULT_ROUGHNESS_M: f64 = 0.2e-3;
    /// The default SNR (dB).
    pub const DEFAULT_SNR_DB: f64 = 30.0;
    /// The default memory limit (bytes).
    pub const DEFAULT_MEMORY_LIMIT_BYTES: u64 = 4 << 30;

    /// Checks every value: a finite positive spacing or a positive count, a valid material and
    /// pattern, a finite roughness ≥ 0, a finite SNR, a positive memory limit.
    pub fn validate(&self) -> Result<()> {
        match self.hits {
            HitDensity::Spacing(s) if !(s.is_finite() && s > 0.0) => {
                return Err(RadarError::config(
                    "hit density",
                    format!("hit spacing {s} m must be finite and positive"),
                ));
            }
            HitDensity::Count(0) => {
                return Err(RadarError::config(
                    "hit density",
                    "a hit count of 0 samples nothing: use at least 1",
                ));
            }
            _ => {}
        }
        self.material.validate()?;
        self.pattern.validate()?;
        if !(self.roughness_m.is_finite() && self.roughness_m >= 0.0) {
            return Err(RadarError::config(
                "roughness",
                format!("σ_r = {} m must be finite and ≥ 0", self.roughness_m),
            ));
        }
        if let Some(snr) = self.snr_db
            && !snr.is_finite()
        {
            return Err(RadarError::config(
                "noise",
                format!("SNR {snr} dB must be finite (use None for no noise)"),
            ));
        }
        if self.memory_limit_bytes == 0 {
            return Err(RadarError::config("memory limit", "0 bytes"));
        }
        Ok(())
    }
}

impl Default for SimulationConfig {
    fn default() -> Self {
        Self {
            hits: HitDensity::default(),
            material: Material::default(),
            pattern: ElementPattern::default(),
            roughness_m: Self::DEFAULT_ROUGHNESS_M,
            snr_db: Some(Self::DEFAULT_SNR_DB),
            seed: 0,
            memory_limit_bytes: Self::DEFAULT_MEMORY_LIMIT_BYTES,
            method: SumMethod::default(),
        }
    }
}
