//! Triangle meshes: vertices, triangles, normals and areas.

use nalgebra::{Point3, Vector3};

use crate::{MorphableError, Result};

/// A triangle mesh. Units are whatever the producer says: face models work in millimetres
/// (model space, y up, nose toward +z); a placed face is in metres (radar space).
#[derive(Debug, Clone, PartialEq)]
pub struct Mesh {
    /// Vertex positions.
    pub vertices: Vec<Point3<f64>>,
    /// Counter-clockwise (seen from outside) vertex indices, 0-based.
    pub triangles: Vec<[u32; 3]>,
}

impl Mesh {
    /// Builds a mesh, checking that every index is in range and every coordinate is finite.
    pub fn new(vertices: Vec<Point3<f64>>, triangles: Vec<[u32; 3]>) -> Result<Self> {
        let n = vertices.len();
        if let Some(i) = vertices
            .iter()
            .position(|v| !v.coords.iter().all(|c| c.is_finite()))
        {
            return Err(MorphableError::Mesh(format!(
                "vertex {i} is not finite: {:?}",
                vertices[i]
            )));
        }
        if let Some((t, tri)) = triangles
            .iter()
            .enumerate()
            .find(|(_, t)| t.iter().any(|&i| i as usize >= n))
        {
            return Err(MorphableError::Mesh(format!(
                "triangle {t} = {tri:?} indexes past the {n} vertices"
            )));
        }
        Ok(Self {
            vertices,
            triangles,
        })
    }

    /// Builds a mesh from a flat `x0 y0 z0 x1 …` coordinate list (the statismo layout).
    pub fn from_flat(coords: &[f32], triangles: Vec<[u32; 3]>) -> Result<Self> {
        if !coords.len().is_multiple_of(3) {
            return Err(MorphableError::Mesh(format!(
                "{} coordinates is not a multiple of 3",
                coords.len()
            )));
        }
        let vertices = coords
            .chunks_exact(3)
            .map(|c| Point3::new(c[0] as f64, c[1] as f64, c[2] as f64))
            .collect();
        Self::new(vertices, triangles)
    }

    /// The coordinates as a flat `x0 y0 z0 x1 …` list.
    pub fn to_flat(&self) -> Vec<f64> {
        self.vertices.iter().flat_map(|v| [v.x, v.y, v.z]).collect()
    }

    /// Number of vertices.
    pub fn n_vertices(&self) -> usize {
        self.vertices.len()
    }

    /// The three corners of triangle `t`.
    #[inline]
    pub fn corners(&self, t: usize) -> [Point3<f64>; 3] {
        let [a, b, c] = self.triangles[t];
        [
            self.vertices[a as usize],
            self.vertices[b as usize],
            self.vertices[c as usize],
        ]
    }

    /// Un-normalised triangle normals: (b − a) × (c − a), whose length is twice the area.
    pub fn triangle_cross_products(&self) -> Vec<Vector3<f64>> {
        (0..self.triangles.len())
            .map(|t| {
                let [a, b, c] = self.corners(t);
                (b - a).cross(&(c - a))
            })
            .collect()
    }

    /// Triangle areas (unit²).
    pub fn triangle_areas(&self) -> Vec<f64> {
        self.triangle_cross_products()
            .iter()
            .map(|n| 0.5 * n.norm())
            .collect()
    }

    /// Unit triangle normals; a degenerate triangle gets the zero vector.
    pub fn triangle_normals(&self) -> Vec<Vector3<f64>> {
        self.triangle_cross_products()
            .into_iter()
            .map(|n| n.try_normalize(0.0).unwrap_or_else(Vector3::zeros))
            .collect()
    }

    /// Unit vertex normals: area-weighted mean of the adjacent triangle normals. A vertex in no
    /// (non-degenerate) triangle gets the zero vector.
    pub fn vertex_normals(&self) -> Vec<Vector3<f64>> {
        let mut normals = vec![Vector3::zeros(); self.vertices.len()];
        for (tri, n) in self.triangles.iter().zip(self.triangle_cross_products()) {
            for &i in tri {
                normals[i as usize] += n;
            }
        }
        normals
            .into_iter()
            .map(|n| n.try_normalize(0.0).unwrap_or_else(Vector3::zeros))
            .collect()
    }

    /// Total surface area (unit²).
    pub fn area(&self) -> f64 {
        self.triangle_areas().iter().sum()
    }

    /// Axis-aligned bounding box `(min, max)`; `None` for a mesh without vertices.
    pub fn bounding_box(&self) -> Option<(Point3<f64>, Point3<f64>)> {
        let first = *self.vertices.first()?;
        Some(
            self.vertices
                .iter()
                .fold((first, first), |(lo, hi), v| (lo.inf(v), hi.sup(v))),
        )
    }

    /// Centre of the bounding box.
    pub fn bounding_box_centre(&self) -> Option<Point3<f64>> {
        self.bounding_box()
            .map(|(lo, hi)| nalgebra::center(&lo, &hi))
    }

    /// Mean edge length over all triangle edges (unit).
    pub fn mean_edge_length(&self) -> f64 {
        if self.triangles.is_empty() {
            return 0.0;
        }
        let total: f64 = (0..self.triangles.len())
            .map(|t| {
                let [a, b, c] = self.corners(t);
                (b - a).norm() + (c - b).norm() + (a - c).norm()
            })
            .sum();
        total / (3 * self.triangles.len()) as f64
    }

    /// Applies `f` to every vertex.
    pub fn map_vertices(&self, f: impl Fn(&Point3<f64>) -> Point3<f64>) -> Mesh {
        Mesh {
            vertices: self.vertices.iter().map(f).collect(),
            triangles: self.triangles.clone(),
        }
    }
}
