//! What the radar looks at: triangle surfaces and point scatterers, in metres (radar space).
//! This module knows nothing of faces: a surface is positions and triangles.

use nalgebra::{Point3, Vector3};

use crate::{RadarError, Result};

/// A triangle surface in radar space (m). Triangles index into the vertex list (0-based).
/// Winding does not matter: the simulator turns each hit's normal toward the array (see
/// [`Simulator`](crate::Simulator)). Degenerate triangles (repeated indices or zero area) are
/// allowed here; a simulation skips and counts them.
#[derive(Debug, Clone, PartialEq)]
pub struct Surface {
    vertices: Vec<Point3<f64>>,
    triangles: Vec<[u32; 3]>,
}

impl Surface {
    /// A surface from vertex positions (m) and triangles. Fails on a non-finite coordinate or an
    /// index past the vertex list.
    pub fn new(vertices: Vec<Point3<f64>>, triangles: Vec<[u32; 3]>) -> Result<Self> {
        if let Some((i, p)) = vertices
            .iter()
            .enumerate()
            .find(|(_, p)| !p.coords.iter().all(|c| c.is_finite()))
        {
            return Err(RadarError::config(
                "surface",
                format!(
                    "vertex {i} has a non-finite position {:?} m",
                    p.coords.as_slice()
                ),
            ));
        }
        let n = vertices.len();
        if let Some((t, tri)) = triangles
            .iter()
            .enumerate()
            .find(|(_, tri)| tri.iter().any(|&i| i as usize >= n))
        {
            return Err(RadarError::config(
                "surface",
                format!("triangle {t} = {tri:?} indexes past the {n} vertices"),
            ));
        }
        Ok(Self {
            vertices,
            triangles,
        })
    }

    /// A cap of the ellipsoid with centre `centre` (m) and semi-axes `semi_axes` (m), facing −z
    /// (toward an array at z = 0): the points at polar angle α ≤ `cap_angle_rad` from the pole
    /// `centre − (0, 0, c)`, x = a·sin α·cos φ, y = b·sin α·sin φ, z = z_c − c·cos α. Meshed with
    /// `rings` rings of `segments` vertices around the pole. α_max = π/2 gives the whole front
    /// half. A smooth stand-in for any convex object (a face-sized one: semi-axes 75 × 100 ×
    /// 60 mm).
    pub fn ellipsoid_cap(
        centre: Point3<f64>,
        semi_axes: Vector3<f64>,
        cap_angle_rad: f64,
        rings: usize,
        segments: usize,
    ) -> Result<Self> {
        if !(semi_axes.iter().all(|a| a.is_finite() && *a > 0.0)) {
            return Err(RadarError::config(
                "ellipsoid cap",
                format!(
                    "semi-axes {:?} m must be finite and positive",
                    semi_axes.as_slice()
                ),
            ));
        }
        if !(cap_angle_rad > 0.0 && cap_angle_rad <= std::f64::consts::PI) {
            return Err(RadarError::config(
                "ellipsoid cap",
                format!("cap angle {cap_angle_rad} rad must lie in (0, π]"),
            ));
        }
        if rings == 0 || segments < 3 {
            return Err(RadarError::config(
                "ellipsoid cap",
                format!("{rings} rings of {segments} segments: need ≥ 1 ring of ≥ 3"),
            ));
        }
        let (a, b, c) = (semi_axes.x, semi_axes.y, semi_axes.z);
        let mut vertices = vec![centre - Vector3::new(0.0, 0.0, c)];
        for i in 1..=rings {
            let alpha = cap_angle_rad * i as f64 / rings as f64;
            for j in 0..segments {
                let phi = 2.0 * std::f64::consts::PI * j as f64 / segments as f64;
                vertices.push(
                    centre
                        + Vector3::new(
                            a * alpha.sin() * phi.cos(),
                            b * alpha.sin() * phi.sin(),
                            -c * alpha.cos(),
                        ),
                );
            }
        }
        let index = |ring: usize, j: usize| (1 + (ring - 1) * segments + j % segments) as u32;
        let mut triangles: Vec<[u32; 3]> = (0..segments)
            .map(|j| [0, index(1, j), index(1, j + 1)])
            .collect();
        for ring in 1..rings {
            for j in 0..segments {
                let (p, q) = (index(ring, j), index(ring, j + 1));
                let (r, s) = (index(ring + 1, j), index(ring + 1, j + 1));
                triangles.push([p, r, s]);
                triangles.push([p, s, q]);
            }
        }
        Self::new(vertices, triangles)
    }

    /// Vertex positions (m).
    pub fn vertices(&self) -> &[Point3<f64>] {
        &self.vertices
    }
    /// Triangles (vertex indices).
    pub fn triangles(&self) -> &[[u32; 3]] {
        &self.triangles
    }
    /// The corners of triangle `t` (m), or `None` past the end.
    pub fn corners(&self, t: usize) -> Option<[Point3<f64>; 3]> {
        let [a, b, c] = *self.triangles.get(t)?;
        Some([
            self.vertices[a as usize],
            self.vertices[b as usize],
            self.vertices[c as usize],
        ])
    }
    /// Total area of the non-degenerate triangles (m²).
    pub fn area_m2(&self) -> f64 {
        (0..self.triangles.len())
            .filter_map(|t| self.corners(t).and_then(Triangle::new))
            .map(|t| t.area)
            .sum()
    }
}

/// One non-degenerate triangle with its geometric (winding) unit normal and area.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Triangle {
    pub corners: [Point3<f64>; 3],
    pub normal: Vector3<f64>,
    pub area: f64,
    /// Where it came from: surface index << 32 | triangle index (0 outside a scene). The
    /// surface's random field is keyed on it, so it moves with the triangle.
    pub id: u64,
}

impl Triangle {
    /// `None` for a degenerate triangle: zero area relative to its edge lengths (collinear or
    /// repeated corners), whatever the units.
    pub fn new(corners: [Point3<f64>; 3]) -> Option<Self> {
        let [a, b, c] = corners;
        let (e1, e2) = (b - a, c - a);
        let cross = e1.cross(&e2);
        let twice_area = cross.norm();
        let scale = e1
            .norm_squared()
            .max(e2.norm_squared())
            .max((c - b).norm_squared());
        // |e1 × e2| ≤ |e1||e2|: a ratio below ~1e-12 is collinear to round-off.
        if !(twice_area.is_finite() && twice_area > 1e-12 * scale) {
            return None;
        }
        Some(Self {
            corners,
            normal: cross / twice_area,
            area: 0.5 * twice_area,
            id: 0,
        })
    }
}

impl Triangle {
    /// The point of the triangle for two uniform numbers in [0, 1): uniform over its area,
    /// (1 − √r1)·A + √r1·(1 − r2)·B + √r1·r2·C.
    pub fn point_at(&self, r1: f64, r2: f64) -> Point3<f64> {
        let w = Self::barycentric_at(r1, r2);
        let [a, b, c] = self.corners;
        Point3::from(a.coords * w.x + b.coords * w.y + c.coords * w.z)
    }

    /// The barycentric coordinates of [`Triangle::point_at`]`(r1, r2)`.
    pub fn barycentric_at(r1: f64, r2: f64) -> Vector3<f64> {
        let sqrt_r1 = r1.sqrt();
        Vector3::new(1.0 - sqrt_r1, sqrt_r1 * (1.0 - r2), sqrt_r1 * r2)
    }

    /// The unit normal turned toward `centre` as seen from `p` (n·(centre − p) ≥ 0): the
    /// simulator's convention, so that the winding does not matter.
    pub fn normal_toward(&self, centre: &Point3<f64>, p: &Point3<f64>) -> Vector3<f64> {
        if self.normal.dot(&(centre - p)) < 0.0 {
            -self.normal
        } else {
            self.normal
        }
    }
}

/// A point target (m) with a reflectivity σ (m², an equivalent area; any sign). It scatters
/// isotropically: its echo is σ·g(ω_i)·g(ω_o)/(d_t·d_r)·exp(−j2πf(d_t + d_r)/c), with g the
/// element pattern, and no material or normal factor. For calibration targets and tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointScatterer {
    position: Point3<f64>,
    reflectivity_m2: f64,
}

impl PointScatterer {
    /// A point at `position` (m) with reflectivity `reflectivity_m2` (m²). Both must be finite.
    pub fn new(position: Point3<f64>, reflectivity_m2: f64) -> Result<Self> {
        if !position.coords.iter().all(|c| c.is_finite()) {
            return Err(RadarError::config(
                "point scatterer",
                format!("non-finite position {:?} m", position.coords.as_slice()),
            ));
        }
        if !reflectivity_m2.is_finite() {
            return Err(RadarError::config(
                "point scatterer",
                format!("non-finite reflectivity {reflectivity_m2} m²"),
            ));
        }
        Ok(Self {
            position,
            reflectivity_m2,
        })
    }
    /// Position (m).
    pub fn position(&self) -> Point3<f64> {
        self.position
    }
    /// Reflectivity σ (m²).
    pub fn reflectivity_m2(&self) -> f64 {
        self.reflectivity_m2
    }
}

/// Everything in front of the array: any number of surfaces and point scatterers. Surfaces hide
/// what lies behind them (points included); points hide nothing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scene {
    surfaces: Vec<Surface>,
    points: Vec<PointScatterer>,
}

impl Scene {
    /// An empty scene.
    pub fn new() -> Self {
        Self::default()
    }
    /// A scene with one surface.
    pub fn from_surface(surface: Surface) -> Self {
        Self::new().with_surface(surface)
    }
    /// A scene of point scatterers.
    pub fn from_points(points: impl IntoIterator<Item = PointScatterer>) -> Self {
        Self {
            surfaces: Vec::new(),
            points: points.into_iter().collect(),
        }
    }
    /// Adds a surface.
    pub fn with_surface(mut self, surface: Surface) -> Self {
        self.surfaces.push(surface);
        self
    }
    /// Adds a point scatterer.
    pub fn with_point(mut self, point: PointScatterer) -> Self {
        self.points.push(point);
        self
    }
    /// The surfaces.
    pub fn surfaces(&self) -> &[Surface] {
        &self.surfaces
    }
    /// The point scatterers.
    pub fn points(&self) -> &[PointScatterer] {
        &self.points
    }

    /// Every position in the scene, tagged with where it came from (for error messages).
    fn positions(&self) -> impl Iterator<Item = (String, Point3<f64>)> + '_ {
        let vertices = self.surfaces.iter().enumerate().flat_map(|(s, surface)| {
            surface
                .vertices
                .iter()
                .enumerate()
                .map(move |(v, p)| (format!("vertex {v} of surface {s}"), *p))
        });
        let points = (self.points.iter().enumerate())
            .map(|(i, p)| (format!("point scatterer {i}"), p.position));
        vertices.chain(points)
    }

    /// Checks that the whole scene lies in front of the array: z above `min_z` (m), the largest
    /// z of any array element. Visibility and the element pattern assume it.
    pub(crate) fn check_in_front(&self, min_z: f64) -> Result<()> {
        match self.positions().find(|(_, p)| p.z <= min_z) {
            None => Ok(()),
            Some((what, p)) => Err(RadarError::config(
                "scene",
                format!(
                    "{what} at z = {} m is not in front of the array (every point needs z > {min_z} m)",
                    p.z
                ),
            )),
        }
    }

    /// The non-degenerate triangles of every surface, in order, and the number of degenerate
    /// ones skipped.
    pub(crate) fn triangles(&self) -> (Vec<Triangle>, usize) {
        let mut degenerate = 0;
        let mut out = Vec::new();
        for (s, surface) in self.surfaces.iter().enumerate() {
            for t in 0..surface.triangles.len() {
                match surface.corners(t).and_then(Triangle::new) {
                    Some(tri) => out.push(Triangle {
                        id: ((s as u64) << 32) | t as u64,
                        ..tri
                    }),
                    None => degenerate += 1,
                }
            }
        }
        (out, degenerate)
    }
}
