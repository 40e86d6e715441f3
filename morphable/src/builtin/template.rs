//! The template face: a mirror-symmetric height field z(x, y) over an egg-shaped outline,
//! sampled on a square grid and triangulated.
//!
//! Model space, millimetres: y up, nose toward +z, x toward the subject's left (a viewer on +z
//! sees +x on their right), the symmetry plane is x = 0. The proportions follow an adult face:
//! about 150 mm wide and 200 mm from chin to hairline, the nose tip at y ≈ 0 standing ~30 mm in
//! front of the cheeks, eyes 64 mm apart at y ≈ 33, the mouth at y ≈ −34, the chin at y ≈ −68.
//!
//! Mirror symmetry is exact in floating point: grid columns sit at x = i·h for integer i, and
//! every term of the height field reads x only through x², |x| or a sum g(x − c) + g(x + c), all
//! of which give bit-identical results for x and −x.

use nalgebra::Point3;

use crate::{MorphableError, Result};

/// Half-width scale of the outline at its centre line (mm).
const OUTLINE_HALF_WIDTH: f64 = 74.0;
/// Half-height of the outline (mm).
const OUTLINE_HALF_HEIGHT: f64 = 100.0;
/// y of the outline's centre (mm): the face spans y ∈ [−104, 96].
const OUTLINE_CENTRE_Y: f64 = -4.0;
/// Egg factor: the outline is wider at the forehead than at the chin.
const OUTLINE_EGG: f64 = 0.18;
/// z of the face plane at the centre, before any feature (mm).
const FACE_PLANE_Z: f64 = 104.0;

/// y of the nasion, where the nose ridge starts (mm).
const NASION_Y: f64 = 40.0;
/// y of the nose tip (mm).
const NOSE_TIP_Y: f64 = 2.0;
/// Height of the nose tip above the surrounding face (mm).
const NOSE_TIP_HEIGHT: f64 = 22.0;
/// Height of the nose ridge at the nasion (mm).
const NOSE_ROOT_HEIGHT: f64 = 2.0;
/// Length scale (mm) over which the nose's underside falls from the tip to the upper lip.
const NOSE_UNDERSIDE: f64 = 10.0;
/// Softening of the nose tip, as a fraction of the ridge length.
const NOSE_TIP_ROUNDING: f64 = 0.15;

/// Eye centres sit at x = ±EYE_X, y = EYE_Y (mm): 64 mm apart.
pub(crate) const EYE_X: f64 = 32.0;
/// Height of the eye centres (mm).
pub(crate) const EYE_Y: f64 = 33.0;
/// Height of the mouth line (mm).
pub(crate) const MOUTH_Y: f64 = -34.0;
/// Half-width of the mouth: the mouth corners sit at x = ±MOUTH_HALF_WIDTH (mm).
pub(crate) const MOUTH_HALF_WIDTH: f64 = 24.0;
/// Height of the chin's most prominent point (mm).
pub(crate) const CHIN_Y: f64 = -68.0;

/// A smooth bump added to (or, with a negative amplitude, carved from) the height field:
/// a·exp(−|(x − c_x)/σ_x|^p − ((y − c_y)/σ_y)²), mirrored to x = −c_x too when bilateral.
struct Bump {
    centre: [f64; 2],
    sigma: [f64; 2],
    /// Exponent p of the x profile: 2 is a Gaussian, 4 a flat-topped bump with sharp ends.
    x_power: i32,
    amplitude: f64,
    bilateral: bool,
}

impl Bump {
    fn at(&self, x: f64, y: f64) -> f64 {
        let [cx, cy] = self.centre;
        let [sx, sy] = self.sigma;
        let dy = ((y - cy) / sy).powi(2);
        let profile = |dx: f64| (-(dx / sx).powi(self.x_power) - dy).exp();
        // g(x − c) + g(x + c) is bit-identical for x and −x (IEEE addition commutes).
        let value = if self.bilateral {
            profile(x - cx) + profile(x + cx)
        } else {
            profile(x - cx)
        };
        self.amplitude * value
    }
}

/// Local features of the face, over the base surface and the nose (mm).
const FEATURES: [Bump; 14] = [
    // Muzzle: the tooth arches push the mouth region forward.
    Bump {
        centre: [0.0, -38.0],
        sigma: [30.0, 28.0],
        x_power: 2,
        amplitude: 12.0,
        bilateral: false,
    },
    // Nose tip lobule.
    Bump {
        centre: [0.0, NOSE_TIP_Y],
        sigma: [8.0, 7.0],
        x_power: 2,
        amplitude: 5.0,
        bilateral: false,
    },
    // Nose wings (alae).
    Bump {
        centre: [13.0, -5.0],
        sigma: [6.0, 6.0],
        x_power: 2,
        amplitude: 8.0,
        bilateral: true,
    },
    // Brow ridges.
    Bump {
        centre: [28.0, 48.0],
        sigma: [20.0, 7.0],
        x_power: 2,
        amplitude: 4.0,
        bilateral: true,
    },
    // Glabella.
    Bump {
        centre: [0.0, 47.0],
        sigma: [12.0, 8.0],
        x_power: 2,
        amplitude: 2.0,
        bilateral: false,
    },
    // Eye sockets.
    Bump {
        centre: [EYE_X, EYE_Y],
        sigma: [16.0, 11.0],
        x_power: 2,
        amplitude: -13.0,
        bilateral: true,
    },
    // Eyeballs and lids.
    Bump {
        centre: [EYE_X, EYE_Y - 1.0],
        sigma: [12.0, 6.0],
        x_power: 2,
        amplitude: 6.0,
        bilateral: true,
    },
    // Cheekbones.
    Bump {
        centre: [45.0, 12.0],
        sigma: [17.0, 13.0],
        x_power: 2,
        amplitude: 5.0,
        bilateral: true,
    },
    // Upper lip.
    Bump {
        centre: [0.0, MOUTH_Y + 6.0],
        sigma: [MOUTH_HALF_WIDTH - 3.0, 5.0],
        x_power: 4,
        amplitude: 4.0,
        bilateral: false,
    },
    // Lower lip.
    Bump {
        centre: [0.0, MOUTH_Y - 7.0],
        sigma: [MOUTH_HALF_WIDTH - 6.0, 5.5],
        x_power: 4,
        amplitude: 4.0,
        bilateral: false,
    },
    // Mouth line.
    Bump {
        centre: [0.0, MOUTH_Y],
        sigma: [MOUTH_HALF_WIDTH + 1.0, 2.5],
        x_power: 4,
        amplitude: -2.5,
        bilateral: false,
    },
    // Philtrum.
    Bump {
        centre: [0.0, -19.0],
        sigma: [5.0, 6.0],
        x_power: 2,
        amplitude: -2.0,
        bilateral: false,
    },
    // Chin.
    Bump {
        centre: [0.0, CHIN_Y],
        sigma: [20.0, 12.0],
        x_power: 2,
        amplitude: 4.0,
        bilateral: false,
    },
    // Mentolabial fold.
    Bump {
        centre: [0.0, -55.0],
        sigma: [20.0, 5.0],
        x_power: 2,
        amplitude: -3.0,
        bilateral: false,
    },
];

/// Cubic smoothstep: 0 below `e0`, 1 above `e1` (or the reverse if `e0 > e1`), C¹ in between.
fn smoothstep(e0: f64, e1: f64, t: f64) -> f64 {
    let u = ((t - e0) / (e1 - e0)).clamp(0.0, 1.0);
    u * u * (3.0 - 2.0 * u)
}

/// Squared normalised radius of (x, y) in the egg-shaped outline: ≤ 1 inside.
pub(crate) fn outline_radius2(x: f64, y: f64) -> f64 {
    let v = (y - OUTLINE_CENTRE_Y) / OUTLINE_HALF_HEIGHT;
    let half_width = OUTLINE_HALF_WIDTH * (1.0 + OUTLINE_EGG * v);
    (x / half_width).powi(2) + v * v
}

/// Moves (x, y) radially from the outline's centre (0, y_c) onto the outline (bisection on
/// the radial scale). Reads x only through x², so mirror points land on mirror points.
pub(crate) fn onto_outline(x: f64, y: f64) -> (f64, f64) {
    let at = |s: f64| outline_radius2(s * x, OUTLINE_CENTRE_Y + s * (y - OUTLINE_CENTRE_Y));
    let (mut lo, mut hi) = (0.0, 1.0);
    while at(hi) < 1.0 && hi < 1e6 {
        (lo, hi) = (hi, 2.0 * hi);
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if at(mid) < 1.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let s = 0.5 * (lo + hi);
    (s * x, OUTLINE_CENTRE_Y + s * (y - OUTLINE_CENTRE_Y))
}

/// The nose: a straight ridge from the nasion to a rounded tip, then the columella falling to
/// the upper lip. C¹ everywhere; slightly negative just above the nasion (the nasal root
/// depression).
fn nose(x: f64, y: f64) -> f64 {
    let length = NASION_Y - NOSE_TIP_Y;
    let profile = if y >= NOSE_TIP_Y {
        // s = 0 at the tip, 1 at the nasion; a softened |s| keeps the tip C¹.
        let s = (y - NOSE_TIP_Y) / length;
        let e = NOSE_TIP_ROUNDING;
        let ramp = ((s * s + e * e).sqrt() - e) / ((1.0 + e * e).sqrt() - e);
        NOSE_ROOT_HEIGHT + (NOSE_TIP_HEIGHT - NOSE_ROOT_HEIGHT) * (1.0 - ramp)
    } else {
        NOSE_TIP_HEIGHT * (-((y - NOSE_TIP_Y) / NOSE_UNDERSIDE).powi(2)).exp()
    };
    // Narrow at the root, wide at the tip and wings.
    let width = 15.0 - 7.0 * smoothstep(NOSE_TIP_Y, NASION_Y, y);
    let fade = smoothstep(NASION_Y + 8.0, NASION_Y - 4.0, y);
    profile * (-(x / width).powi(2)).exp() * fade
}

/// The template's height field z(x, y) (mm): an egg-shaped dome rolling off toward the ears,
/// the hairline and under the chin, plus the nose and the local [`FEATURES`].
pub(crate) fn face_height(x: f64, y: f64) -> f64 {
    let r2 = outline_radius2(x, y);
    let v = (y - OUTLINE_CENTRE_Y) / OUTLINE_HALF_HEIGHT;
    let u = x / 75.0;
    // Horizontal curvature of the cheeks and forehead.
    let mut z = FACE_PLANE_Z - 36.0 * (0.5 * u * u + 0.5 * u.powi(4));
    // Roll-off near the outline, gentler at the hairline than at the sides and under the chin.
    z -= 24.0 * r2.powi(4) * (1.0 - 0.75 * smoothstep(0.2, 1.0, v));
    // Under the chin the surface turns back toward the neck; the forehead leans back.
    z -= 30.0 * ((-70.0 - y) / 30.0).max(0.0).powi(2);
    z -= 8.0 * ((y - 55.0) / 40.0).max(0.0).powi(2);
    z += nose(x, y);
    z + FEATURES.iter().map(|b| b.at(x, y)).sum::<f64>()
}

/// The sampled template: vertices on a grid of spacing h, triangles, the mirror map and each
/// vertex's integer grid coordinates (i, j), at (x, y) = (i·h, j·h) except on the rim, where
/// vertices sit on the outline.
#[derive(Debug, Clone)]
pub(crate) struct FaceTemplate {
    pub vertices: Vec<Point3<f64>>,
    pub triangles: Vec<[u32; 3]>,
    pub mirror: Vec<u32>,
    pub grid: Vec<[i32; 2]>,
}

impl FaceTemplate {
    /// Samples the template on a grid of `spacing` mm. Grid cells are split along the diagonal
    /// pointing away from the midline, so the triangulation is mirror-symmetric too; a
    /// triangle is kept when its three corners lie inside the outline, vertices in no
    /// triangle are dropped, and vertices on the mesh boundary are moved onto the outline.
    /// Triangles are counter-clockwise seen from +z.
    pub fn new(spacing: f64) -> Result<Self> {
        if !(spacing.is_finite() && spacing > 0.0) {
            return Err(MorphableError::Config {
                name: "grid_spacing_mm",
                reason: format!("{spacing} must be finite and positive"),
            });
        }
        let max_half_width = OUTLINE_HALF_WIDTH * (1.0 + OUTLINE_EGG);
        let nx = (max_half_width / spacing).ceil() as i32;
        let j0 = ((OUTLINE_CENTRE_Y - OUTLINE_HALF_HEIGHT) / spacing).floor() as i32;
        let j1 = ((OUTLINE_CENTRE_Y + OUTLINE_HALF_HEIGHT) / spacing).ceil() as i32;
        let (cols, rows) = ((2 * nx + 1) as usize, (j1 - j0 + 1) as usize);
        let cell = |i: i32, j: i32| (j - j0) as usize * cols + (i + nx) as usize;
        let inside: Vec<bool> = (0..rows * cols)
            .map(|k| {
                let (i, j) = ((k % cols) as i32 - nx, (k / cols) as i32 + j0);
                outline_radius2(i as f64 * spacing, j as f64 * spacing) <= 1.0
            })
            .collect();

        let mut grid_triangles = Vec::new();
        for j in j0..j1 {
            for i in -nx..nx {
                let [a, b, c, d] = [
                    cell(i, j),
                    cell(i + 1, j),
                    cell(i + 1, j + 1),
                    cell(i, j + 1),
                ];
                let pair = if i >= 0 {
                    [[a, b, c], [a, c, d]]
                } else {
                    [[a, b, d], [b, c, d]]
                };
                grid_triangles.extend(pair.into_iter().filter(|t| t.iter().all(|&k| inside[k])));
            }
        }

        // Keep the referenced grid points, in row-major order.
        let mut used = vec![false; rows * cols];
        grid_triangles
            .iter()
            .flatten()
            .for_each(|&k| used[k] = true);
        let mut index = vec![u32::MAX; rows * cols];
        let mut grid = Vec::new();
        for k in (0..rows * cols).filter(|&k| used[k]) {
            index[k] = grid.len() as u32;
            grid.push([(k % cols) as i32 - nx, (k / cols) as i32 + j0]);
        }
        if grid.is_empty() {
            return Err(MorphableError::Config {
                name: "grid_spacing_mm",
                reason: format!("{spacing} mm leaves no triangle inside the face outline"),
            });
        }
        let triangles: Vec<[u32; 3]> = grid_triangles.iter().map(|t| t.map(|k| index[k])).collect();
        let mirror = grid
            .iter()
            .map(|&[i, j]| index[cell(-i, j)])
            .collect::<Vec<_>>();
        if mirror.contains(&u32::MAX) {
            return Err(MorphableError::Inconsistent(
                "template grid is not mirror-symmetric".into(),
            ));
        }
        let mut xy: Vec<[f64; 2]> = grid
            .iter()
            .map(|&[i, j]| [i as f64 * spacing, j as f64 * spacing])
            .collect();
        smooth_rim(&mut xy, &triangles, &mirror, &grid, spacing);
        let vertices = xy
            .iter()
            .map(|&[x, y]| Point3::new(x, y, face_height(x, y)))
            .collect();
        Ok(Self {
            vertices,
            triangles,
            mirror,
            grid,
        })
    }
}

/// Smallest area (in units of h²) that a triangle next to the rim may keep, twice over:
/// the xy cross product of its edges must stay above this.
const MIN_RIM_CROSS: f64 = 0.1;

/// Slides the vertices of boundary edges (edges of one triangle only) toward the outline, so
/// that the rim is smooth rather than a staircase. A vertex goes the whole way, or 3/4, 1/2,
/// 1/4 of it, whichever is the first to keep every triangle around it counter-clockwise with
/// an xy cross product of at least [`MIN_RIM_CROSS`]·h²; otherwise it stays. Mirror partners
/// move together, decided on the x ≥ 0 side, so the template stays exactly symmetric.
fn smooth_rim(
    xy: &mut [[f64; 2]],
    triangles: &[[u32; 3]],
    mirror: &[u32],
    grid: &[[i32; 2]],
    spacing: f64,
) {
    let n = xy.len();
    let mut around: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut edges = std::collections::HashMap::<(u32, u32), u32>::new();
    for (t, tri) in triangles.iter().enumerate() {
        for e in 0..3 {
            around[tri[e] as usize].push(t);
            let (a, b) = (tri[e], tri[(e + 1) % 3]);
            *edges.entry((a.min(b), a.max(b))).or_default() += 1;
        }
    }
    let mut on_rim = vec![false; n];
    for (&(a, b), _) in edges.iter().filter(|(_, count)| **count == 1) {
        on_rim[a as usize] = true;
        on_rim[b as usize] = true;
    }
    let cross = |xy: &[[f64; 2]], t: usize| {
        let [a, b, c] = triangles[t].map(|v| xy[v as usize]);
        (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    };
    let min_cross = MIN_RIM_CROSS * spacing * spacing;
    for v in (0..n).filter(|&v| on_rim[v] && grid[v][0] >= 0) {
        let m = mirror[v] as usize;
        let [x0, y0] = xy[v];
        let (tx, ty) = onto_outline(x0, y0);
        for fraction in [1.0, 0.75, 0.5, 0.25, 0.0] {
            let (x, y) = (x0 + fraction * (tx - x0), y0 + fraction * (ty - y0));
            xy[v] = [x, y];
            xy[m] = [-x, y];
            if fraction == 0.0 || around[v].iter().all(|&t| cross(xy, t) >= min_cross) {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn height_field_is_bitwise_even_in_x() {
        for j in -50..50 {
            for i in 0..40 {
                let (x, y) = (i as f64 * 1.9, j as f64 * 2.1);
                assert_eq!(face_height(x, y).to_bits(), face_height(-x, y).to_bits());
            }
        }
    }

    #[test]
    fn nose_is_continuous_at_the_tip() {
        let below = nose(0.0, NOSE_TIP_Y - 1e-9);
        let above = nose(0.0, NOSE_TIP_Y + 1e-9);
        assert!((below - NOSE_TIP_HEIGHT).abs() < 1e-6);
        assert!((above - NOSE_TIP_HEIGHT).abs() < 1e-6);
    }

    #[test]
    fn mirror_map_is_an_involution_onto_mirrored_grid_points() {
        let t = FaceTemplate::new(3.0).unwrap();
        for (v, &m) in t.mirror.iter().enumerate() {
            assert_eq!(t.mirror[m as usize] as usize, v);
            assert_eq!(t.grid[m as usize], [-t.grid[v][0], t.grid[v][1]]);
        }
    }
}
