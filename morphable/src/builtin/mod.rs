//! The built-in face model: a morphable model generated in code, with no download and no
//! third-party data.
//!
//! - **Template** (the shape mean): a mirror-symmetric face height field with nose, brow
//!   ridges, eye sockets, cheekbones, lips and chin, about 150 mm wide and 200 mm tall,
//!   sampled on a square grid (2 mm by default, ~5 800 vertices) and triangulated
//!   counter-clockwise seen from +z. Model space as in statismo / BFM: millimetres, y up, nose
//!   toward +z, +x toward the subject's left; the symmetry plane is x = 0 and every vertex has
//!   an exact mirror partner ([`BuiltinModel::mirror_map`]).
//! - **Shape**: a Gaussian process of smooth displacement fields (several squared-exponential
//!   length scales plus a random affine map), mostly mirror-symmetric, with rigid motion
//!   projected out, reduced to its leading principal components (Nyström on a mirror-symmetric
//!   inducing subgrid, one eigenproblem per symmetry class; the derivation is in
//!   `builtin/gp.rs`). Every component is exactly mirror-symmetric or antisymmetric.
//! - **Expression**: thirteen localised facial actions (jaw open, smiles, brows, pucker,
//!   cheek puff, eye closing, ...) with random activations, reduced by an exact PCA of their
//!   covariance. Zero mean.
//!
//! Everything is deterministic: no random numbers are drawn, and the same build of the crate
//! gives bit-identical models on every run. The default model is built once and cached by
//! [`builtin`]; construction takes a few hundred milliseconds in release builds.
//!
//! The default model has 5 814 vertices, 11 336 triangles, 50 shape components (the first
//! moves a vertex by about 3.1 mm RMS, like BFM 2019's; the first 10 carry about 85 % of the
//! shape variance) and 13 expression components (the first, mostly jaw opening, moves a
//! vertex by about 4.6 mm RMS; the first 7 carry about 97 %).
//!
//! ```
//! use morphable::MorphableModel;
//! use morphable::builtin::{self, BuiltinConfig, BuiltinModel};
//!
//! // The cached default model, "builtin-face-v1".
//! let face = builtin::builtin();
//! assert_eq!(face.name(), builtin::BUILTIN_MODEL_NAME);
//! let smiling = face.instance(&[1.0, -0.5], &[0.0, 1.0])?;
//! assert_eq!(smiling.n_vertices(), face.n_vertices());
//!
//! // A coarser variant: validate the configuration, then build.
//! let config = BuiltinConfig { grid_spacing_mm: 4.0, n_shape: 20, ..Default::default() };
//! let coarse = BuiltinModel::build(&config.check()?)?;
//! assert_eq!(coarse.n_shape(), 20);
//! # Ok::<(), morphable::MorphableError>(())
//! ```

mod expression;
mod gp;
mod template;

use std::sync::OnceLock;

use nalgebra::Point3;
use serde::{Deserialize, Serialize};

use crate::{
    LinearMorphableModel, Mesh, MorphableError, MorphableModel, PcaBlock, PcaModel, Result,
};

use template::{CHIN_Y, EYE_X, EYE_Y, FaceTemplate, MOUTH_HALF_WIDTH, MOUTH_Y};

/// Name of the model built from [`BuiltinConfig::default`]. Other configurations are named
/// `builtin-face-v1-<16 hex digits>`, a fingerprint of the configuration.
pub const BUILTIN_MODEL_NAME: &str = "builtin-face-v1";

/// Number of facial actions, the most expression components the built-in model can have.
pub const N_FACIAL_ACTIONS: usize = expression::FacialAction::ALL.len();

/// One squared-exponential term of the shape kernel, s·exp(−|p − p'|²/ℓ²).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KernelTerm {
    /// s: the variance (mm²) of one displacement coordinate that this term contributes, away
    /// from the midline (the symmetry weight changes it near x = 0).
    pub variance_mm2: f64,
    /// ℓ: the length scale (mm) over which displacements are correlated.
    pub length_mm: f64,
}

/// Parameters of the built-in model. Check them with [`BuiltinConfig::check`] before
/// [`BuiltinModel::build`]. The default gives [`BUILTIN_MODEL_NAME`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuiltinConfig {
    /// Spacing of the template's vertex grid (mm), in [0.5, 10]. 2 mm gives ~5 800 vertices.
    pub grid_spacing_mm: f64,
    /// Squared-exponential terms of the shape kernel, 1 to 8 of them.
    pub kernel: Vec<KernelTerm>,
    /// Standard deviation σ_A (dimensionless) of each entry of the random affine map
    /// A·(p − c) added to the shape kernel, in [0, 0.5]: 0.04 means about 4 % variation of
    /// face width, height and depth.
    pub affine_std: f64,
    /// Symmetry weight ρ in [0, 1]: mirror-symmetric shape variation gets (1 + ρ) times, and
    /// antisymmetric variation (1 − ρ) times, the kernel's variance.
    pub symmetry: f64,
    /// Spacing of the inducing subgrid of the Nyström approximation (mm), at least the grid
    /// spacing and at most 50 mm; rounded to a whole number of grid steps.
    pub inducing_spacing_mm: f64,
    /// Number of shape components, 1 to 400.
    pub n_shape: usize,
    /// Number of expression components, 1 to [`N_FACIAL_ACTIONS`].
    pub n_expression: usize,
}

/// The default model's parameters: a 2 mm grid; shape variation at 120, 50 and 12 mm scales
/// (11, 3.8 and 0.8 mm²) plus 3.5 % affine variation, 80 % symmetry weight, tuned so that the
/// first component moves a vertex by about 3 mm RMS and the first 10 carry more than 80 % of
/// the variance of the 50 kept, as in BFM 2019 and ICT-FaceKit; all 13 expression components.
impl Default for BuiltinConfig {
    fn default() -> Self {
        Self {
            grid_spacing_mm: 2.0,
            kernel: vec![
                KernelTerm {
                    variance_mm2: 11.0,
                    length_mm: 120.0,
                },
                KernelTerm {
                    variance_mm2: 3.8,
                    length_mm: 50.0,
                },
                KernelTerm {
                    variance_mm2: 0.8,
                    length_mm: 12.0,
                },
            ],
            affine_std: 0.035,
            symmetry: 0.8,
            inducing_spacing_mm: 6.0,
            n_shape: 50,
            n_expression: N_FACIAL_ACTIONS,
        }
    }
}

/// A [`BuiltinConfig`] whose values have been checked; the only thing
/// [`BuiltinModel::build`] accepts. Its default is the (valid) default configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValidBuiltinConfig(BuiltinConfig);

impl ValidBuiltinConfig {
    /// The checked parameters.
    pub fn config(&self) -> &BuiltinConfig {
        &self.0
    }

    /// Inducing subgrid step in grid cells (≥ 1).
    pub fn inducing_stride(&self) -> usize {
        ((self.0.inducing_spacing_mm / self.0.grid_spacing_mm).round() as usize).max(1)
    }
}

fn config_error(name: &'static str, reason: String) -> MorphableError {
    MorphableError::Config { name, reason }
}

fn check_range(name: &'static str, value: f64, lo: f64, hi: f64) -> Result<()> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(config_error(
            name,
            format!("{value} is not in [{lo}, {hi}]"),
        ))
    }
}

impl BuiltinConfig {
    /// Checks every parameter, saying which one is wrong and why.
    pub fn check(self) -> Result<ValidBuiltinConfig> {
        check_range("grid_spacing_mm", self.grid_spacing_mm, 0.5, 10.0)?;
        check_range(
            "inducing_spacing_mm",
            self.inducing_spacing_mm,
            self.grid_spacing_mm,
            50.0,
        )?;
        check_range("affine_std", self.affine_std, 0.0, 0.5)?;
        check_range("symmetry", self.symmetry, 0.0, 1.0)?;
        if !(1..=8).contains(&self.kernel.len()) {
            return Err(config_error(
                "kernel",
                format!("{} terms, expected 1 to 8", self.kernel.len()),
            ));
        }
        for (i, t) in self.kernel.iter().enumerate() {
            let fine = t.variance_mm2.is_finite()
                && (0.0..=1e4).contains(&t.variance_mm2)
                && t.length_mm.is_finite()
                && (1.0..=1e4).contains(&t.length_mm);
            if !fine {
                return Err(config_error(
                    "kernel",
                    format!(
                        "term {i}: variance {} mm² must be in [0, 1e4] and length {} mm in \
                         [1, 1e4]",
                        t.variance_mm2, t.length_mm
                    ),
                ));
            }
        }
        if self.kernel.iter().all(|t| t.variance_mm2 == 0.0) && self.affine_std == 0.0 {
            return Err(config_error(
                "kernel",
                "every kernel variance and the affine std are zero: no shape variation".into(),
            ));
        }
        if !(1..=400).contains(&self.n_shape) {
            return Err(config_error(
                "n_shape",
                format!("{} is not in [1, 400]", self.n_shape),
            ));
        }
        if !(1..=N_FACIAL_ACTIONS).contains(&self.n_expression) {
            return Err(config_error(
                "n_expression",
                format!("{} is not in [1, {N_FACIAL_ACTIONS}]", self.n_expression),
            ));
        }
        Ok(ValidBuiltinConfig(self))
    }

    /// The model name: [`BUILTIN_MODEL_NAME`] for the default configuration, otherwise that
    /// name and an FNV-1a fingerprint of every parameter.
    pub fn model_name(&self) -> String {
        if *self == Self::default() {
            return BUILTIN_MODEL_NAME.to_string();
        }
        let mut words = vec![
            self.grid_spacing_mm.to_bits(),
            self.affine_std.to_bits(),
            self.symmetry.to_bits(),
            self.inducing_spacing_mm.to_bits(),
            self.n_shape as u64,
            self.n_expression as u64,
        ];
        for t in &self.kernel {
            words.extend([t.variance_mm2.to_bits(), t.length_mm.to_bits()]);
        }
        let hash = words
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
            });
        format!("{BUILTIN_MODEL_NAME}-{hash:016x}")
    }
}

/// Vertex indices of anatomical landmarks of the built-in template. Left and right are the
/// subject's (+x is the subject's left).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaceLandmarks {
    /// The nose tip (pronasale).
    pub nose_tip: u32,
    /// Centre of the left eye.
    pub left_eye: u32,
    /// Centre of the right eye.
    pub right_eye: u32,
    /// Left mouth corner.
    pub left_mouth_corner: u32,
    /// Right mouth corner.
    pub right_mouth_corner: u32,
    /// Most prominent point of the chin.
    pub chin: u32,
}

impl FaceLandmarks {
    fn on(template: &FaceTemplate) -> Self {
        let nearest = |x: f64, y: f64| -> u32 {
            let d2 = |p: &Point3<f64>| (p.x - x).powi(2) + (p.y - y).powi(2);
            let (index, _) = template.vertices.iter().enumerate().fold(
                (0, f64::INFINITY),
                |(bi, bd), (i, p)| {
                    let d = d2(p);
                    if d < bd { (i, d) } else { (bi, bd) }
                },
            );
            index as u32
        };
        // The nose tip is the most forward vertex of the template.
        let nose_tip = template
            .vertices
            .iter()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |(bi, bz), (i, p)| {
                if p.z > bz { (i, p.z) } else { (bi, bz) }
            })
            .0 as u32;
        Self {
            nose_tip,
            left_eye: nearest(EYE_X, EYE_Y),
            right_eye: nearest(-EYE_X, EYE_Y),
            left_mouth_corner: nearest(MOUTH_HALF_WIDTH, MOUTH_Y),
            right_mouth_corner: nearest(-MOUTH_HALF_WIDTH, MOUTH_Y),
            chin: nearest(0.0, CHIN_Y),
        }
    }
}

/// The built-in face model: a [`PcaModel`] plus what only a generated model knows (its
/// configuration, the mirror map, landmarks). Implements [`MorphableModel`] by delegation.
#[derive(Debug, Clone)]
pub struct BuiltinModel {
    model: PcaModel,
    mirror: Vec<u32>,
    landmarks: FaceLandmarks,
    config: ValidBuiltinConfig,
}

impl BuiltinModel {
    /// Generates the model. Deterministic: the same configuration gives a bit-identical model.
    /// Fails only if the configuration asks for more shape components than its kernel and
    /// inducing grid can supply.
    pub fn build(config: &ValidBuiltinConfig) -> Result<Self> {
        let cfg = config.config();
        let template = FaceTemplate::new(cfg.grid_spacing_mm)?;
        let (shape, expression) = rayon::join(
            || gp::shape_block(&template, config),
            || expression::expression_block(&template.vertices, cfg.n_expression),
        );
        let model = PcaModel::new(
            cfg.model_name(),
            shape?,
            expression?,
            template.triangles.clone(),
        )?;
        Ok(Self {
            model,
            landmarks: FaceLandmarks::on(&template),
            mirror: template.mirror,
            config: config.clone(),
        })
    }

    /// The linear model.
    pub fn model(&self) -> &PcaModel {
        &self.model
    }

    /// The linear model, by value.
    pub fn into_model(self) -> PcaModel {
        self.model
    }

    /// For each vertex, the index of its mirror image across x = 0 (itself on the midline).
    /// On the mean face, vertex `mirror_map()[i]` is vertex i with x negated, exactly.
    pub fn mirror_map(&self) -> &[u32] {
        &self.mirror
    }

    /// Anatomical landmarks of the template.
    pub fn landmarks(&self) -> &FaceLandmarks {
        &self.landmarks
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &BuiltinConfig {
        self.config.config()
    }
}

impl MorphableModel for BuiltinModel {
    fn name(&self) -> &str {
        self.model.name()
    }
    fn n_vertices(&self) -> usize {
        self.model.n_vertices()
    }
    fn triangles(&self) -> &[[u32; 3]] {
        self.model.triangles()
    }
    fn n_shape(&self) -> usize {
        self.model.n_shape()
    }
    fn n_expression(&self) -> usize {
        self.model.n_expression()
    }
    fn instance(&self, shape: &[f64], expression: &[f64]) -> Result<Mesh> {
        self.model.instance(shape, expression)
    }
    fn mean_mesh(&self) -> Result<Mesh> {
        self.model.mean_mesh()
    }
}

impl LinearMorphableModel for BuiltinModel {
    fn shape_block(&self) -> &PcaBlock {
        self.model.shape()
    }
    fn expression_block(&self) -> &PcaBlock {
        self.model.expression()
    }
}

/// The default built-in model ([`BUILTIN_MODEL_NAME`]), built on first use and shared.
pub fn builtin() -> &'static BuiltinModel {
    static MODEL: OnceLock<BuiltinModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        // The default configuration is fixed and covered by the tests: failing here is a
        // broken internal invariant, not bad input.
        BuiltinModel::build(&ValidBuiltinConfig::default())
            .expect("the default built-in face model builds")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_named() {
        let valid = BuiltinConfig::default().check().unwrap();
        assert_eq!(valid, ValidBuiltinConfig::default());
        assert_eq!(valid.config().model_name(), BUILTIN_MODEL_NAME);
    }
}
