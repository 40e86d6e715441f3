//! Random face parameters as the published dataset draws them (docs/physics.md §2).

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::{MorphableError, Pose, Result};

/// The distribution of face parameters: α ∈ R^{n_shape}, γ ∈ R^{n_expression}, each N(0, 1);
/// t_x, t_y ~ U(−t, t), t_z ~ U(−t_z, t_z); yaw ~ U(−y, y), pitch ~ U(−p, p), roll ~ U(−r, r).
/// Angles in radians, translations in metres. [`SamplingConfig::default`] is the paper's
/// distribution: 10 + 7 coefficients, ±5 cm, t_z = 0, yaw ±5°, pitch and roll ±10°.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SamplingConfig {
    /// Number of sampled shape coefficients.
    pub n_shape: usize,
    /// Number of sampled expression coefficients.
    pub n_expression: usize,
    /// Half-range of t_x and t_y (m).
    pub max_translation_xy_m: f64,
    /// Half-range of t_z (m); 0 in the paper.
    pub max_translation_z_m: f64,
    /// Half-range of yaw (rad).
    pub max_yaw_rad: f64,
    /// Half-range of pitch (rad).
    pub max_pitch_rad: f64,
    /// Half-range of roll (rad).
    pub max_roll_rad: f64,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            n_shape: 10,
            n_expression: 7,
            max_translation_xy_m: 0.05,
            max_translation_z_m: 0.0,
            max_yaw_rad: 5f64.to_radians(),
            max_pitch_rad: 10f64.to_radians(),
            max_roll_rad: 10f64.to_radians(),
        }
    }
}

/// One draw: coefficients (standard deviations) and a pose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceSample {
    /// Shape coefficients α.
    pub shape: Vec<f64>,
    /// Expression coefficients γ.
    pub expression: Vec<f64>,
    /// Head pose.
    pub pose: Pose,
}

impl SamplingConfig {
    /// Checks that the ranges are finite and non-negative.
    pub fn validate(&self) -> Result<()> {
        let ranges = [
            ("max_translation_xy_m", self.max_translation_xy_m),
            ("max_translation_z_m", self.max_translation_z_m),
            ("max_yaw_rad", self.max_yaw_rad),
            ("max_pitch_rad", self.max_pitch_rad),
            ("max_roll_rad", self.max_roll_rad),
        ];
        for (name, v) in ranges {
            if !(v.is_finite() && v >= 0.0) {
                return Err(MorphableError::Config {
                    name: "sampling",
                    reason: format!("{name} = {v} must be finite and non-negative"),
                });
            }
        }
        Ok(())
    }

    /// Draws one face. The order of draws is fixed (shape, expression, t_x, t_y, t_z, yaw,
    /// pitch, roll), so a seeded RNG gives the same face on every machine.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> FaceSample {
        let mut normal =
            |n: usize| -> Vec<f64> { (0..n).map(|_| StandardNormal.sample(&mut *rng)).collect() };
        let shape = normal(self.n_shape);
        let expression = normal(self.n_expression);
        let mut uniform = |half: f64| -> f64 {
            let u: f64 = rng.random();
            (2.0 * u - 1.0) * half
        };
        let tx = uniform(self.max_translation_xy_m);
        let ty = uniform(self.max_translation_xy_m);
        let tz = uniform(self.max_translation_z_m);
        let yaw = uniform(self.max_yaw_rad);
        let pitch = uniform(self.max_pitch_rad);
        let roll = uniform(self.max_roll_rad);
        FaceSample {
            shape,
            expression,
            pose: Pose {
                yaw,
                pitch,
                roll,
                translation: nalgebra::Vector3::new(tx, ty, tz),
            },
        }
    }
}
