//! Gradients of the signal by the scene (docs/physics.md §3.6): the exact adjoint of the
//! direct `f64` sum of the converged model, carried back to the vertices of the surfaces, the
//! material factor and the antenna size.
//!
//! Every discrete choice of a [`SceneSample`] is held: which facets and cells exist and are
//! visible, how triangles were split, where cells sit in their triangles (barycentric), the
//! taper factors, which side the normals face. [`Simulator::moved_sample`] rebuilds a sample
//! with those choices from moved vertices, so a loss of [`Simulator::clean_signal`] of moved
//! samples is a smooth function of the vertices whose gradient [`Simulator::gradient`] is (up
//! to the clamps max(0, ·) of the cosines, whose subgradient is taken as 0 where they clamp).
//! Noise is not part of the clean signal.

use nalgebra::{Point3, Vector3};
use num_complex::Complex64;
use rayon::prelude::*;

use crate::facets::{LOBE_FLOOR, Origin, facet_integral_gradient};
use crate::kernel::direct::{self, ISOTROPIC, path_phasors, wavenumbers};
use crate::kernel::{Channels, FacetBands, Reflectance, Source, fast_adjoint};
use crate::scene::Triangle;
use crate::simulator::SourceSets;
use crate::{Facet, Hit, RadarError, Result, Scene, SceneSample, Simulator};

/// The gradient of a real loss ℓ of the clean signal by the scene: per surface and vertex
/// ∂ℓ/∂p (per m), ∂ℓ/∂m (material factor) and ∂ℓ/∂s (antenna size, per cm).
#[derive(Debug, Clone, PartialEq)]
pub struct SceneGradient {
    /// `vertices[surface][vertex]` = ∂ℓ/∂(x, y, z) of that vertex.
    pub vertices: Vec<Vec<Vector3<f64>>>,
    /// ∂ℓ/∂m.
    pub material: f64,
    /// ∂ℓ/∂s with s the sinc pattern's antenna size in cm (0 for an isotropic pattern).
    pub antenna_size_cm: f64,
}

/// ∂ℓ/∂ of one source's quantities.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SourceCotangent {
    pub position: Vector3<f64>,
    pub normal: Vector3<f64>,
    pub weight: f64,
    pub offsets: [Vector3<f64>; 2],
    /// By the reflectance's diffuse and specular weights.
    pub diffuse: f64,
    pub specular: f64,
    pub antenna_size_cm: f64,
}

/// Which adjoint [`Simulator::gradient_with`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GradientKernel {
    /// Term by term in `f64` ([`Simulator::gradient`]): the reference.
    Exact,
    /// The fast kernel's adjoint in f32 SIMD lanes (docs/physics.md §3.6): the same function,
    /// within f32 rounding, about two orders of magnitude faster.
    #[default]
    Fast,
}

/// An element seen from a source, with the pattern's derivatives.
pub(crate) struct View {
    pub distance: f64,
    /// Unit vector from the source toward the element.
    pub direction: Vector3<f64>,
    /// [g, ∂g/∂cos θ, ∂g/∂s] with cos θ = −direction.z.
    pub gain: [f64; 3],
}

pub(crate) fn view(channels: &Channels, element: &Point3<f64>, source: &Point3<f64>) -> View {
    let to_element = element - source;
    let distance = to_element.norm();
    let direction = to_element / distance;
    let gain =
        (channels.pattern).gain_derivatives(-direction.z, channels.sweep.centre_wavelength());
    View {
        distance,
        direction,
        gain,
    }
}

/// The adjoint of one source's terms in the sum of [`Simulator::clean_signal`] (kernel/direct.rs,
/// facet integrals per group of `bands`) for the signal's cotangent `cotangent`
/// (`[tx][rx][frequency]`).
fn source_adjoint(
    channels: &Channels,
    reflectance: &Reflectance,
    bands: &FacetBands,
    s: &Source,
    cotangent: &[Complex64],
) -> SourceCotangent {
    let mut out = SourceCotangent::default();
    let (n_rx, n_f) = (channels.rx.len(), channels.sweep.steps());
    let (k0, dk) = wavenumbers(channels);
    let mut phasors = vec![Complex64::new(0.0, 0.0); n_f];
    let views_rx: Vec<View> = (channels.rx.iter())
        .map(|e| view(channels, e, &s.position))
        .collect();
    for (t, tx) in channels.tx.iter().enumerate() {
        let vt = view(channels, tx, &s.position);
        for (r, vr) in views_rx.iter().enumerate() {
            if !channels.is_alive(t, r) {
                continue;
            }
            let inv_dd = 1.0 / (vt.distance * vr.distance);
            let spreading = vt.gain[0] * vr.gain[0] * inv_dd;
            let h = vt.direction + vr.direction;
            // The angular factor R·cos_i·cos_o of a surface source (1 for a point).
            let (angular, surface) = match s.normal {
                Some(n) => {
                    let (cos_i, cos_o) = (n.dot(&vt.direction), n.dot(&vr.direction));
                    if cos_i <= 0.0 || cos_o <= 0.0 {
                        continue;
                    }
                    let h_len = h.norm();
                    let cos_h = if h_len > 0.0 {
                        n.dot(&h).max(0.0) / h_len
                    } else {
                        0.0
                    };
                    // The windowed lobe and its derivative by the lobe.
                    let (lobe, d_lobe) = reflectance.windowed(cos_h.powf(reflectance.exponent));
                    if reflectance.diffuse == 0.0 && lobe == 0.0 {
                        // Nothing of this term, nor of its derivatives, is left.
                        continue;
                    }
                    let r = reflectance.diffuse + reflectance.specular * lobe;
                    (
                        r * cos_i * cos_o,
                        Some((n, cos_i, cos_o, cos_h, h_len, (lobe, d_lobe), r)),
                    )
                }
                None => (1.0, None),
            };
            let amplitude = s.weight * angular * spreading;
            let path = vt.distance + vr.distance - 2.0 * s.roughness_m;
            let corners = s.offsets.map(|[a, b]| {
                let (qa, qb) = (h.dot(&a), h.dot(&b));
                [qa, qb, -qa - qb]
            });
            // ℓ gains Re Σ_n conj(s̄_n)·a·F_b(n)·exp(−jk_n·L), F_b the facet integral of
            // frequency n's group: its derivatives by a, L and the corner phases c_i = q·ρ_i.
            let row = &cotangent[(t * n_rx + r) * n_f..][..n_f];
            path_phasors(k0, dk, path, &mut phasors);
            let (mut a_bar, mut path_bar, mut c_bar) = (0.0, 0.0, [0.0f64; 3]);
            let group = |members: &mut dyn Iterator<Item = usize>| {
                // Σ z_n and Σ k_n·z_n over the group, z_n = conj(s̄_n)·exp(−jk_n·L).
                let (mut z, mut zk) = (Complex64::new(0.0, 0.0), Complex64::new(0.0, 0.0));
                for n in members {
                    let zn = row[n].conj() * phasors[n];
                    z += zn;
                    zk += zn * (k0 + dk * n as f64);
                }
                (z, zk)
            };
            match corners {
                None => {
                    let (z, zk) = group(&mut (0..n_f));
                    a_bar += z.re;
                    // ∂/∂L of exp(−jkL) is −jk·exp(−jkL): Re(−jk·w) = k·Im(w).
                    path_bar += zk.im * amplitude;
                }
                Some(c) => {
                    for (k, members) in &bands.groups {
                        let (f, df) = facet_integral_gradient(c.map(|x| k * x));
                        let (z, zk) = group(&mut members.iter().copied());
                        a_bar += (z * f).re;
                        path_bar += (zk * f).im * amplitude;
                        for (bar, df) in c_bar.iter_mut().zip(df) {
                            *bar += (z * df).re * amplitude * k;
                        }
                    }
                }
            }
            let (mut d_bar_t, mut d_bar_r) = (path_bar, path_bar);
            let (mut w_bar_t, mut w_bar_r) = (Vector3::zeros(), Vector3::zeros());
            let mut h_bar = Vector3::zeros();
            if let (Some([a, b]), Some(_)) = (s.offsets, corners) {
                // c_2 = −c_0 − c_1.
                let (c0, c1) = (c_bar[0] - c_bar[2], c_bar[1] - c_bar[2]);
                out.offsets[0] += h * c0;
                out.offsets[1] += h * c1;
                h_bar += a * c0 + b * c1;
            }
            // a = w·angular·spreading, spreading = g_t·g_r/(d_t·d_r).
            out.weight += a_bar * angular * spreading;
            let angular_bar = a_bar * s.weight * spreading;
            let spreading_bar = a_bar * s.weight * angular;
            let (gt_bar, gr_bar) = (
                spreading_bar * vr.gain[0] * inv_dd,
                spreading_bar * vt.gain[0] * inv_dd,
            );
            d_bar_t -= spreading_bar * spreading / vt.distance;
            d_bar_r -= spreading_bar * spreading / vr.distance;
            w_bar_t.z -= gt_bar * vt.gain[1];
            w_bar_r.z -= gr_bar * vr.gain[1];
            out.antenna_size_cm += gt_bar * vt.gain[2] + gr_bar * vr.gain[2];
            if let Some((n, cos_i, cos_o, cos_h, h_len, (lobe, d_lobe), r)) = surface {
                let r_bar = angular_bar * cos_i * cos_o;
                let (ci_bar, co_bar) = (angular_bar * r * cos_o, angular_bar * r * cos_i);
                out.normal += vt.direction * ci_bar + vr.direction * co_bar;
                w_bar_t += n * ci_bar;
                w_bar_r += n * co_bar;
                out.diffuse += r_bar;
                out.specular += r_bar * lobe;
                if cos_h > 0.0 && reflectance.exponent > 0.0 {
                    let cos_h_bar = r_bar
                        * reflectance.specular
                        * d_lobe
                        * reflectance.exponent
                        * cos_h.powf(reflectance.exponent - 1.0);
                    out.normal += h * (cos_h_bar / h_len);
                    h_bar += (n / h_len - h * (n.dot(&h) / h_len.powi(3))) * cos_h_bar;
                }
            }
            w_bar_t += h_bar;
            w_bar_r += h_bar;
            // ω = (p_e − P)/d, d = |p_e − P|.
            for (v, w_bar, d_bar) in [(&vt, w_bar_t, d_bar_t), (vr, w_bar_r, d_bar_r)] {
                let u = v.direction;
                let v_bar = (w_bar - u * w_bar.dot(&u)) / v.distance + u * d_bar;
                out.position -= v_bar;
            }
        }
    }
    out
}

/// The cotangents of a triangle's corners for its unit normal's cotangent `n_bar`, the normal
/// being ±(e₁ × e₂)/|e₁ × e₂| (− where `flipped`).
fn normal_adjoint(
    corners: &[Point3<f64>; 3],
    n_bar: &Vector3<f64>,
    flipped: bool,
) -> [Vector3<f64>; 3] {
    let (e1, e2) = (corners[1] - corners[0], corners[2] - corners[0]);
    let x = e1.cross(&e2);
    let len = x.norm();
    let unit = x / len;
    let sign = if flipped { -1.0 } else { 1.0 };
    // n = ±x̂, ∂n/∂x = ±(I − x̂x̂ᵀ)/|x|.
    let x_bar = (n_bar - unit * n_bar.dot(&unit)) * (sign / len);
    let (e1_bar, e2_bar) = (e2.cross(&x_bar), x_bar.cross(&e1));
    [-(e1_bar + e2_bar), e1_bar, e2_bar]
}

impl Simulator {
    /// The noise-free signal of `sample` by the direct sum in `f64` with the fast kernel's
    /// facet sub-bands and, for its skip of facets below the lobe floor, a smooth window on the
    /// specular lobe between the floor and twice it (docs/physics.md §3.6),
    /// `[tx][rx][frequency]` row-major: the function whose gradient [`Simulator::gradient`]
    /// takes.
    pub fn clean_signal(&self, sample: &SceneSample) -> Result<Vec<Complex64>> {
        let sources = self.differentiable_sources(sample)?;
        let bands = FacetBands::sub_bands(self.sweep());
        Ok(direct::simulate_f64(
            &self.channels(),
            &sources.sets(),
            &bands,
        ))
    }

    /// The sample's sources with the specular lobe windowed at the fast kernel's floor
    /// (docs/physics.md §3.6).
    fn differentiable_sources(&self, sample: &SceneSample) -> Result<SourceSets> {
        let mut sources = self.sources(sample)?;
        sources.coherent = sources.coherent.with_lobe_floor(LOBE_FLOOR);
        Ok(sources)
    }

    /// `sample` rebuilt from `scene`'s vertices with every discrete choice of the sample held
    /// (docs/physics.md §3.6): the same facets and cells, at the same barycentric places, with
    /// the same taper factors and normal sides. `scene` must be the sampled scene with its
    /// vertices moved. Errors: a sample of random hits (sampled model, or the converged model
    /// evaluated by hits), or a scene whose triangles are not the sample's.
    pub fn moved_sample(&self, sample: &SceneSample, scene: &Scene) -> Result<SceneSample> {
        let triangles = self.gradient_triangles(sample, scene)?;
        let corners = |o: &Origin| -> [Point3<f64>; 3] {
            let v = triangles[o.triangle].corners;
            o.barycentric
                .map(|b| Point3::from(v[0].coords * b.x + v[1].coords * b.y + v[2].coords * b.z))
        };
        let normal = |o: &Origin| {
            let n = triangles[o.triangle].normal;
            if o.flipped { -n } else { n }
        };
        let facets = (sample.origins.facets.iter())
            .map(|o| Facet::from_corners(corners(o), normal(o), o.taper))
            .collect();
        let diffuse = (sample.diffuse.iter().zip(&sample.origins.diffuse))
            .map(|(cell, o)| Hit {
                position: corners(o)[0],
                normal: normal(o),
                ..*cell
            })
            .collect();
        Ok(SceneSample {
            facets,
            diffuse,
            ..sample.clone()
        })
    }

    /// The scene's triangles, checked against the sample's origins.
    fn gradient_triangles(&self, sample: &SceneSample, scene: &Scene) -> Result<Vec<Triangle>> {
        if !sample.hits.is_empty() {
            return Err(RadarError::config(
                "signal gradient",
                "the sample holds random hits; gradients need the converged surface model \
                 with facets (SurfaceModel::Converged, CoherentIntegral::Facets)",
            ));
        }
        let (triangles, _) = scene.triangles();
        let consistent = sample.facets.len() == sample.origins.facets.len()
            && sample.diffuse.len() == sample.origins.diffuse.len()
            && (sample.origins.facets.iter())
                .chain(&sample.origins.diffuse)
                .all(|o| o.triangle < triangles.len())
            && triangles.len() == sample.origins.triangles;
        if !consistent {
            return Err(RadarError::config(
                "signal gradient",
                format!(
                    "the scene's {} triangles are not the {} of the sample (or the sample's \
                     facets and cells were changed)",
                    triangles.len(),
                    sample.origins.triangles
                ),
            ));
        }
        Ok(triangles)
    }

    /// The gradient of a real loss ℓ of [`Simulator::clean_signal`]`(sample)` by the
    /// vertices of `scene`, the material factor and the antenna size, given ℓ's cotangent of
    /// that signal (`[tx][rx][frequency]`, z̄ = ∂ℓ/∂Re z + j·∂ℓ/∂Im z; docs/physics.md §3.6).
    /// Exact in `f64`, term by term: O(N_t·N_r·N_f·N_sources), for checks and small problems.
    /// Errors: as [`Simulator::moved_sample`], or a cotangent of the wrong length.
    pub fn gradient(
        &self,
        scene: &Scene,
        sample: &SceneSample,
        cotangent: &[Complex64],
    ) -> Result<SceneGradient> {
        self.gradient_with(GradientKernel::Exact, scene, sample, cotangent)
    }

    /// [`Simulator::gradient`] by `kernel`: [`GradientKernel::Fast`] is the fast kernel's
    /// adjoint in f32 lanes, O(N_t·N_r·N_h·N_f) complex multiply-adds in SIMD plus
    /// O((N_t + N_r)·N_h) in `f64` (docs/physics.md §3.6).
    pub fn gradient_with(
        &self,
        kernel: GradientKernel,
        scene: &Scene,
        sample: &SceneSample,
        cotangent: &[Complex64],
    ) -> Result<SceneGradient> {
        let triangles = self.gradient_triangles(sample, scene)?;
        let expected = self.n_samples();
        if cotangent.len() != expected {
            return Err(RadarError::Shape {
                what: "signal cotangent [tx, rx, frequency]",
                expected: expected.to_string(),
                actual: cotangent.len().to_string(),
            });
        }
        let sources = self.differentiable_sources(sample)?;
        let channels = self.channels();
        let bands = FacetBands::sub_bands(self.sweep());
        let adjoint = |set: &[Source], reflectance: &Reflectance| -> Vec<SourceCotangent> {
            match kernel {
                GradientKernel::Exact => set
                    .par_iter()
                    .map(|s| source_adjoint(&channels, reflectance, &bands, s, cotangent))
                    .collect(),
                GradientKernel::Fast => {
                    fast_adjoint::adjoint(&channels, set, reflectance, cotangent)
                }
            }
        };
        let facets = adjoint(&sources.facets, &sources.coherent);
        let cells = adjoint(&sources.diffuse, &sources.incoherent);
        let points = adjoint(&sources.points, &ISOTROPIC);

        let mut vertices: Vec<Vec<Vector3<f64>>> = (scene.surfaces().iter())
            .map(|s| vec![Vector3::zeros(); s.vertices().len()])
            .collect();
        let mut add = |o: &Origin, corner_bars: [Vector3<f64>; 3]| {
            let id = triangles[o.triangle].id;
            let surface = (id >> 32) as usize;
            let indices = scene.surfaces()[surface].triangles()[(id & 0xffff_ffff) as usize];
            for (i, bar) in indices.iter().zip(corner_bars) {
                vertices[surface][*i as usize] += bar;
            }
        };
        // Facets: corners c_i = Σ_j B_ij·v_j; centroid, offsets and area from the c_i; the
        // normal from the triangle.
        for (c, o) in facets.iter().zip(&sample.origins.facets) {
            let v = triangles[o.triangle].corners;
            let corners = o
                .barycentric
                .map(|b| Point3::from(v[0].coords * b.x + v[1].coords * b.y + v[2].coords * b.z));
            let shift = (c.offsets[0] + c.offsets[1]) / 3.0;
            let mut c_bar = [
                c.position / 3.0 + c.offsets[0] - shift,
                c.position / 3.0 + c.offsets[1] - shift,
                c.position / 3.0 - shift,
            ];
            let (e1, e2) = (corners[1] - corners[0], corners[2] - corners[0]);
            let x = e1.cross(&e2);
            let area_bar = c.weight * o.taper / 2.0;
            let unit = x / x.norm();
            let (g1, g2) = (e2.cross(&unit) * area_bar, unit.cross(&e1) * area_bar);
            c_bar[0] -= g1 + g2;
            c_bar[1] += g1;
            c_bar[2] += g2;
            let mut bars = normal_adjoint(&v, &c.normal, o.flipped);
            for (i, bar) in bars.iter_mut().enumerate() {
                *bar += (0..3)
                    .map(|ci| c_bar[ci] * o.barycentric[ci][i])
                    .sum::<Vector3<f64>>();
            }
            add(o, bars);
        }
        for (c, o) in cells.iter().zip(&sample.origins.diffuse) {
            let v = triangles[o.triangle].corners;
            let mut bars = normal_adjoint(&v, &c.normal, o.flipped);
            for (i, bar) in bars.iter_mut().enumerate() {
                *bar += c.position * o.barycentric[0][i];
            }
            add(o, bars);
        }
        let material = &self.config().material;
        // S = m·(n_s + 1)/(2π), D = (1 − m)/π.
        let specular_per_m = (material.exponent + 1.0) / (2.0 * std::f64::consts::PI);
        let diffuse_per_m = -1.0 / std::f64::consts::PI;
        // Facets carry only the specular part, cells only the diffuse one.
        let material = facets.iter().map(|c| c.specular).sum::<f64>() * specular_per_m
            + cells.iter().map(|c| c.diffuse).sum::<f64>() * diffuse_per_m;
        Ok(SceneGradient {
            vertices,
            material,
            antenna_size_cm: (facets.iter().chain(&cells).chain(&points))
                .map(|c| c.antenna_size_cm)
                .sum(),
        })
    }
}
