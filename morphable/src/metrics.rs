//! Mesh metrics (docs/physics.md §6).

use crate::{Mesh, MorphableError, Result};

/// Euclidean distance of each vertex of `a` to the same vertex of `b` (units of the meshes).
pub fn per_vertex_distance(a: &Mesh, b: &Mesh) -> Result<Vec<f64>> {
    if a.n_vertices() != b.n_vertices() {
        return Err(MorphableError::Mesh(format!(
            "cannot compare meshes of {} and {} vertices",
            a.n_vertices(),
            b.n_vertices()
        )));
    }
    Ok(a.vertices
        .iter()
        .zip(&b.vertices)
        .map(|(p, q)| (p - q).norm())
        .collect())
}

/// The point distance of Table 1: the mean over vertices of |x_i(a) − x_i(b)| (units of the
/// meshes, mm for model-space instances). Compare instances without pose.
pub fn point_distance(a: &Mesh, b: &Mesh) -> Result<f64> {
    let d = per_vertex_distance(a, b)?;
    if d.is_empty() {
        return Err(MorphableError::Mesh("meshes without vertices".into()));
    }
    Ok(d.iter().sum::<f64>() / d.len() as f64)
}

/// Root-mean-square vertex displacement between two meshes of the same topology.
pub fn rms_distance(a: &Mesh, b: &Mesh) -> Result<f64> {
    let d = per_vertex_distance(a, b)?;
    if d.is_empty() {
        return Err(MorphableError::Mesh("meshes without vertices".into()));
    }
    Ok((d.iter().map(|x| x * x).sum::<f64>() / d.len() as f64).sqrt())
}
