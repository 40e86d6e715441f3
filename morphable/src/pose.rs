//! Head pose and the placement of a face in front of a radar array (docs/physics.md §2).

use nalgebra::{Point3, Rotation3, Vector3};
use serde::{Deserialize, Serialize};

use crate::{Mesh, MorphableError, MorphableModel, Result};

/// A rigid head pose in radar space.
///
/// Angles in radians, translation in metres. The rotation is R = R_y(yaw)·R_x(pitch)·R_z(roll):
/// roll about z first, then pitch about x, then yaw about y (docs/physics.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Pose {
    /// Rotation about the y axis (rad).
    pub yaw: f64,
    /// Rotation about the x axis (rad).
    pub pitch: f64,
    /// Rotation about the z axis (rad).
    pub roll: f64,
    /// Translation (m), added after the rotation and on top of the placement distance.
    pub translation: Vector3<f64>,
}

impl Pose {
    /// The identity pose: facing the array, centred, at the placement distance.
    pub fn identity() -> Self {
        Self::default()
    }

    /// R = R_y(yaw)·R_x(pitch)·R_z(roll).
    pub fn rotation(&self) -> Rotation3<f64> {
        Rotation3::from_axis_angle(&Vector3::y_axis(), self.yaw)
            * Rotation3::from_axis_angle(&Vector3::x_axis(), self.pitch)
            * Rotation3::from_axis_angle(&Vector3::z_axis(), self.roll)
    }

    /// Checks that every angle lies within ±[`MAX_ANGLE_RAD`] (90°) and every translation
    /// within ±[`MAX_TRANSLATION_M`] (1 m): generous against the paper's ±5° to ±10° and ±5 cm,
    /// but a face turned past side-on looks away from the array, and a head pose is not a
    /// metre-scale move.
    pub fn validate(&self) -> Result<()> {
        let refuse = |reason: String| {
            Err(MorphableError::Config {
                name: "pose",
                reason,
            })
        };
        for (name, angle) in [
            ("yaw", self.yaw),
            ("pitch", self.pitch),
            ("roll", self.roll),
        ] {
            if !(0.0..=MAX_ANGLE_RAD).contains(&angle.abs()) {
                return refuse(format!(
                    "{name} = {angle} rad ({:.4}°) must lie within ±90°",
                    angle.to_degrees()
                ));
            }
        }
        for (name, t) in ["t_x", "t_y", "t_z"].iter().zip(self.translation.iter()) {
            if !(0.0..=MAX_TRANSLATION_M).contains(&t.abs()) {
                return refuse(format!(
                    "{name} = {t} m must lie within ±{MAX_TRANSLATION_M} m"
                ));
            }
        }
        Ok(())
    }
}

/// The largest |yaw|, |pitch| and |roll| a [`Pose`] may have: 90°.
pub const MAX_ANGLE_RAD: f64 = std::f64::consts::FRAC_PI_2;
/// The largest |t_x|, |t_y| and |t_z| a [`Pose`] may have (m).
pub const MAX_TRANSLATION_M: f64 = 1.0;

/// Default distance (m) from the array plane to the mean face's closest point.
pub const DEFAULT_DISTANCE_M: f64 = 0.25;

/// Where a model's faces sit in front of the array: p'' = R·R_flip·(p − c)/1000 + (t_x, t_y,
/// z_0 + t_z), with p in mm (model space), R_flip = diag(−1, 1, −1) (180° about y, so the face
/// looks toward −z, at the array), c the centre of the mean face's bounding box, and z_0 chosen
/// once per model so that the mean face's closest point is `distance_m` from the array plane.
///
/// R_flip is a proper rotation, so triangle winding and outward normals are preserved: outward
/// normals of a placed face point toward the array.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// c: centre of the mean face's bounding box (mm, model space).
    pub centre_mm: Point3<f64>,
    /// z_0 (m).
    pub z0_m: f64,
}

impl Placement {
    /// The placement of a model at [`DEFAULT_DISTANCE_M`].
    pub fn for_model(model: &dyn MorphableModel) -> Result<Self> {
        Self::for_mean_mesh(&model.mean_mesh()?, DEFAULT_DISTANCE_M)
    }

    /// The placement for a given mean face (mm) and distance (m) of its closest point.
    pub fn for_mean_mesh(mean: &Mesh, distance_m: f64) -> Result<Self> {
        if !(distance_m.is_finite() && distance_m > 0.0) {
            return Err(MorphableError::Config {
                name: "placement distance",
                reason: format!("{distance_m} m must be finite and positive"),
            });
        }
        let centre_mm = mean
            .bounding_box_centre()
            .ok_or_else(|| MorphableError::Mesh("the mean face has no vertices".into()))?;
        let unshifted = Self {
            centre_mm,
            z0_m: 0.0,
        };
        let min_z = mean
            .vertices
            .iter()
            .map(|p| unshifted.flip(p).z)
            .fold(f64::INFINITY, f64::min);
        Ok(Self {
            centre_mm,
            z0_m: distance_m - min_z,
        })
    }

    /// R_flip·(p − c)/1000: model space (mm) to an unposed radar-space offset (m).
    fn flip(&self, p_mm: &Point3<f64>) -> Vector3<f64> {
        let d = (p_mm - self.centre_mm) / 1000.0;
        Vector3::new(-d.x, d.y, -d.z)
    }

    /// A model-space point (mm) in radar space (m) for a pose.
    pub fn to_radar(&self, p_mm: &Point3<f64>, pose: &Pose) -> Point3<f64> {
        self.radar_point(&pose.rotation(), p_mm, pose)
    }

    fn radar_point(&self, r: &Rotation3<f64>, p_mm: &Point3<f64>, pose: &Pose) -> Point3<f64> {
        Point3::from(r * self.flip(p_mm) + pose.translation + Vector3::new(0.0, 0.0, self.z0_m))
    }

    /// The inverse of [`Placement::to_radar`]: a radar-space point (m) back in model space (mm).
    pub fn to_model(&self, p_m: &Point3<f64>, pose: &Pose) -> Point3<f64> {
        let q = pose.rotation().inverse()
            * (p_m.coords - pose.translation - Vector3::new(0.0, 0.0, self.z0_m));
        // R_flip is its own inverse.
        self.centre_mm + Vector3::new(-q.x, q.y, -q.z) * 1000.0
    }

    /// A model-space mesh (mm) placed in radar space (m).
    pub fn place(&self, mesh: &Mesh, pose: &Pose) -> Mesh {
        let r = pose.rotation();
        mesh.map_vertices(|p| self.radar_point(&r, p, pose))
    }
}
