//! Area-stratified hit sampling of surfaces and the visibility of hits and points.

use nalgebra::{Point3, Vector3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::facets::{self, Facet};
use crate::scene::Triangle;
use crate::visibility::Occluders;
use crate::{ConvergedSurface, PointScatterer, Scene};

/// One surface sample: where the surface integral is evaluated (docs/physics.md §3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Position P_h (m).
    pub position: Point3<f64>,
    /// Unit normal n_h, turned toward the array centre (n·(c − P) ≥ 0).
    pub normal: Vector3<f64>,
    /// Area weight w_h (m²): the scene's surface area over the number of hits sampled.
    pub area_m2: f64,
    /// Roughness displacement δ_h (m) along the normal; adds the phase exp(j·2k·δ_h).
    pub roughness_m: f64,
}

/// The hits and points of a scene that the array sees, and what was left out
/// ([`Simulator::sample`](crate::Simulator::sample)).
///
/// Hits are sampled per area (systematic, area-stratified): the non-degenerate triangles of all
/// surfaces are laid end to end along their cumulative area A, cut into N strata of equal area,
/// and hit k falls at cumulative area (k + u)·A/N, u ~ U(0, 1) drawn once; inside its triangle
/// it lies uniformly at random (the hit jitter). So every triangle receives its share of hits
/// to within one, every hit weighs A/N (m²), and the weights add up to A exactly. Each hit
/// carries its triangle's flat normal, turned toward the array centre, and a roughness
/// displacement δ_h ~ N(0, σ_r). A hit (or point) is dropped when the straight path from it to
/// the array centre crosses a triangle of the scene.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneSample {
    /// Visible hits: the whole surface integral ([`SurfaceModel::Sampled`](crate::SurfaceModel))
    /// or the coherent part evaluated by hits ([`CoherentIntegral::Hits`](crate::CoherentIntegral)).
    pub hits: Vec<Hit>,
    /// Visible facets of the converged model's coherent part
    /// ([`CoherentIntegral::Facets`](crate::CoherentIntegral)).
    pub facets: Vec<Facet>,
    /// Visible diffuse cells of the converged model (weight ℓ², height δ as `roughness_m`).
    pub diffuse: Vec<Hit>,
    /// Visible point scatterers.
    pub points: Vec<PointScatterer>,
    /// Hits sampled before the visibility test.
    pub hits_sampled: usize,
    /// Hits dropped because the scene hides them from the array centre.
    pub hits_hidden: usize,
    /// Facets dropped because the scene hides their centroid from the array centre.
    pub facets_hidden: usize,
    /// Diffuse cells dropped because the scene hides them from the array centre.
    pub diffuse_hidden: usize,
    /// Point scatterers dropped because a surface hides them.
    pub points_hidden: usize,
    /// Degenerate triangles (repeated corners or zero area), skipped.
    pub degenerate_triangles: usize,
    /// Area of the non-degenerate triangles (m²).
    pub surface_area_m2: f64,
    /// Where each facet and diffuse cell came from, for gradients (docs/physics.md §3.6).
    pub(crate) origins: Origins,
}

/// The origins of a sample's facets and diffuse cells, in the same order as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Origins {
    /// The scene's non-degenerate triangles when the sample was drawn.
    pub triangles: usize,
    pub facets: Vec<facets::Origin>,
    pub diffuse: Vec<facets::Origin>,
}

impl SceneSample {
    /// The mean spacing between hits, √(area / hits sampled) (m); 0 without hits.
    pub fn hit_spacing_m(&self) -> f64 {
        if self.hits_sampled == 0 {
            0.0
        } else {
            (self.surface_area_m2 / self.hits_sampled as f64).sqrt()
        }
    }
}

/// Random-stream domains: every random choice draws from ChaCha8(seed) on its own stream
/// `domain << 48 | index`, so no choice depends on the order (or thread) of another.
#[derive(Clone, Copy)]
#[repr(u64)]
pub(crate) enum Stream {
    /// The offset of the systematic (stratified) sample.
    Offset = 1,
    /// Hit k: its position inside the triangle and its roughness.
    Hit = 2,
    /// Noise of transmitter row t.
    Noise = 3,
    /// The diffuse cells of a triangle (keyed by the surface seed and the triangle's identity).
    Diffuse = 4,
}

/// The random generator of `domain`, item `index`.
pub(crate) fn rng(seed: u64, domain: Stream, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(((domain as u64) << 48) | (index & ((1 << 48) - 1)));
    rng
}

/// What [`sample_scene`] evaluates the surfaces with.
pub(crate) struct SamplePlan<'a> {
    /// Hits over the surfaces (0 for none), their seed and roughness σ_r (m).
    pub hits: usize,
    pub seed: u64,
    pub roughness_m: f64,
    /// The boundary taper of the hits and facets; `None`: 1.
    pub taper: Option<&'a facets::Taper>,
    /// Facets with this longest edge (m) for this aperture, if any.
    pub facets: Option<(f64, facets::Aperture)>,
    /// The diffuse field of this model, surface seed and cell weight (m²), if any.
    pub diffuse: Option<(&'a ConvergedSurface, u64, f64)>,
}

/// Samples the scene as `plan` says and tests what it sampled for visibility from `centre`.
///
/// Hits are area-stratified (systematic): the triangles are laid end to end along their
/// cumulative area, cut into `plan.hits` strata of equal area, and hit k falls at cumulative
/// area (k + u)·area/count, u ~ U(0, 1) drawn once; inside its triangle it lies uniformly at
/// random. So every triangle receives its area's share of hits to within one, and every hit
/// weighs area/count. Normals are the triangles' (flat) normals turned toward `centre`.
pub(crate) fn sample_scene(
    scene: &Scene,
    triangles: &[Triangle],
    degenerate_triangles: usize,
    centre: Point3<f64>,
    plan: &SamplePlan,
) -> SceneSample {
    let area: f64 = triangles.iter().map(|t| t.area).sum();
    let occluders = Occluders::new(triangles, centre);
    let candidates = stratified_hits(
        triangles,
        area,
        plan.hits,
        centre,
        plan.seed,
        plan.roughness_m,
    );
    let hits_sampled = candidates.len();
    let hits: Vec<Hit> = candidates
        .into_par_iter()
        .filter(|(hit, tri)| occluders.is_visible(&hit.position, Some(*tri)))
        .map(|(hit, tri)| Hit {
            area_m2: hit.area_m2
                * plan
                    .taper
                    .map_or(1.0, |w| w.at(&triangles[tri], &hit.position)),
            ..hit
        })
        .collect();
    let (facets, facet_origins, facets_hidden) = match &plan.facets {
        Some((edge, aperture)) => {
            facets::facets(triangles, plan.taper, *edge, aperture, &occluders, centre)
        }
        None => (Vec::new(), Vec::new(), 0),
    };
    let (diffuse, diffuse_origins, diffuse_hidden) = match plan.diffuse {
        Some((surface, seed, weight)) => {
            facets::diffuse_cells(triangles, surface, seed, weight, &occluders, centre)
        }
        None => (Vec::new(), Vec::new(), 0),
    };
    let points: Vec<PointScatterer> = (scene.points().iter())
        .filter(|p| occluders.is_visible(&p.position(), None))
        .copied()
        .collect();
    SceneSample {
        hits_hidden: hits_sampled - hits.len(),
        points_hidden: scene.points().len() - points.len(),
        hits,
        facets,
        facets_hidden,
        diffuse,
        diffuse_hidden,
        origins: Origins {
            triangles: triangles.len(),
            facets: facet_origins,
            diffuse: diffuse_origins,
        },
        points,
        hits_sampled,
        degenerate_triangles,
        surface_area_m2: area,
    }
}

/// The hits (with the index of their triangle) before the visibility test.
fn stratified_hits(
    triangles: &[Triangle],
    area: f64,
    count: usize,
    centre: Point3<f64>,
    seed: u64,
    roughness_sigma_m: f64,
) -> Vec<(Hit, usize)> {
    if triangles.is_empty() || count == 0 || area <= 0.0 {
        return Vec::new();
    }
    let stratum = area / count as f64;
    let offset: f64 = rng(seed, Stream::Offset, 0).random();
    // Which triangle each stratum point falls in: one sequential walk along the cumulative area.
    let mut owner = Vec::with_capacity(count);
    let (mut tri, mut end) = (0, triangles[0].area);
    for k in 0..count {
        let at = (k as f64 + offset) * stratum;
        while at >= end && tri + 1 < triangles.len() {
            tri += 1;
            end += triangles[tri].area;
        }
        owner.push(tri);
    }
    owner
        .into_par_iter()
        .enumerate()
        .map(|(k, tri)| {
            let t = &triangles[tri];
            let mut rng = rng(seed, Stream::Hit, k as u64);
            let (r1, r2): (f64, f64) = (rng.random(), rng.random());
            let position = t.point_at(r1, r2);
            let roughness_m = roughness_sigma_m * rng.sample::<f64, _>(StandardNormal);
            let normal = t.normal_toward(&centre, &position);
            let hit = Hit {
                position,
                normal,
                area_m2: stratum,
                roughness_m,
            };
            (hit, tri)
        })
        .collect()
}
