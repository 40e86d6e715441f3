//! The reflection model (material factor) and the antenna element pattern of docs/physics.md §3.

use nalgebra::Vector3;
use serde::{Deserialize, Serialize};

use crate::{RadarError, Result};

/// A Lambert / normalised Blinn-Phong mix (the "material factor" of the paper):
///
/// f_mat(ω_i, ω_o) = (1 − m)/π + m·(n_s + 1)/(2π)·max(0, n·H)^{n_s},  H = normalize(ω_i + ω_o)
///
/// with ω_i, ω_o unit vectors from the surface toward the transmitter and the receiver and n
/// the unit surface normal. m = 0 is Lambertian; m = 1 is purely specular. Units 1/sr.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Material {
    /// The material factor m ∈ [0, 1].
    pub factor: f64,
    /// The Blinn-Phong exponent n_s ≥ 0 (default 50); larger is a tighter specular lobe.
    pub exponent: f64,
}

impl Material {
    /// The default Blinn-Phong exponent n_s.
    pub const DEFAULT_EXPONENT: f64 = 50.0;

    /// A material with factor `m` and the default exponent, validated.
    pub fn new(factor: f64) -> Result<Self> {
        Self::with_exponent(factor, Self::DEFAULT_EXPONENT)
    }

    /// A material with factor `m ∈ [0, 1]` and exponent `n_s ≥ 0` (finite), validated.
    pub fn with_exponent(factor: f64, exponent: f64) -> Result<Self> {
        let material = Self { factor, exponent };
        material.validate()?;
        Ok(material)
    }

    /// The Lambertian material (m = 0).
    pub fn lambertian() -> Self {
        Self {
            factor: 0.0,
            exponent: Self::DEFAULT_EXPONENT,
        }
    }

    /// Checks m ∈ [0, 1] and a finite n_s ≥ 0.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.factor) {
            return Err(RadarError::config(
                "material",
                format!("material factor {} must lie in [0, 1]", self.factor),
            ));
        }
        if !(self.exponent.is_finite() && self.exponent >= 0.0) {
            return Err(RadarError::config(
                "material",
                format!(
                    "Blinn-Phong exponent {} must be finite and ≥ 0",
                    self.exponent
                ),
            ));
        }
        Ok(())
    }

    /// The diffuse weight (1 − m)/π (1/sr).
    pub fn diffuse_weight(&self) -> f64 {
        (1.0 - self.factor) / std::f64::consts::PI
    }

    /// The specular weight m·(n_s + 1)/(2π) (1/sr).
    pub fn specular_weight(&self) -> f64 {
        self.factor * (self.exponent + 1.0) / (2.0 * std::f64::consts::PI)
    }

    /// f_mat for unit vectors `normal`, `to_tx` (ω_i) and `to_rx` (ω_o) (1/sr). Where
    /// ω_i + ω_o = 0 the half vector is undefined and the specular term is 0.
    pub fn brdf(&self, normal: &Vector3<f64>, to_tx: &Vector3<f64>, to_rx: &Vector3<f64>) -> f64 {
        crate::kernel::Reflectance::of(self).factor(normal, to_tx, to_rx)
    }
}

impl Default for Material {
    /// m = 0.5 (the middle of the paper's U(0, 1)), n_s = 50.
    fn default() -> Self {
        Self {
            factor: 0.5,
            exponent: Self::DEFAULT_EXPONENT,
        }
    }
}

/// The gain g of one antenna element toward a direction at angle θ from boresight (+z).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ElementPattern {
    /// g = 1 in every direction.
    Isotropic,
    /// g(θ) = cos θ · sinc(2s·sin θ/λ_c), sinc(x) = sin(πx)/(πx), with s the antenna size and
    /// λ_c the sweep's centre wavelength (docs/physics.md §3). Larger s gives narrower beams; the
    /// first null is at sin θ = λ_c/(2s). Values past the first null are negative (side lobes).
    Sinc {
        /// The antenna size s in centimetres, as in the paper (its dataset draws s ~ U(0.2, 0.3)).
        antenna_size_cm: f64,
    },
}

impl ElementPattern {
    /// The sinc pattern for an antenna size in cm, validated.
    pub fn sinc(antenna_size_cm: f64) -> Result<Self> {
        let pattern = Self::Sinc { antenna_size_cm };
        pattern.validate()?;
        Ok(pattern)
    }

    /// Checks that the antenna size is finite and ≥ 0.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Self::Isotropic => Ok(()),
            Self::Sinc { antenna_size_cm }
                if antenna_size_cm.is_finite() && antenna_size_cm >= 0.0 =>
            {
                Ok(())
            }
            Self::Sinc { antenna_size_cm } => Err(RadarError::config(
                "element pattern",
                format!("antenna size {antenna_size_cm} cm must be finite and ≥ 0"),
            )),
        }
    }

    /// g for a direction with cos θ = `cos_theta` (θ from +z, so `cos_theta` is the z component
    /// of the unit vector from the antenna toward the target) at centre wavelength
    /// `centre_wavelength_m` (m).
    pub fn gain(&self, cos_theta: f64, centre_wavelength_m: f64) -> f64 {
        match *self {
            Self::Isotropic => 1.0,
            Self::Sinc { antenna_size_cm } => {
                let sin_theta = (1.0 - cos_theta * cos_theta).max(0.0).sqrt();
                let size_m = antenna_size_cm * 1e-2;
                cos_theta * sinc(2.0 * size_m * sin_theta / centre_wavelength_m)
            }
        }
    }
}

impl ElementPattern {
    /// g, ∂g/∂cos θ and ∂g/∂(antenna size in cm) for [`ElementPattern::gain`]'s arguments
    /// (docs/physics.md §3.6).
    pub(crate) fn gain_derivatives(&self, cos_theta: f64, centre_wavelength_m: f64) -> [f64; 3] {
        match *self {
            Self::Isotropic => [1.0, 0.0, 0.0],
            Self::Sinc { antenna_size_cm } => {
                let sin_theta = (1.0 - cos_theta * cos_theta).max(0.0).sqrt();
                // g = c·sinc(x), x = β·sin θ, β = 2s/λ; D = sinc'(x)/x, finite at x = 0.
                let per_cm = 2e-2 / centre_wavelength_m;
                let beta = antenna_size_cm * per_cm;
                let x = beta * sin_theta;
                let pi2 = std::f64::consts::PI.powi(2);
                let (sinc_x, cos_px) = sinc_and_cos(x);
                let d = if x.abs() < 1e-3 {
                    -pi2 / 3.0 + pi2 * pi2 * x * x / 30.0
                } else {
                    (cos_px - sinc_x) / (x * x)
                };
                [
                    cos_theta * sinc_x,
                    // d sinc/dc = sinc'(x)·β·(−c/sin θ) = −D·β²·c.
                    sinc_x - cos_theta * cos_theta * d * beta * beta,
                    cos_theta * d * x * per_cm * sin_theta,
                ]
            }
        }
    }
}

impl Default for ElementPattern {
    /// s = 0.25 cm, the middle of the paper's U(0.2, 0.3).
    fn default() -> Self {
        Self::Sinc {
            antenna_size_cm: 0.25,
        }
    }
}

/// sin(πx)/(πx), 1 at 0.
fn sinc(x: f64) -> f64 {
    sinc_and_cos(x).0
}

/// sin(πx)/(πx) (1 at 0) and cos(πx), from one phasor exp(j·2π·x/2).
fn sinc_and_cos(x: f64) -> (f64, f64) {
    let turn = crate::cis_turns(x / 2.0);
    let px = std::f64::consts::PI * x;
    let sinc = if px.abs() < 1e-8 { 1.0 } else { turn.im / px };
    (sinc, turn.re)
}
