//! Parameter rows to placed meshes in f64, and vertex gradients back to the scaled columns:
//! the part every differentiable renderer of a linear face model shares.
//!
//! The face x(α, γ) = μ_s + μ_e + Σ α_k·S_k + Σ γ_k·E_k (mm, model space) is placed in radar
//! space by [`Placement`] (docs/physics.md §2): p'' = R·A(p) + t + (0, 0, z_0) with
//! R = R_y·R_x·R_z. Vertex gradients G_v (radar space, per m) are carried to the translation
//! (Σ_v G_v), the angles (Σ_ij (∂R/∂θ)_ij·M_ij with M = Σ_v G_v·p'_vᵀ) and the coefficients
//! (Σ_v (Jᵀ·G_v)·S_k,v with J the placement's Jacobian), each times its column's scale.

use morphable::{LinearMorphableModel, Mesh, Placement, Pose};
use nalgebra::{Matrix3, Point3, Rotation3, Vector3};

use crate::{AbsFitError, ParamGroup, ParamLayout, Result};

/// A linear face model's rows as meshes, in f64.
#[derive(Debug)]
pub(crate) struct FaceGeometry {
    pub layout: ParamLayout,
    pub placement: Placement,
    pub triangles: Vec<[u32; 3]>,
    /// μ_s + μ_e (mm), `x0 y0 z0 x1 …`.
    mean: Vec<f64>,
    /// The layout's shape columns, then its expression columns: displacement (mm) per σ.
    basis: Vec<Vec<f64>>,
}

/// One parameter row decoded in f64: the coefficients (shape, then expression) and the pose.
pub(crate) struct DecodedFace {
    pub coefficients: Vec<f64>,
    pub pose: Pose,
}

impl FaceGeometry {
    /// The geometry of `model`'s faces described by `layout`, placed `distance_m` from the
    /// array as [`Placement::for_mean_mesh`] says. `what` names the renderer in errors. Fails
    /// if the layout asks for more shape or expression components than the model has.
    pub fn new<M: LinearMorphableModel>(
        model: &M,
        layout: ParamLayout,
        distance_m: f64,
        what: &'static str,
    ) -> Result<Self> {
        let (shape, expression) = (model.shape_block(), model.expression_block());
        for (kind, wanted, held) in [
            ("shape", layout.n_shape, shape.n_components()),
            ("expression", layout.n_expression, expression.n_components()),
        ] {
            if wanted > held {
                return Err(AbsFitError::config(
                    what,
                    format!(
                        "{wanted} {kind} columns, but model '{}' has {held} {kind} components",
                        model.name()
                    ),
                ));
            }
        }
        let n_coords = shape.n_coords();
        if expression.n_coords() != n_coords || n_coords != 3 * model.n_vertices() {
            return Err(AbsFitError::Shape {
                what,
                expected: format!("{} coordinates (3 per vertex)", 3 * model.n_vertices()),
                actual: format!("shape {n_coords}, expression {}", expression.n_coords()),
            });
        }
        let mean: Vec<f64> = (shape.mean().iter())
            .zip(expression.mean())
            .map(|(a, b)| *a as f64 + *b as f64)
            .collect();
        let basis: Vec<Vec<f64>> = (0..layout.n_shape)
            .map(|k| shape.component(k))
            .chain((0..layout.n_expression).map(|k| expression.component(k)))
            .map(|column| column.iter().map(|&v| v as f64).collect())
            .collect();
        Ok(Self {
            layout,
            placement: Placement::for_mean_mesh(&model.mean_mesh()?, distance_m)?,
            triangles: model.triangles().to_vec(),
            mean,
            basis,
        })
    }

    /// The coefficients and pose of a scaled row (the inverse of the scaling that
    /// [`ParamLayout::to_vector`] applies), in f64. Errors: a row of the wrong length or with
    /// a non-finite value.
    pub fn decode(&self, row: &[f64]) -> Result<DecodedFace> {
        let layout = &self.layout;
        if row.len() != layout.len() {
            return Err(AbsFitError::Shape {
                what: "parameter vector",
                expected: format!("{} columns", layout.len()),
                actual: format!("{} columns", row.len()),
            });
        }
        if let Some(i) = row.iter().position(|v| !v.is_finite()) {
            return Err(AbsFitError::config(
                "parameter vector",
                format!("column {i} ({}) is {}", layout.names()[i], row[i]),
            ));
        }
        let mut coefficients = row[layout.range(ParamGroup::Shape)].to_vec();
        coefficients.extend_from_slice(&row[layout.range(ParamGroup::Expression)]);
        Ok(DecodedFace {
            coefficients,
            pose: layout.pose(row),
        })
    }

    /// The face in model space (mm).
    pub fn model_mesh(&self, coefficients: &[f64]) -> Mesh {
        let mut flat = self.mean.clone();
        for (column, &c) in self.basis.iter().zip(coefficients) {
            if c != 0.0 {
                flat.iter_mut().zip(column).for_each(|(x, v)| *x += c * v);
            }
        }
        Mesh {
            vertices: (flat.chunks_exact(3))
                .map(|p| Point3::new(p[0], p[1], p[2]))
                .collect(),
            triangles: self.triangles.clone(),
        }
    }

    /// The face placed in radar space (m).
    pub fn placed(&self, face: &DecodedFace) -> Mesh {
        self.placement
            .place(&self.model_mesh(&face.coefficients), &face.pose)
    }

    /// The gradient by the row's scaled columns (P; the rendering columns 0) of a loss whose
    /// gradient by the vertices of `placed` (radar space, per m) is `vertex_grad`; vertices
    /// not `touched` are skipped.
    pub fn columns_gradient(
        &self,
        face: &DecodedFace,
        placed: &Mesh,
        vertex_grad: &[Vector3<f64>],
        touched: &[bool],
    ) -> Vec<f64> {
        let layout = &self.layout;
        let mut grad = vec![0.0; layout.len()];
        let pose = &face.pose;
        let rotation = pose.rotation();
        let offset = pose.translation + Vector3::new(0.0, 0.0, self.placement.z0_m);
        // Translation: ∂p''/∂t = I.
        let total: Vector3<f64> = vertex_grad.iter().sum();
        let scales = &layout.pose_scales;
        for ((slot, value), scale) in grad[layout.range(ParamGroup::Translation)]
            .iter_mut()
            .zip(total.iter())
            .zip(scales.translation_m)
        {
            *slot = value * scale;
        }
        // Rotation: ∂p''/∂θ = (∂R/∂θ)·p' with p' = Rᵀ(p'' − t − z_0·ẑ), so
        // ∂/∂θ = Σ_ij (∂R/∂θ)_ij·M_ij with M = Σ_v G_v·p'_vᵀ.
        let mut moment = Matrix3::<f64>::zeros();
        for (v, g) in vertex_grad.iter().enumerate() {
            if touched[v] {
                let unposed = rotation.inverse() * (placed.vertices[v].coords - offset);
                moment += g * unposed.transpose();
            }
        }
        for ((slot, d_rotation), scale) in grad[layout.range(ParamGroup::Rotation)]
            .iter_mut()
            .zip(rotation_derivatives(pose))
            .zip(scales.angle_rad)
        {
            *slot = d_rotation.component_mul(&moment).sum() * scale;
        }
        // Coefficients: ∂p''_v/∂c_k = J·S_k,v with J the (constant) Jacobian of the placement
        // with respect to a model-space point (mm → m), so ∂/∂c_k = Σ_v (Jᵀ·G_v)·S_k,v.
        let jacobian_t = self.placement_jacobian(pose).transpose();
        let model_grad: Vec<(usize, Vector3<f64>)> = (vertex_grad.iter().enumerate())
            .filter(|(v, _)| touched[*v])
            .map(|(v, g)| (v, jacobian_t * g))
            .collect();
        let coefficient_columns = layout
            .range(ParamGroup::Shape)
            .chain(layout.range(ParamGroup::Expression));
        for (column, basis) in coefficient_columns.zip(&self.basis) {
            grad[column] = (model_grad.iter())
                .map(|(v, g)| g.x * basis[3 * v] + g.y * basis[3 * v + 1] + g.z * basis[3 * v + 2])
                .sum();
        }
        grad
    }

    /// J = ∂p''/∂p (m per mm) of [`Placement::to_radar`] at `pose`: the placement is affine in
    /// the model-space point, so differences over 1 m steps from the centre are exact up to
    /// rounding.
    fn placement_jacobian(&self, pose: &Pose) -> Matrix3<f64> {
        const STEP_MM: f64 = 1000.0;
        let centre = self.placement.centre_mm;
        let origin = self.placement.to_radar(&centre, pose);
        let column = |axis: Vector3<f64>| {
            (self.placement.to_radar(&(centre + axis * STEP_MM), pose) - origin) / STEP_MM
        };
        Matrix3::from_columns(&[
            column(Vector3::x()),
            column(Vector3::y()),
            column(Vector3::z()),
        ])
    }
}

/// ∂R/∂yaw, ∂R/∂pitch, ∂R/∂roll of R = R_y(yaw)·R_x(pitch)·R_z(roll) ([`Pose::rotation`]),
/// using dR_a(θ)/dθ = [a]_×·R_a(θ) for a rotation about the unit axis a.
fn rotation_derivatives(pose: &Pose) -> [Matrix3<f64>; 3] {
    let ry = Rotation3::from_axis_angle(&Vector3::y_axis(), pose.yaw).into_inner();
    let rx = Rotation3::from_axis_angle(&Vector3::x_axis(), pose.pitch).into_inner();
    let rz = Rotation3::from_axis_angle(&Vector3::z_axis(), pose.roll).into_inner();
    let (ky, kx, kz) = (
        Vector3::<f64>::y().cross_matrix(),
        Vector3::<f64>::x().cross_matrix(),
        Vector3::<f64>::z().cross_matrix(),
    );
    [ky * ry * rx * rz, ry * kx * rx * rz, ry * rx * kz * rz]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The analytic rotation derivatives agree with central differences of [`Pose::rotation`].
    #[test]
    fn rotation_derivatives_match_central_differences() {
        let pose = Pose {
            yaw: 0.07,
            pitch: -0.15,
            roll: 0.12,
            translation: Vector3::zeros(),
        };
        let h = 1e-6;
        let analytic = rotation_derivatives(&pose);
        for (axis, d) in analytic.iter().enumerate() {
            let shifted = |s: f64| {
                let mut p = pose;
                match axis {
                    0 => p.yaw += s,
                    1 => p.pitch += s,
                    _ => p.roll += s,
                }
                p.rotation().into_inner()
            };
            let numeric = (shifted(h) - shifted(-h)) / (2.0 * h);
            assert!(
                (numeric - d).abs().max() < 1e-8,
                "axis {axis}: {numeric} vs {d}"
            );
        }
    }
}
