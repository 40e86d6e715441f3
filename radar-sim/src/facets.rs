//! The converged surface model of docs/physics.md §3.4: planar facets for the coherent
//! (specular) part, the diffuse random field of the surface, and the taper at a surface's open
//! boundary.

use std::collections::HashMap;

use nalgebra::{Point3, Vector3};
use num_complex::Complex64;
use rand::Rng;
use rand_distr::{Distribution, Poisson, StandardNormal};
use rayon::prelude::*;

use crate::hits::{Stream, rng};
use crate::scene::Triangle;
use crate::visibility::Occluders;
use crate::{ConvergedSurface, Hit, Scene};

/// One planar facet of the coherent surface integral: a triangle small enough that the phase
/// is linear across it (docs/physics.md §3.4). Its integral is evaluated in closed form.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Facet {
    /// The centroid P_0 (m): where the amplitude and the path are evaluated.
    pub centroid: Point3<f64>,
    /// Unit normal, turned toward the array centre.
    pub normal: Vector3<f64>,
    /// Area times the boundary taper (m²).
    pub weight_m2: f64,
    /// Corners 0 and 1 relative to the centroid, ρ_0 and ρ_1 (m); corner 2 is −ρ_0 − ρ_1.
    pub offsets: [Vector3<f64>; 2],
}

/// The taper of the coherent part at the surfaces' open boundaries (docs/physics.md §3.4):
/// weight sin²(π/2 · min(d/W, 1)) at a point d from the nearest open-boundary edge of its
/// surface (an edge of exactly one non-degenerate triangle). 1 everywhere when W = 0 or a
/// surface is closed.
pub(crate) struct Taper {
    width_m: f64,
    /// Per surface, its open-boundary edges, in a fixed order.
    boundaries: Vec<Vec<(Point3<f64>, Point3<f64>)>>,
}

impl Taper {
    pub fn new(scene: &Scene, triangles: &[Triangle], width_m: f64) -> Self {
        let mut boundaries = Vec::new();
        if width_m > 0.0 {
            for (s, surface) in scene.surfaces().iter().enumerate() {
                let mut edges: HashMap<(u32, u32), u32> = HashMap::new();
                for t in triangles.iter().filter(|t| (t.id >> 32) as usize == s) {
                    let [a, b, c] = surface.triangles()[(t.id & 0xffff_ffff) as usize];
                    for (p, q) in [(a, b), (b, c), (c, a)] {
                        *edges.entry((p.min(q), p.max(q))).or_default() += 1;
                    }
                }
                let mut open: Vec<(u32, u32)> = (edges.into_iter())
                    .filter(|(_, n)| *n == 1)
                    .map(|(e, _)| e)
                    .collect();
                // A fixed order: the result must not depend on the hash map's.
                open.sort_unstable();
                let v = surface.vertices();
                boundaries.push(
                    (open.into_iter())
                        .map(|(p, q)| (v[p as usize], v[q as usize]))
                        .collect(),
                );
            }
        }
        Self {
            width_m,
            boundaries,
        }
    }

    /// The weight at point `p` of triangle `triangle`.
    pub fn at(&self, triangle: &Triangle, p: &Point3<f64>) -> f64 {
        let Some(edges) = self.boundaries.get((triangle.id >> 32) as usize) else {
            return 1.0;
        };
        let w = self.width_m;
        // Only edges whose bounding box, grown by W, holds p can be nearer than W.
        let near = |(a, b): &&(Point3<f64>, Point3<f64>)| {
            (0..3).all(|i| p[i] >= a[i].min(b[i]) - w && p[i] <= a[i].max(b[i]) + w)
        };
        let d = (edges.iter().filter(near))
            .map(|(a, b)| segment_distance(p, a, b))
            .fold(f64::INFINITY, f64::min);
        if d >= w {
            return 1.0;
        }
        (std::f64::consts::FRAC_PI_2 * d / w).sin().powi(2)
    }
}

/// The distance from `v` to the segment p–q (m).
fn segment_distance(v: &Point3<f64>, p: &Point3<f64>, q: &Point3<f64>) -> f64 {
    let e = q - p;
    let len_sq = e.norm_squared();
    let t = if len_sq > 0.0 {
        ((v - p).dot(&e) / len_sq).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (v - (p + e * t)).norm()
}

/// The array's aperture as the facet sampling sees it: the bounding rectangle of the elements
/// in the array plane, and the smallest lobe angle that still counts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Aperture {
    pub low: [f64; 2],
    pub high: [f64; 2],
    pub z: f64,
    /// Facets whose normal is farther than this from every direction toward the aperture
    /// (rad) are left out: the lobe there is below [`LOBE_FLOOR`].
    pub cut_rad: f64,
}

/// The smallest specular lobe factor cos^{n_s}θ_H that the facet sampling keeps.
pub(crate) const LOBE_FLOOR: f64 = 1e-3;

impl Aperture {
    /// The angle beyond which the lobe cos^{n_s} θ falls below [`LOBE_FLOOR`] (π/2 for
    /// n_s = 0).
    pub fn lobe_cut_rad(exponent: f64) -> f64 {
        if exponent <= 0.0 {
            std::f64::consts::FRAC_PI_2
        } else {
            LOBE_FLOOR.powf(1.0 / exponent).acos()
        }
    }

    /// Whether a facet at `p` with normal `n` (turned toward the array) may see a lobe above
    /// the floor: the smallest angle between `n` and the directions toward a 9 × 9 grid over
    /// the aperture, less the grid's angular step, is within the cut.
    fn sees(&self, p: &Point3<f64>, n: &Vector3<f64>) -> bool {
        const GRID: usize = 9;
        let height = (p.z - self.z).abs().max(1e-6);
        let step = ((self.high[0] - self.low[0]).powi(2) + (self.high[1] - self.low[1]).powi(2))
            .sqrt()
            / (GRID - 1) as f64;
        let margin = (step / height).atan();
        let mut best = -1.0f64;
        for i in 0..GRID {
            for j in 0..GRID {
                let x = self.low[0] + (self.high[0] - self.low[0]) * i as f64 / (GRID - 1) as f64;
                let y = self.low[1] + (self.high[1] - self.low[1]) * j as f64 / (GRID - 1) as f64;
                let d = Point3::new(x, y, self.z) - p;
                best = best.max(n.dot(&d) / d.norm());
            }
        }
        best.clamp(-1.0, 1.0).acos() - margin <= self.cut_rad
    }
}

/// Where a source of the converged model came from (docs/physics.md §3.6): its triangle, the
/// barycentric coordinates of its points in that triangle, whether its normal is the
/// triangle's winding normal turned around, and (facets) its taper factor. Enough to rebuild
/// the source from moved vertices with every discrete choice held, and to carry gradients
/// back to the vertices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Origin {
    /// Index into the scene's non-degenerate triangles ([`Scene::triangles`]).
    pub triangle: usize,
    /// Barycentric coordinates of the facet's three corners, or of the cell in row 0.
    pub barycentric: [Vector3<f64>; 3],
    /// Whether the normal is −(the winding normal).
    pub flipped: bool,
    /// The boundary taper factor of a facet (1 for a cell).
    pub taper: f64,
}

/// The visible facets of `triangles` (each split in four until its longest edge is at most
/// `max_edge_m`) that may see a lobe above the floor from `aperture`, weighted by the `taper`
/// (if any) at their centroids, their origins, and how many were hidden.
pub(crate) fn facets(
    triangles: &[Triangle],
    taper: Option<&Taper>,
    max_edge_m: f64,
    aperture: &Aperture,
    occluders: &Occluders,
    centre: Point3<f64>,
) -> (Vec<Facet>, Vec<Origin>, usize) {
    let per_triangle: Vec<(Vec<(Facet, Origin)>, usize)> = (triangles.par_iter())
        .enumerate()
        .map(|(i, t)| {
            let mut out = Vec::new();
            let mut hidden = 0;
            let mid = Point3::from(
                (t.corners[0].coords + t.corners[1].coords + t.corners[2].coords) / 3.0,
            );
            if !aperture.sees(&mid, &t.normal_toward(&centre, &mid)) {
                return (out, hidden);
            }
            let unit = [Vector3::x(), Vector3::y(), Vector3::z()];
            split(t.corners, unit, max_edge_m, &mut |corners, barycentric| {
                let centroid =
                    Point3::from((corners[0].coords + corners[1].coords + corners[2].coords) / 3.0);
                if !occluders.is_visible(&centroid, Some(i)) {
                    hidden += 1;
                    return;
                }
                let weight = taper.map_or(1.0, |taper| taper.at(t, &centroid));
                if weight == 0.0 {
                    return;
                }
                let normal = t.normal_toward(&centre, &centroid);
                let facet = Facet::from_corners(corners, normal, weight);
                let origin = Origin {
                    triangle: i,
                    barycentric,
                    flipped: normal != t.normal,
                    taper: weight,
                };
                out.push((facet, origin));
            });
            (out, hidden)
        })
        .collect();
    let hidden = per_triangle.iter().map(|(_, h)| h).sum();
    let (facets, origins) = per_triangle.into_iter().flat_map(|(f, _)| f).unzip();
    (facets, origins, hidden)
}

impl Facet {
    /// The facet with corners `corners`, unit normal `normal` and taper factor `taper`.
    pub(crate) fn from_corners(
        corners: [Point3<f64>; 3],
        normal: Vector3<f64>,
        taper: f64,
    ) -> Self {
        let centroid =
            Point3::from((corners[0].coords + corners[1].coords + corners[2].coords) / 3.0);
        let area = 0.5
            * (corners[1] - corners[0])
                .cross(&(corners[2] - corners[0]))
                .norm();
        Facet {
            centroid,
            normal,
            weight_m2: area * taper,
            offsets: [corners[0] - centroid, corners[1] - centroid],
        }
    }
}

/// Calls `emit` on the pieces of a triangle split in four (at its edge midpoints) until every
/// edge is at most `max_edge_m`, with each piece's corners in barycentric coordinates of the
/// whole (`barycentric`: the corners' own, the unit vectors at the start).
fn split(
    corners: [Point3<f64>; 3],
    barycentric: [Vector3<f64>; 3],
    max_edge_m: f64,
    emit: &mut impl FnMut([Point3<f64>; 3], [Vector3<f64>; 3]),
) {
    let [a, b, c] = corners;
    let longest = (b - a).norm().max((c - b).norm()).max((a - c).norm());
    if longest <= max_edge_m {
        emit(corners, barycentric);
        return;
    }
    let mid = |p: Point3<f64>, q: Point3<f64>| Point3::from((p.coords + q.coords) / 2.0);
    let (ab, bc, ca) = (mid(a, b), mid(b, c), mid(c, a));
    let [ba, bb, bcc] = barycentric;
    let (bab, bbc, bca) = ((ba + bb) / 2.0, (bb + bcc) / 2.0, (bcc + ba) / 2.0);
    for (piece, weights) in [
        ([a, ab, ca], [ba, bab, bca]),
        ([ab, b, bc], [bab, bb, bbc]),
        ([ca, bc, c], [bca, bbc, bcc]),
        ([ab, bc, ca], [bab, bbc, bca]),
    ] {
        split(piece, weights, max_edge_m, emit);
    }
}

/// The weight (m²) of one diffuse cell: ℓ·√A_eq, A_eq = ((n_s + 1)/2)²·λ_c²/π, so that the
/// expected diffuse power, area·A_eq·((1 − m)/π)², stands to the coherent return of a flat
/// patch, (area·m·(n_s + 1)/(2π))², as Lambert's σ⁰ = 4·cos θ_i·cos θ_o stands to physical
/// optics' σ = 4π·area²/λ² at equal albedo (docs/physics.md §3.4). It does not depend on ℓ.
pub(crate) fn diffuse_cell_weight(
    correlation_length_m: f64,
    exponent: f64,
    wavelength_m: f64,
) -> f64 {
    let equivalent_area =
        ((exponent + 1.0) / 2.0).powi(2) * wavelength_m.powi(2) / std::f64::consts::PI;
    correlation_length_m * equivalent_area.sqrt()
}

/// The number of facets `triangles` split into (before visibility), for the memory estimate.
pub(crate) fn facet_count(triangles: &[Triangle], max_edge_m: f64) -> f64 {
    (triangles.iter())
        .map(|t| {
            let [a, b, c] = t.corners;
            let longest = (b - a).norm().max((c - b).norm()).max((a - c).norm());
            // Each level halves the edges and quadruples the pieces.
            let levels = (longest / max_edge_m).log2().ceil().max(0.0);
            4f64.powf(levels)
        })
        .sum()
}

/// The diffuse random field of the surfaces (docs/physics.md §3.4): on each triangle a Poisson
/// number of cells (mean area/ℓ²), each at a uniform random point, displaced by δ ~ N(0, σ_h)
/// along the normal and weighing `cell_weight_m2`. Drawn from the surface seed and the
/// triangle's identity alone, so the field moves with its triangle. Returns the visible cells
/// and how many were hidden.
pub(crate) fn diffuse_cells(
    triangles: &[Triangle],
    surface: &ConvergedSurface,
    surface_seed: u64,
    cell_weight_m2: f64,
    occluders: &Occluders,
    centre: Point3<f64>,
) -> (Vec<Hit>, Vec<Origin>, usize) {
    let cell_area = surface.correlation_length_m.powi(2);
    let per_triangle: Vec<(Vec<(Hit, Origin)>, usize)> = triangles
        .par_iter()
        .enumerate()
        .map(|(i, t)| {
            let mut rng = rng(surface_seed, Stream::Diffuse, t.id);
            let mean = t.area / cell_area;
            let count = match Poisson::new(mean) {
                Ok(poisson) => poisson.sample(&mut rng) as usize,
                Err(_) => 0,
            };
            let mut out = Vec::with_capacity(count);
            let mut hidden = 0;
            for _ in 0..count {
                let (r1, r2): (f64, f64) = (rng.random(), rng.random());
                let height: f64 = rng.sample(StandardNormal);
                let position = t.point_at(r1, r2);
                if !occluders.is_visible(&position, Some(i)) {
                    hidden += 1;
                    continue;
                }
                let normal = t.normal_toward(&centre, &position);
                let hit = Hit {
                    position,
                    normal,
                    area_m2: cell_weight_m2,
                    roughness_m: surface.height_spread_m * height,
                };
                let origin = Origin {
                    triangle: i,
                    barycentric: [
                        Triangle::barycentric_at(r1, r2),
                        Vector3::zeros(),
                        Vector3::zeros(),
                    ],
                    flipped: normal != t.normal,
                    taper: 1.0,
                };
                out.push((hit, origin));
            }
            (out, hidden)
        })
        .collect();
    let hidden = per_triangle.iter().map(|(_, h)| h).sum();
    let (cells, origins) = per_triangle.into_iter().flat_map(|(c, _)| c).unzip();
    (cells, origins, hidden)
}

/// The normalised facet integral F = (1/A)∫_T exp(j·k·q·ρ) dA over a triangle with the phase
/// linear across it, given u_i = k·q·ρ_i at its corners (ρ relative to the centroid, so
/// Σu_i = 0): F = 2·Σ_m j^m·h_m(u)/(m + 2)!, h_m the complete homogeneous symmetric
/// polynomials, by h_m = −e_2·h_{m−2} + e_3·h_{m−3} (e_1 = 0). Stable for every u, exact up to
/// the truncation, which stops when the term bound r^m/m! (r = max|u_i|) falls below 1e-16.
/// 1 at u = 0. The f64 reference of the fast kernel's f32 version.
pub(crate) fn facet_integral(u: [f64; 3]) -> num_complex::Complex64 {
    let e2 = u[0] * u[1] + u[0] * u[2] + u[1] * u[2];
    let e3 = u[0] * u[1] * u[2];
    let r = u.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let (mut h, mut factorial) = ([0.0f64, 0.0, 1.0], 2.0f64); // h_{m−3}, h_{m−2}, h_{m−1}
    let mut sum = num_complex::Complex64::new(1.0, 0.0); // m = 0: 2·h_0/2!
    let mut bound = 1.0f64;
    for m in 1..200 {
        let h_m = -e2 * h[1] + e3 * h[0];
        factorial *= (m + 2) as f64;
        let term = 2.0 * h_m / factorial;
        sum += match m % 4 {
            0 => num_complex::Complex64::new(term, 0.0),
            1 => num_complex::Complex64::new(0.0, term),
            2 => num_complex::Complex64::new(-term, 0.0),
            _ => num_complex::Complex64::new(0.0, -term),
        };
        h = [h[1], h[2], h_m];
        bound *= r / m as f64;
        if bound < 1e-16 && m > 2 {
            break;
        }
    }
    sum
}

/// [`facet_integral`] and its partial derivatives ∂F/∂u_i (docs/physics.md §3.6). With F the
/// mean of exp(j·λ·u) over the triangle (λ barycentric, uniform), ∂F/∂u_i = j·E[λ_i·exp(j·λ·u)]
/// = 2j·Σ_m j^m·H_m^{(i)}/(m + 3)!, where H_m^{(i)} = h_m(u_0, u_1, u_2, u_i) (u_i counted
/// twice) = h_m(u) + u_i·H_{m−1}^{(i)}. Same truncation as [`facet_integral`], two terms later.
pub(crate) fn facet_integral_gradient(u: [f64; 3]) -> (Complex64, [Complex64; 3]) {
    let e2 = u[0] * u[1] + u[0] * u[2] + u[1] * u[2];
    let e3 = u[0] * u[1] * u[2];
    let r = u.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let power = |m: usize, x: f64| match m % 4 {
        0 => Complex64::new(x, 0.0),
        1 => Complex64::new(0.0, x),
        2 => Complex64::new(-x, 0.0),
        _ => Complex64::new(0.0, -x),
    };
    let mut h = [0.0f64, 0.0, 1.0]; // h_{m−3}, h_{m−2}, h_{m−1}
    let mut big_h = [1.0f64; 3]; // H_{m−1}^{(i)}
    let mut f = Complex64::new(1.0, 0.0);
    // ∂F/∂u_i / (2j), m = 0: 1/3!.
    let mut g = [Complex64::new(1.0 / 6.0, 0.0); 3];
    let (mut factorial, mut bound) = (6.0f64, 1.0f64); // (m + 3)!, r^m/m!
    for m in 1..200 {
        let h_m = -e2 * h[1] + e3 * h[0];
        f += power(m, 2.0 * h_m / factorial); // 2·h_m/(m + 2)!
        factorial *= (m + 3) as f64;
        for i in 0..3 {
            big_h[i] = h_m + u[i] * big_h[i];
            g[i] += power(m, big_h[i] / factorial);
        }
        h = [h[1], h[2], h_m];
        bound *= r / m as f64;
        if bound < 1e-18 && m > 4 {
            break;
        }
    }
    (f, g.map(|g| Complex64::new(0.0, 2.0) * g))
}

#[cfg(test)]
mod tests {
    use num_complex::Complex64;
    use proptest::prelude::*;

    use super::{facet_integral, facet_integral_gradient};

    /// (1/A)∫_T exp(j·Σλ_i·u_i) dA by a midpoint rule on an n × n barycentric grid (n² small
    /// triangles, each at its centroid).
    fn quadrature(u: [f64; 3], n: usize) -> Complex64 {
        let mut sum = Complex64::new(0.0, 0.0);
        let h = 1.0 / n as f64;
        for i in 0..n {
            for j in 0..n - i {
                // Upright triangle (i, j), and the inverted one beside it.
                let mut add = |a: f64, b: f64| {
                    let c = 1.0 - a - b;
                    sum += Complex64::from_polar(1.0, a * u[0] + b * u[1] + c * u[2]);
                };
                add((i as f64 + 1.0 / 3.0) * h, (j as f64 + 1.0 / 3.0) * h);
                if i + j + 1 < n {
                    add((i as f64 + 2.0 / 3.0) * h, (j as f64 + 2.0 / 3.0) * h);
                }
            }
        }
        sum / (n * n) as f64
    }

    /// The divided-difference closed form, for well-separated u: F = −2·Σ_i e^{ju_i}/Π_{j≠i}(u_i − u_j).
    fn closed_form(u: [f64; 3]) -> Complex64 {
        (0..3)
            .map(|i| {
                let others: f64 = (0..3).filter(|&j| j != i).map(|j| u[i] - u[j]).product();
                -2.0 * Complex64::from_polar(1.0, u[i]) / others
            })
            .sum()
    }

    #[test]
    fn a_facet_without_phase_spread_integrates_to_one() {
        assert_eq!(facet_integral([0.0, 0.0, 0.0]), Complex64::new(1.0, 0.0));
    }

    proptest! {
        #[test]
        fn the_series_matches_the_closed_form_and_the_quadrature(
            a in -8.0f64..8.0,
            b in -8.0f64..8.0,
        ) {
            // Corners relative to the centroid: Σu = 0.
            let u = [a, b, -a - b].map(|x| x / 1.5);
            let series = facet_integral(u);
            let numeric = quadrature(u, 300);
            // Midpoint error ~ (r/n)²: below 1e-3 for r ≤ 11.
            prop_assert!((series - numeric).norm() < 2e-3, "{series} vs {numeric}");
            let gaps = [(u[0] - u[1]).abs(), (u[1] - u[2]).abs(), (u[0] - u[2]).abs()];
            if gaps.iter().all(|g| *g > 0.5) {
                let exact = closed_form(u);
                prop_assert!((series - exact).norm() < 1e-9, "{series} vs {exact}");
            }
        }
    }

    proptest! {
        /// The derivatives match central differences along directions that keep Σu = 0, and
        /// Σ_i ∂F/∂u_i = j·F (shifting every u_i by c multiplies F by e^{jc}).
        #[test]
        fn the_gradient_matches_central_differences(
            a in -8.0f64..8.0,
            b in -8.0f64..8.0,
            da in -1.0f64..1.0,
            db in -1.0f64..1.0,
        ) {
            let u = [a, b, -a - b];
            // The series sums terms as large as r^m/m! (r = max|u_i|, up to 16 here) to a
            // value of order 1: its rounding error grows like ε·e^r (1.3e-12 at r = 15.8).
            let rounding = 1e-14 * u.iter().fold(0.0f64, |m, x| m.max(x.abs())).exp();
            let (f, g) = facet_integral_gradient(u);
            prop_assert!((f - facet_integral(u)).norm() < rounding, "{f}");
            let d = [da, db, -da - db];
            let h = 1e-5;
            let at = |s: f64| facet_integral([0, 1, 2].map(|i| u[i] + s * d[i]));
            let numeric = (at(h) - at(-h)) / (2.0 * h);
            let analytic: Complex64 = (0..3).map(|i| g[i] * d[i]).sum();
            prop_assert!((numeric - analytic).norm() < 1e-7, "{numeric} vs {analytic}");
            let shift: Complex64 = g.iter().sum();
            let error = (shift - Complex64::new(0.0, 1.0) * f).norm();
            prop_assert!(error < rounding, "Σ∂F/∂u_i = {shift}, off by {error:e}");
        }
    }
}
