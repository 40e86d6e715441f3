//! The parameter layout: what a network predicts and a renderer consumes, as one flat vector.
//!
//! A [`FaceParams`] holds physical values (coefficients in standard deviations, angles in
//! radians, translations in metres, material, antenna size in cm, dynamic range in dB). The flat
//! vector holds *scaled* values so that every column is O(1), as the paper does
//! (docs/physics.md §2.4, §7.2): by default ([`PoseScaling::SamplingRange`], the paper's §3.2)
//! each pose column is divided by the half-width of its own sampling range, so t_x, t_y, yaw,
//! pitch and roll are U(−1, 1), and t_z (0 in the paper) is a predicted column of its own; the
//! rendering parameters are mapped from their sampling ranges onto [−1, 1].

use std::ops::Range;

use morphable::{FaceSample, Pose, SamplingConfig};
use nalgebra::Vector3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{AbsFitError, Result};

/// Translation scale of [`PoseScaling::Fixed`]: t / 5 cm.
pub const TRANSLATION_SCALE_M: f64 = 0.05;
/// Angle scale of [`PoseScaling::Fixed`]: angle / 10°.
pub const ANGLE_SCALE_RAD: f64 = std::f64::consts::PI / 18.0;

/// How the pose columns of a [`ParamLayout`] are scaled to O(1) values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoseScaling {
    /// The paper's protocol (§3.2: "the pose parameters are linearly scaled to values within
    /// [−1, 1]"): each pose column divided by the half-width of its own sampling range, so yaw
    /// is divided by 5° and pitch and roll by 10°. A column that is not sampled (t_z in the
    /// paper) is divided by the scale of [`PoseScaling::Fixed`].
    SamplingRange,
    /// Translation / 5 cm and angles / 10° whatever the sampling ranges (this project's layout
    /// before issue 13; yaw then spans [−0.5, 0.5]).
    Fixed,
}

impl PoseScaling {
    /// `sampling-range` or `fixed`.
    pub fn name(self) -> &'static str {
        match self {
            Self::SamplingRange => "sampling-range",
            Self::Fixed => "fixed",
        }
    }
}

impl std::str::FromStr for PoseScaling {
    type Err = AbsFitError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sampling-range" => Ok(Self::SamplingRange),
            "fixed" => Ok(Self::Fixed),
            _ => Err(AbsFitError::config(
                "pose scaling",
                format!("'{s}': choose sampling-range (the paper's) or fixed"),
            )),
        }
    }
}

/// The divisors of the pose columns: scaled t_k = t_k / `translation_m[k]`, scaled yaw =
/// yaw / `angle_rad[0]`, pitch / `angle_rad[1]`, roll / `angle_rad[2]`. Recorded in every
/// dataset's manifest, so a reader knows how its columns were scaled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PoseScales {
    /// Divisors of t_x, t_y, t_z (m).
    pub translation_m: [f64; 3],
    /// Divisors of yaw, pitch, roll (rad).
    pub angle_rad: [f64; 3],
}

impl Default for PoseScales {
    /// [`PoseScaling::Fixed`]: what manifests written before the scales were recorded used.
    fn default() -> Self {
        Self {
            translation_m: [TRANSLATION_SCALE_M; 3],
            angle_rad: [ANGLE_SCALE_RAD; 3],
        }
    }
}

impl PoseScales {
    /// The scales of `scaling` for faces drawn by `sampling`.
    pub fn new(scaling: PoseScaling, sampling: &SamplingConfig) -> Self {
        let fixed = Self::default();
        match scaling {
            PoseScaling::Fixed => fixed,
            PoseScaling::SamplingRange => {
                let own = |half: f64, fallback: f64| if half > 0.0 { half } else { fallback };
                let t = sampling.max_translation_xy_m;
                let t_z = sampling.max_translation_z_m;
                Self {
                    translation_m: [t, t, t_z].map(|h| own(h, TRANSLATION_SCALE_M)),
                    angle_rad: [
                        sampling.max_yaw_rad,
                        sampling.max_pitch_rad,
                        sampling.max_roll_rad,
                    ]
                    .map(|h| own(h, ANGLE_SCALE_RAD)),
                }
            }
        }
    }

    /// Checks every scale is finite and positive.
    pub fn validate(&self) -> Result<()> {
        let all = self.translation_m.iter().chain(&self.angle_rad);
        if let Some(v) = all.copied().find(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(AbsFitError::config(
                "pose scales",
                format!("{v} in {self:?}: every scale must be finite and positive"),
            ));
        }
        Ok(())
    }
}

/// Rendering parameters of one sample (docs/physics.md §2–§3).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RenderParams {
    /// Material factor m ∈ [0, 1]: 0 Lambertian, 1 fully Blinn-Phong specular.
    pub material: f64,
    /// Antenna size s (cm): larger gives narrower element beams.
    pub antenna_cm: f64,
    /// Dynamic range D (dB) of the amplitude image and the depth validity mask.
    pub dynamic_range_db: f64,
}

impl RenderParams {
    /// Checks m ∈ [0, 1], s in [`ANTENNA_CM_RANGE`] and D in [`DYNAMIC_RANGE_DB_RANGE`].
    pub fn validate(&self) -> Result<()> {
        for (name, value, (lo, hi)) in [
            ("material", self.material, (0.0, 1.0)),
            ("antenna size (cm)", self.antenna_cm, ANTENNA_CM_RANGE),
            (
                "dynamic range (dB)",
                self.dynamic_range_db,
                DYNAMIC_RANGE_DB_RANGE,
            ),
        ] {
            if !(lo..=hi).contains(&value) {
                return Err(AbsFitError::config(
                    "face parameters",
                    format!("{name} = {value} must lie in [{lo}, {hi}]"),
                ));
            }
        }
        Ok(())
    }
}

/// Sampling ranges of the rendering parameters: m ~ U(material), s ~ U(antenna_cm),
/// D ~ U(dynamic_range_db). The defaults are the paper's: [0, 1], [0.2, 0.3] cm, [15, 30] dB.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RenderRanges {
    /// Range of the material factor.
    pub material: (f64, f64),
    /// Range of the antenna size (cm).
    pub antenna_cm: (f64, f64),
    /// Range of the dynamic range (dB).
    pub dynamic_range_db: (f64, f64),
}

impl Default for RenderRanges {
    fn default() -> Self {
        Self {
            material: (0.0, 1.0),
            antenna_cm: (0.2, 0.3),
            dynamic_range_db: (15.0, 30.0),
        }
    }
}

impl RenderRanges {
    /// Checks every range is finite and increasing, and that m stays in [0, 1].
    pub fn validate(&self) -> Result<()> {
        for (name, (lo, hi)) in [
            ("material", self.material),
            ("antenna_cm", self.antenna_cm),
            ("dynamic_range_db", self.dynamic_range_db),
        ] {
            if !(lo.is_finite() && hi.is_finite() && hi > lo) {
                return Err(AbsFitError::config(
                    "render ranges",
                    format!("{name} range ({lo}, {hi}) must be finite and increasing"),
                ));
            }
        }
        if self.material.0 < 0.0 || self.material.1 > 1.0 {
            return Err(AbsFitError::config(
                "render ranges",
                format!("material range {:?} must lie in [0, 1]", self.material),
            ));
        }
        if self.antenna_cm.0 < 0.0 || self.dynamic_range_db.0 <= 0.0 {
            return Err(AbsFitError::config(
                "render ranges",
                "antenna size and dynamic range must be positive",
            ));
        }
        Ok(())
    }
}

/// `v` to 4 significant decimals, without trailing zeros (5, 0.25, 7.5).
fn round(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

/// Maps v from [lo, hi] onto [−1, 1].
fn to_unit(v: f64, (lo, hi): (f64, f64)) -> f64 {
    2.0 * (v - lo) / (hi - lo) - 1.0
}
/// Maps u from [−1, 1] onto [lo, hi].
fn from_unit(u: f64, (lo, hi): (f64, f64)) -> f64 {
    lo + 0.5 * (u + 1.0) * (hi - lo)
}

/// One face's full parameter set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceParams {
    /// Shape coefficients α (standard deviations).
    pub shape: Vec<f64>,
    /// Expression coefficients γ (standard deviations).
    pub expression: Vec<f64>,
    /// Head pose (radians, metres).
    pub pose: Pose,
    /// Rendering parameters.
    pub render: RenderParams,
}

/// The largest |coefficient| a face may have (standard deviations): N(0, 1) draws pass 10σ
/// with probability 2e-23, so anything beyond is a mistake, not a rare face.
pub const MAX_COEFFICIENT_SD: f64 = 10.0;
/// Valid antenna sizes (cm): generous around the paper's U(0.2, 0.3); 0 would be a point
/// element and 5 cm an element wider than a third of the array.
pub const ANTENNA_CM_RANGE: (f64, f64) = (0.05, 5.0);
/// Valid dynamic ranges (dB) of the images.
pub const DYNAMIC_RANGE_DB_RANGE: (f64, f64) = (1.0, 100.0);

/// Checks that every coefficient is finite and within ±[`MAX_COEFFICIENT_SD`].
pub(crate) fn check_coefficients(shape: &[f64], expression: &[f64]) -> Result<()> {
    for (what, coefficients) in [("shape", shape), ("expression", expression)] {
        if let Some((i, c)) = coefficients
            .iter()
            .enumerate()
            .find(|(_, c)| !(0.0..=MAX_COEFFICIENT_SD).contains(&c.abs()))
        {
            return Err(AbsFitError::config(
                "face parameters",
                format!(
                    "{what} coefficient {i} = {c} must lie within ±{MAX_COEFFICIENT_SD} \
                     standard deviations"
                ),
            ));
        }
    }
    Ok(())
}

impl FaceParams {
    /// Checks every physical parameter against its documented range: coefficients within
    /// ±[`MAX_COEFFICIENT_SD`], the pose's angles within ±90° and translations within ±1 m
    /// ([`Pose::validate`]), m ∈ [0, 1], s in [`ANTENNA_CM_RANGE`], D in
    /// [`DYNAMIC_RANGE_DB_RANGE`]. What a user asks to simulate must pass; predictions that
    /// stray a little outside m, s and D are clamped by the physics renderer instead.
    pub fn validate(&self) -> Result<()> {
        check_coefficients(&self.shape, &self.expression)?;
        self.pose.validate()?;
        self.render.validate()
    }

    /// A sampled face with its rendering parameters.
    pub fn from_sample(sample: FaceSample, render: RenderParams) -> Self {
        Self {
            shape: sample.shape,
            expression: sample.expression,
            pose: sample.pose,
            render,
        }
    }
}

/// Column groups of the flat vector, in order. Table 1 reports the L2 error per group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ParamGroup {
    /// α.
    Shape,
    /// γ.
    Expression,
    /// t_x, t_y (and t_z when the layout has it), scaled by [`PoseScales::translation_m`].
    Translation,
    /// yaw, pitch, roll, scaled by [`PoseScales::angle_rad`].
    Rotation,
    /// material, antenna size, dynamic range, mapped onto [−1, 1].
    Render,
}

impl ParamGroup {
    /// Every group, in column order.
    pub const ALL: [ParamGroup; 5] = [
        Self::Shape,
        Self::Expression,
        Self::Translation,
        Self::Rotation,
        Self::Render,
    ];
}

/// The order and meaning of the columns of a flat parameter vector:
/// `[α (n_shape) | γ (n_expression) | t_x t_y [t_z] | yaw pitch roll | m s D]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ParamLayout {
    /// Number of shape coefficients.
    pub n_shape: usize,
    /// Number of expression coefficients.
    pub n_expression: usize,
    /// Whether t_z is a column. The paper predicts and scores it (its Table 1 totals are over
    /// 10 + 7 + 3 + 3 = 23 elements) although its data always have t_z = 0.
    pub translation_z: bool,
    /// Divisors of the pose columns. Manifests written before issue 13 lack the field and
    /// read as [`PoseScaling::Fixed`], which is what they used.
    #[serde(default)]
    pub pose_scales: PoseScales,
    /// Ranges that the rendering parameters are scaled from.
    pub render_ranges: RenderRanges,
}

impl Default for ParamLayout {
    /// The paper's layout for [`SamplingConfig::default`]: 10 + 7 coefficients, t_x, t_y, t_z,
    /// three angles (each pose column scaled by its own sampling range), m, s, D.
    fn default() -> Self {
        Self::new(&SamplingConfig::default(), PoseScaling::SamplingRange)
    }
}

impl ParamLayout {
    /// The layout of faces drawn by `sampling`: its coefficient counts, a t_z column (the
    /// paper's protocol), pose columns scaled by `scaling`, and the paper's rendering ranges.
    pub fn new(sampling: &SamplingConfig, scaling: PoseScaling) -> Self {
        Self {
            n_shape: sampling.n_shape,
            n_expression: sampling.n_expression,
            translation_z: true,
            pose_scales: PoseScales::new(scaling, sampling),
            render_ranges: RenderRanges::default(),
        }
    }

    /// The largest |scaled value| each column can hold for a physically valid face
    /// ([`FaceParams::validate`]): [`MAX_COEFFICIENT_SD`] for coefficients, the pose limits
    /// ([`morphable::MAX_TRANSLATION_M`], [`morphable::MAX_ANGLE_RAD`]) over each column's scale,
    /// and the physical ranges of m, s and D mapped like the rendering columns. Readers refuse
    /// stored values beyond these: a parameter of 1e30 is corruption, not a face.
    pub fn column_limits(&self) -> Vec<f64> {
        let mut limits = vec![MAX_COEFFICIENT_SD; self.n_shape + self.n_expression];
        let scales = &self.pose_scales;
        limits.extend(
            scales.translation_m[..self.n_translation()]
                .iter()
                .map(|s| morphable::MAX_TRANSLATION_M / s),
        );
        limits.extend(
            scales
                .angle_rad
                .iter()
                .map(|s| morphable::MAX_ANGLE_RAD / s),
        );
        let r = &self.render_ranges;
        for ((lo, hi), range) in [
            ((0.0, 1.0), r.material),
            (ANTENNA_CM_RANGE, r.antenna_cm),
            (DYNAMIC_RANGE_DB_RANGE, r.dynamic_range_db),
        ] {
            limits.push(to_unit(lo, range).abs().max(to_unit(hi, range).abs()));
        }
        limits
    }

    /// How the pose columns are scaled, for notes under tables: e.g. "t_x, t_y, t_z / 5 cm;
    /// yaw / 5°, pitch / 10°, roll / 10°".
    pub fn describe_pose_scaling(&self) -> String {
        let names = ["t_x", "t_y", "t_z"];
        let t = &self.pose_scales.translation_m[..self.n_translation()];
        let same = t.iter().all(|v| *v == t[0]);
        let cm = |v: f64| format!("{} cm", round(v * 100.0));
        let translation = if same {
            format!("{} / {}", names[..t.len()].join(", "), cm(t[0]))
        } else {
            let each: Vec<String> = (0..t.len())
                .map(|k| format!("{} / {}", names[k], cm(t[k])))
                .collect();
            each.join(", ")
        };
        let a = self.pose_scales.angle_rad.map(|v| round(v.to_degrees()));
        format!(
            "{translation}; yaw / {}°, pitch / {}°, roll / {}°",
            a[0], a[1], a[2]
        )
    }

    /// Validates the pose scales and the rendering ranges.
    pub fn validate(&self) -> Result<()> {
        self.pose_scales.validate()?;
        self.render_ranges.validate()
    }

    /// Number of translation columns.
    fn n_translation(&self) -> usize {
        if self.translation_z { 3 } else { 2 }
    }

    /// Total number of columns P.
    pub fn len(&self) -> usize {
        self.n_shape + self.n_expression + self.n_translation() + 3 + 3
    }

    /// Whether the layout has no columns (never: pose and render columns always exist).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The columns of a group.
    pub fn range(&self, group: ParamGroup) -> Range<usize> {
        let s = self.n_shape;
        let e = s + self.n_expression;
        let t = e + self.n_translation();
        let r = t + 3;
        match group {
            ParamGroup::Shape => 0..s,
            ParamGroup::Expression => s..e,
            ParamGroup::Translation => e..t,
            ParamGroup::Rotation => t..r,
            ParamGroup::Render => r..r + 3,
        }
    }

    /// Column names, for manifests and CSV headers: `shape_0…`, `expression_0…`, `tx_scaled`,
    /// `ty_scaled`, (`tz_scaled`), `yaw_scaled`, `pitch_scaled`, `roll_scaled`,
    /// `material_scaled`, `antenna_scaled`, `dynamic_range_scaled`.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = (0..self.n_shape).map(|i| format!("shape_{i}")).collect();
        names.extend((0..self.n_expression).map(|i| format!("expression_{i}")));
        names.extend(["tx_scaled", "ty_scaled"].map(String::from));
        if self.translation_z {
            names.push("tz_scaled".into());
        }
        names.extend(
            [
                "yaw_scaled",
                "pitch_scaled",
                "roll_scaled",
                "material_scaled",
                "antenna_scaled",
                "dynamic_range_scaled",
            ]
            .map(String::from),
        );
        names
    }

    /// The scaled flat vector of a face. Coefficients beyond the layout's counts are dropped;
    /// missing ones are zero.
    pub fn to_vector(&self, p: &FaceParams) -> Vec<f32> {
        let mut v = Vec::with_capacity(self.len());
        let padded = |c: &[f64], n: usize| -> Vec<f64> {
            (0..n).map(|i| c.get(i).copied().unwrap_or(0.0)).collect()
        };
        v.extend(padded(&p.shape, self.n_shape));
        v.extend(padded(&p.expression, self.n_expression));
        let scales = &self.pose_scales;
        let t = &p.pose.translation;
        let n_t = self.n_translation();
        v.extend((0..n_t).map(|k| t[k] / scales.translation_m[k]));
        let angles = [p.pose.yaw, p.pose.pitch, p.pose.roll];
        v.extend((0..3).map(|k| angles[k] / scales.angle_rad[k]));
        let r = &self.render_ranges;
        v.extend([
            to_unit(p.render.material, r.material),
            to_unit(p.render.antenna_cm, r.antenna_cm),
            to_unit(p.render.dynamic_range_db, r.dynamic_range_db),
        ]);
        v.into_iter().map(|x| x as f32).collect()
    }

    /// The pose of a scaled flat vector given in f64 (the inverse of the pose scaling of
    /// [`ParamLayout::to_vector`]); t_z is 0 when the layout has no column for it. The one place
    /// where scaled columns become a pose. `v` must have [`ParamLayout::len`] columns.
    pub fn pose(&self, v: &[f64]) -> Pose {
        let t = &v[self.range(ParamGroup::Translation)];
        let a = &v[self.range(ParamGroup::Rotation)];
        let scales = &self.pose_scales;
        let translation = |k: usize| t.get(k).map_or(0.0, |t| t * scales.translation_m[k]);
        Pose {
            yaw: a[0] * scales.angle_rad[0],
            pitch: a[1] * scales.angle_rad[1],
            roll: a[2] * scales.angle_rad[2],
            translation: Vector3::new(translation(0), translation(1), translation(2)),
        }
    }

    /// The column of the dynamic range D.
    pub fn dynamic_range_column(&self) -> usize {
        self.range(ParamGroup::Render).start + 2
    }

    /// The scaled value of a dynamic range of `d_db` dB in its column.
    pub fn scaled_dynamic_range(&self, d_db: f64) -> f32 {
        to_unit(d_db, self.render_ranges.dynamic_range_db) as f32
    }

    /// Sets the dynamic-range column of a scaled vector to `d_db` dB, leaving every other
    /// column as it is: the one way to show a parameter row at another dynamic range.
    pub fn set_dynamic_range(&self, v: &mut [f32], d_db: f64) {
        v[self.dynamic_range_column()] = self.scaled_dynamic_range(d_db);
    }

    /// The face of a scaled flat vector (the inverse of [`ParamLayout::to_vector`]).
    pub fn from_vector(&self, v: &[f32]) -> Result<FaceParams> {
        if v.len() != self.len() {
            return Err(AbsFitError::Shape {
                what: "parameter vector",
                expected: format!("{} columns ({:?})", self.len(), self),
                actual: format!("{} columns", v.len()),
            });
        }
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(AbsFitError::config(
                "parameter vector",
                format!("column {i} ({}) is {}", self.names()[i], v[i]),
            ));
        }
        let v: Vec<f64> = v.iter().map(|&x| x as f64).collect();
        let col = |g: ParamGroup| &v[self.range(g)];
        Ok(FaceParams {
            shape: col(ParamGroup::Shape).to_vec(),
            expression: col(ParamGroup::Expression).to_vec(),
            pose: self.pose(&v),
            render: self.render(&v),
        })
    }

    /// The rendering parameters of a scaled row (P columns, f64), unchecked.
    pub(crate) fn render(&self, v: &[f64]) -> RenderParams {
        let r = &v[self.range(ParamGroup::Render)];
        let ranges = &self.render_ranges;
        RenderParams {
            material: from_unit(r[0], ranges.material),
            antenna_cm: from_unit(r[1], ranges.antenna_cm),
            dynamic_range_db: from_unit(r[2], ranges.dynamic_range_db),
        }
    }

    /// d(value)/d(scaled column) of the material, the antenna size (cm) and D (dB).
    pub(crate) fn render_scales(&self) -> [f64; 3] {
        let ranges = &self.render_ranges;
        [ranges.material, ranges.antenna_cm, ranges.dynamic_range_db]
            .map(|(lo, hi)| (hi - lo) / 2.0)
    }
}

/// The distribution a dataset draws its faces from: sample i is a pure function of
/// (sampling, layout, seed, i), so datasets, baselines and studies draw alike.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaceDistribution {
    /// Coefficients and pose.
    pub sampling: SamplingConfig,
    /// Coefficient counts (equal to `sampling`'s) and the rendering parameters' ranges.
    pub layout: ParamLayout,
    /// Base seed.
    pub seed: u64,
}

impl FaceDistribution {
    /// Checks both parts and that they agree: the same coefficient counts, and a t_z column
    /// whenever t_z is sampled (the layout may have one for an unsampled t_z, as the paper's).
    pub fn validate(&self) -> Result<()> {
        self.sampling.validate()?;
        self.layout.validate()?;
        let (s, l) = (&self.sampling, &self.layout);
        if (s.n_shape, s.n_expression) != (l.n_shape, l.n_expression) {
            return Err(AbsFitError::Shape {
                what: "sampling config against the parameter layout",
                expected: format!(
                    "{} + {} coefficients (the layout stores {} + {})",
                    l.n_shape, l.n_expression, l.n_shape, l.n_expression
                ),
                actual: format!("sampling draws {} + {}", s.n_shape, s.n_expression),
            });
        }
        if s.max_translation_z_m > 0.0 && !l.translation_z {
            return Err(AbsFitError::config(
                "sampling config",
                format!(
                    "t_z is sampled (±{} m) but the layout has no t_z column to store it",
                    s.max_translation_z_m
                ),
            ));
        }
        Ok(())
    }

    /// Face i and a seed for its simulation. Draw order: the face (coefficients, then pose),
    /// then m, s, D uniform in the layout's ranges, then the simulation seed.
    pub fn draw(&self, index: usize) -> (FaceParams, u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(index as u64);
        let face = self.sampling.sample(&mut rng);
        let r = &self.layout.render_ranges;
        let mut uniform = |(lo, hi): (f64, f64)| lo + (hi - lo) * rng.random::<f64>();
        let render = RenderParams {
            material: uniform(r.material),
            antenna_cm: uniform(r.antenna_cm),
            dynamic_range_db: uniform(r.dynamic_range_db),
        };
        let simulation_seed = rng.random();
        (FaceParams::from_sample(face, render), simulation_seed)
    }
}
