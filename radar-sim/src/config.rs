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

/// How a surface reflects, and how its surface integral is evaluated (docs/physics.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum SurfaceModel {
    /// The paper-like model: the whole material factor (Lambert + Blinn-Phong) is integrated
    /// coherently at random hits ([`SimulationConfig::hits`]), each with its own roughness phase
    /// ([`SimulationConfig::roughness_m`]). Its images depend on the hit sampling: at 3 mm
    /// spacing two sampling seeds of one face correlate only ~0.7.
    Sampled,
    /// The converged model: a coherent specular part (the Blinn-Phong term, integrated over the
    /// surface), an explicit diffuse part (the Lambert term, carried by a fixed random field of
    /// the surface, drawn from [`SimulationConfig::surface_seed`]) and a taper at the surface's
    /// open boundary. Its images do not depend on how the integral is evaluated.
    Converged(ConvergedSurface),
}

impl Default for SurfaceModel {
    fn default() -> Self {
        Self::Converged(ConvergedSurface::default())
    }
}

impl SurfaceModel {
    /// What datasets written before the converged model used (their manifests lack the field).
    pub fn legacy() -> Self {
        Self::Sampled
    }
}

/// How the coherent (specular) surface integral of the converged model is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum CoherentIntegral {
    /// Physical optics on planar facets: the integral over each triangle (split until its
    /// longest edge is at most `max_edge_m`, or shorter where the phase spread needs it, see
    /// [`Simulator::facet_edge_m`](crate::Simulator::facet_edge_m)) with the phase linearised
    /// across it, in closed form. No sampling, so no sampling noise.
    Facets {
        /// The longest facet edge (m); longer triangles are split in four (default 6 mm:
        /// the linearised phase's error at the corners, k·ρ²/d, stays below 0.1 rad at 25 cm).
        max_edge_m: f64,
    },
    /// Random hits at [`SimulationConfig::hits`] without roughness: the same integral by
    /// Monte Carlo. Converges to `Facets` as the spacing falls; the dense reference of tests.
    Hits,
}

/// The converged surface model's settings (docs/physics.md §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConvergedSurface {
    /// How the coherent part is evaluated (default: facets of at most 6 mm).
    pub coherent: CoherentIntegral,
    /// Correlation length ℓ of the diffuse random field (m): the surface is cut into cells of
    /// area ℓ² (in the mean), each a Lambertian patch with its own random height (default 3 mm).
    pub correlation_length_m: f64,
    /// Standard deviation σ_h of the diffuse cells' heights along the normal (m); their phase
    /// is exp(j·2k·δ), δ ~ N(0, σ_h) (default 1 mm: 2kσ_h ≈ 3 rad, fully developed speckle).
    pub height_spread_m: f64,
    /// Width of the taper of the coherent part at a surface's open boundary (m): weight
    /// sin²(π/2 · d/W) at distance d < W from the boundary; 0 disables it (default 10 mm).
    pub boundary_taper_m: f64,
}

impl ConvergedSurface {
    /// The default longest facet edge (m).
    pub const DEFAULT_MAX_EDGE_M: f64 = 0.006;
    /// The default correlation length ℓ (m).
    pub const DEFAULT_CORRELATION_LENGTH_M: f64 = 0.004;
    /// The default height spread σ_h (m).
    pub const DEFAULT_HEIGHT_SPREAD_M: f64 = 0.001;
    /// The default boundary taper width W (m).
    pub const DEFAULT_BOUNDARY_TAPER_M: f64 = 0.010;

    /// Checks every value: a finite facet edge in [0.1 mm, 10 cm], a finite correlation length
    /// in [0.1 mm, 10 cm], a finite height spread and taper ≥ 0.
    pub fn validate(&self) -> Result<()> {
        let in_range = |what: &'static str, value: f64, low: f64, high: f64| {
            if (low..=high).contains(&value) {
                Ok(())
            } else {
                Err(RadarError::config(
                    "surface model",
                    format!("{what} {value} m must lie in [{low}, {high}] m"),
                ))
            }
        };
        if let CoherentIntegral::Facets { max_edge_m } = self.coherent {
            in_range("longest facet edge", max_edge_m, 1e-4, 0.1)?;
        }
        in_range("correlation length", self.correlation_length_m, 1e-4, 0.1)?;
        in_range("height spread", self.height_spread_m, 0.0, 0.1)?;
        in_range("boundary taper", self.boundary_taper_m, 0.0, 1.0)
    }
}

impl Default for ConvergedSurface {
    fn default() -> Self {
        Self {
            coherent: CoherentIntegral::Facets {
                max_edge_m: Self::DEFAULT_MAX_EDGE_M,
            },
            correlation_length_m: Self::DEFAULT_CORRELATION_LENGTH_M,
            height_spread_m: Self::DEFAULT_HEIGHT_SPREAD_M,
            boundary_taper_m: Self::DEFAULT_BOUNDARY_TAPER_M,
        }
    }
}

/// Everything a simulation needs besides the array, the sweep and the scene.
///
/// Plain data: build it with struct-update syntax from [`SimulationConfig::default`], then
/// [`Simulator::new`](crate::Simulator::new) validates it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SimulationConfig {
    /// The surface model (default: converged). Settings written before it existed read as
    /// [`SurfaceModel::Sampled`], which is what they used.
    #[serde(default = "SurfaceModel::legacy")]
    pub surface: SurfaceModel,
    /// Hit density on surfaces, for [`SurfaceModel::Sampled`] and [`CoherentIntegral::Hits`]
    /// (default: 2 mm spacing).
    pub hits: HitDensity,
    /// The material (default m = 0.5, n_s = 50).
    pub material: Material,
    /// The antenna element pattern (default sinc pattern, s = 0.25 cm).
    pub pattern: ElementPattern,
    /// [`SurfaceModel::Sampled`] only: standard deviation σ_r of the per-hit roughness
    /// δ_h ~ N(0, σ_r) (m); each hit gets an extra phase exp(j·2k·δ_h) (default 0.2 mm; 0
    /// disables it).
    pub roughness_m: f64,
    /// Signal-to-noise ratio (dB) of complex white Gaussian noise over the mean signal power of
    /// the working channels; `None` for a noiseless signal (default 30 dB).
    pub snr_db: Option<f64>,
    /// The numerical (sampling) seed: hit positions and roughness of the sampled evaluations,
    /// and the noise. The converged model's images must not depend on it beyond the noise. The
    /// same seeds give the same signal bit for bit on one machine, whatever the number of
    /// threads.
    pub seed: u64,
    /// The surface seed: the realisation of the converged model's diffuse random field (the
    /// physical speckle). Datasets draw one per sample. Settings written before it existed read
    /// as 0.
    #[serde(default)]
    pub surface_seed: u64,
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
        if let SurfaceModel::Converged(surface) = &self.surface {
            surface.validate()?;
        }
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
            surface: SurfaceModel::default(),
            hits: HitDensity::default(),
            material: Material::default(),
            pattern: ElementPattern::default(),
            roughness_m: Self::DEFAULT_ROUGHNESS_M,
            snr_db: Some(Self::DEFAULT_SNR_DB),
            seed: 0,
            surface_seed: 0,
            memory_limit_bytes: Self::DEFAULT_MEMORY_LIMIT_BYTES,
            method: SumMethod::default(),
        }
    }
}
