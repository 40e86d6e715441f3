//! Visibility from the array centre (docs/physics.md §3): a point is hidden when the segment from it
//! to the array centre crosses a triangle of the scene.
//!
//! Testing from the centre rather than from every TX and RX is the accepted approximation: the
//! aperture (±7 cm) is small against the distance (≥ 25 cm), so what hides a point from the
//! centre hides it from (almost) every element.
//!
//! The search is exact, accelerated by a grid in the gnomonic projection from the centre
//! ((x − c_x)/(z − c_z), (y − c_y)/(z − c_z)): the segment from a point to the centre projects to
//! a single point, so only triangles whose projected bounding box covers it can cross it.

use nalgebra::{Point3, Vector2};

use crate::scene::Triangle;

/// Segment parameters below this (a fraction of the way to the centre) count as the starting
/// surface itself, not an occluder.
const SELF_EPSILON: f64 = 1e-9;

/// The triangles of a scene binned by their projection from the array centre.
pub(crate) struct Occluders<'a> {
    triangles: &'a [Triangle],
    centre: Point3<f64>,
    min: Vector2<f64>,
    cell: Vector2<f64>,
    cells_per_side: usize,
    /// CSR layout: the triangles of cell `k` are `members[starts[k]..starts[k + 1]]`.
    starts: Vec<usize>,
    members: Vec<u32>,
}

impl<'a> Occluders<'a> {
    /// Bins `triangles` (all with z > centre.z, checked by the caller).
    pub fn new(triangles: &'a [Triangle], centre: Point3<f64>) -> Self {
        let project = |p: &Point3<f64>| {
            let d = p - centre;
            Vector2::new(d.x / d.z, d.y / d.z)
        };
        let boxes: Vec<(Vector2<f64>, Vector2<f64>)> = triangles
            .iter()
            .map(|t| {
                let q = t.corners.map(|c| project(&c));
                (q[0].inf(&q[1]).inf(&q[2]), q[0].sup(&q[1]).sup(&q[2]))
            })
            .collect();
        let (mut min, mut max) = (
            Vector2::repeat(f64::INFINITY),
            Vector2::repeat(f64::NEG_INFINITY),
        );
        for (lo, hi) in &boxes {
            min = min.inf(lo);
            max = max.sup(hi);
        }
        // About one triangle per cell on a regular mesh; at most 1024² cells.
        let cells_per_side = ((triangles.len() as f64).sqrt().ceil() as usize).clamp(1, 1024);
        let extent = (max - min).map(|e| if e > 0.0 { e } else { 1.0 });
        let cell = extent / cells_per_side as f64;
        let mut occluders = Self {
            triangles,
            centre,
            min,
            cell,
            cells_per_side,
            starts: Vec::new(),
            members: Vec::new(),
        };
        if triangles.is_empty() {
            return occluders;
        }
        let ranges: Vec<_> = boxes
            .iter()
            .map(|(lo, hi)| (occluders.cell_of(lo), occluders.cell_of(hi)))
            .collect();
        let n_cells = cells_per_side * cells_per_side;
        let mut counts = vec![0usize; n_cells + 1];
        for ((x0, y0), (x1, y1)) in &ranges {
            for y in *y0..=*y1 {
                for x in *x0..=*x1 {
                    counts[y * cells_per_side + x + 1] += 1;
                }
            }
        }
        for k in 0..n_cells {
            counts[k + 1] += counts[k];
        }
        let mut fill = counts.clone();
        let mut members = vec![0u32; counts[n_cells]];
        for (t, ((x0, y0), (x1, y1))) in ranges.iter().enumerate() {
            for y in *y0..=*y1 {
                for x in *x0..=*x1 {
                    let k = y * cells_per_side + x;
                    members[fill[k]] = t as u32;
                    fill[k] += 1;
                }
            }
        }
        occluders.starts = counts;
        occluders.members = members;
        occluders
    }

    /// The (clamped) cell of a projected point.
    fn cell_of(&self, q: &Vector2<f64>) -> (usize, usize) {
        let last = self.cells_per_side - 1;
        let index =
            |v: f64, lo: f64, size: f64| (((v - lo) / size).floor().max(0.0) as usize).min(last);
        (
            index(q.x, self.min.x, self.cell.x),
            index(q.y, self.min.y, self.cell.y),
        )
    }

    /// Whether the segment from `p` to the array centre is free of every triangle except
    /// `own` (the triangle `p` was sampled on, if any).
    pub fn is_visible(&self, p: &Point3<f64>, own: Option<usize>) -> bool {
        if self.starts.is_empty() {
            return true;
        }
        let d = p - self.centre;
        let q = Vector2::new(d.x / d.z, d.y / d.z);
        let outside = (q - self.min).iter().any(|&v| v < 0.0)
            || (q - self.min - self.cell * self.cells_per_side as f64)
                .iter()
                .any(|&v| v > 0.0);
        if outside {
            return true;
        }
        let (x, y) = self.cell_of(&q);
        let k = y * self.cells_per_side + x;
        !self.members[self.starts[k]..self.starts[k + 1]]
            .iter()
            .map(|&t| t as usize)
            .filter(|&t| Some(t) != own)
            .any(|t| segment_hits(p, &self.centre, &self.triangles[t]))
    }
}

/// Möller–Trumbore: does the segment from `from` to `to` cross the triangle at a parameter in
/// (ε, 1]?
fn segment_hits(from: &Point3<f64>, to: &Point3<f64>, tri: &Triangle) -> bool {
    let [a, b, c] = tri.corners;
    let dir = to - from;
    let (e1, e2) = (b - a, c - a);
    let p = dir.cross(&e2);
    let det = e1.dot(&p);
    // Parallel to the plane (to round-off): no crossing.
    if det.abs() <= 1e-15 * e1.norm() * e2.norm() * dir.norm() {
        return false;
    }
    let inv = 1.0 / det;
    let s = from - a;
    let u = s.dot(&p) * inv;
    if !(0.0..=1.0).contains(&u) {
        return false;
    }
    let q = s.cross(&e1);
    let v = dir.dot(&q) * inv;
    if v < 0.0 || u + v > 1.0 {
        return false;
    }
    let t = e2.dot(&q) * inv;
    t > SELF_EPSILON && t <= 1.0
}
