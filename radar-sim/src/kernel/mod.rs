//! The two evaluations of the forward model of docs/physics.md §3:
//!
//! s(t, r, f) = Σ_h a_h(t, r)·exp(−j·2πf·(d_t + d_r − 2δ_h)/c)
//!
//! with a_h = w_h·f_mat·max(0, n·ω_i)·max(0, n·ω_o)·g(ω_i)·g(ω_o)/(d_t·d_r) for surface hits and
//! a_h = σ·g(ω_i)·g(ω_o)/(d_t·d_r) for point scatterers. `direct` is the golden reference; `fast`
//! is the production path. Both write `[tx][rx][frequency]` row-major and leave dead channels
//! at zero.

pub(crate) mod direct;
pub(crate) mod fast;
pub(crate) mod fast_adjoint;
mod lanes;

use nalgebra::{Point3, Vector3};

use crate::facets::Facet;
use crate::{ChannelMask, ElementPattern, FrequencySweep, Hit, Material, PointScatterer};

/// A scatterer as both kernels see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source {
    pub position: Point3<f64>,
    /// The unit normal of a surface hit or facet; `None` for an isotropic point scatterer.
    pub normal: Option<Vector3<f64>>,
    /// Area weight w_h (m²) of a hit or facet, reflectivity σ (m²) of a point.
    pub weight: f64,
    /// Roughness displacement δ_h (m); 0 for points and facets.
    pub roughness_m: f64,
    /// A facet's corners 0 and 1 relative to its centroid (m); `None` for hits and points.
    pub offsets: Option<[Vector3<f64>; 2]>,
}

impl From<&Hit> for Source {
    fn from(hit: &Hit) -> Self {
        Self {
            position: hit.position,
            normal: Some(hit.normal),
            weight: hit.area_m2,
            roughness_m: hit.roughness_m,
            offsets: None,
        }
    }
}

impl From<&PointScatterer> for Source {
    fn from(point: &PointScatterer) -> Self {
        Self {
            position: point.position(),
            normal: None,
            weight: point.reflectivity_m2(),
            roughness_m: 0.0,
            offsets: None,
        }
    }
}

impl From<&Facet> for Source {
    fn from(facet: &Facet) -> Self {
        Self {
            position: facet.centroid,
            normal: Some(facet.normal),
            weight: facet.weight_m2,
            roughness_m: 0.0,
            offsets: Some(facet.offsets),
        }
    }
}

/// The angular factor of a set of surface sources: diffuse + specular·max(0, n·H)^exponent
/// (1/sr). The whole material, or one of its two parts (docs/physics.md §3.3–§3.4).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reflectance {
    pub diffuse: f64,
    pub specular: f64,
    pub exponent: f64,
    /// Where positive, the lobe L = max(0, n·H)^{n_s} is multiplied by a smooth window that is
    /// 0 below this floor and 1 above twice it (docs/physics.md §3.6): the differentiable
    /// path's form of the fast kernel's lobe skip. 0: no window.
    pub lobe_floor: f64,
}

impl Reflectance {
    /// The whole material: (1 − m)/π + m·(n_s + 1)/(2π)·max(0, n·H)^{n_s}.
    pub fn of(material: &Material) -> Self {
        Self {
            diffuse: material.diffuse_weight(),
            specular: material.specular_weight(),
            exponent: material.exponent,
            lobe_floor: 0.0,
        }
    }
    /// The Blinn-Phong part alone (the converged model's coherent part).
    pub fn specular(material: &Material) -> Self {
        Self {
            diffuse: 0.0,
            ..Self::of(material)
        }
    }
    /// The Lambert part alone (the converged model's diffuse cells).
    pub fn diffuse(material: &Material) -> Self {
        Self {
            specular: 0.0,
            ..Self::of(material)
        }
    }
    /// The same with the lobe windowed at `floor` (see [`Reflectance::lobe_floor`]).
    pub fn with_lobe_floor(self, floor: f64) -> Self {
        Self {
            lobe_floor: floor,
            ..self
        }
    }
    /// The windowed lobe w(L)·L and its derivative by L, for a lobe value L.
    pub fn windowed(&self, lobe: f64) -> (f64, f64) {
        let floor = self.lobe_floor;
        if floor <= 0.0 {
            return (lobe, 1.0);
        }
        let t = ((lobe - floor) / floor).clamp(0.0, 1.0);
        let (w, dw) = (t * t * (3.0 - 2.0 * t), 6.0 * t * (1.0 - t) / floor);
        (w * lobe, w + lobe * dw)
    }
    /// The factor for unit vectors `normal`, `to_tx` (ω_i) and `to_rx` (ω_o); the specular term
    /// is 0 where ω_i + ω_o = 0.
    pub fn factor(&self, normal: &Vector3<f64>, to_tx: &Vector3<f64>, to_rx: &Vector3<f64>) -> f64 {
        let half = to_tx + to_rx;
        let len = half.norm();
        let cos_h = if len > 0.0 {
            normal.dot(&half).max(0.0) / len
        } else {
            0.0
        };
        let lobe = if self.specular == 0.0 {
            0.0
        } else {
            self.windowed(cos_h.powf(self.exponent)).0
        };
        self.diffuse + self.specular * lobe
    }
}

/// The frequency sub-bands of the facet kernels: within each, a facet's integral is taken at
/// the sub-band's mean wavenumber (docs/physics.md §3.5).
pub(crate) const SUB_BANDS: usize = 2;

/// The sub-band of each of `n_f` frequencies when the kernel runs passes of `block`
/// frequencies: a full pass belongs to the sub-band of its middle, a tail frequency to its own.
pub(crate) fn sub_band_of(n_f: usize, block: usize) -> Vec<usize> {
    let band = |i: f64| ((i * SUB_BANDS as f64 / n_f as f64) as usize).min(SUB_BANDS - 1);
    let passes = n_f / block;
    (0..n_f)
        .map(|i| {
            if i < passes * block {
                band(((i / block) * block) as f64 + (block as f64 - 1.0) / 2.0)
            } else {
                band(i as f64)
            }
        })
        .collect()
}

/// Groups of the sweep's frequencies that share one facet integral, each with the wavenumber
/// (rad/m) it is taken at.
#[derive(Debug, Clone)]
pub(crate) struct FacetBands {
    pub groups: Vec<(f64, Vec<usize>)>,
}

impl FacetBands {
    /// One group per frequency: the exact integral (the direct reference).
    pub fn exact(sweep: &FrequencySweep) -> Self {
        let groups = (sweep.frequencies().iter().enumerate())
            .map(|(i, f)| (std::f64::consts::TAU * f / crate::SPEED_OF_LIGHT, vec![i]))
            .collect();
        Self { groups }
    }

    /// The fast kernel's sub-bands ([`sub_band_of`] with the kernel's pass length), each at
    /// its mean wavenumber (docs/physics.md §3.5).
    pub fn sub_bands(sweep: &FrequencySweep) -> Self {
        let frequencies = sweep.frequencies();
        let of = sub_band_of(frequencies.len(), fast::FREQ_BLOCK);
        let groups = (0..SUB_BANDS)
            .map(|b| {
                let members: Vec<usize> = (0..frequencies.len()).filter(|&i| of[i] == b).collect();
                let mean = members.iter().map(|&i| frequencies[i]).sum::<f64>()
                    / members.len().max(1) as f64;
                (
                    std::f64::consts::TAU * mean / crate::SPEED_OF_LIGHT,
                    members,
                )
            })
            .filter(|(_, members)| !members.is_empty())
            .collect();
        Self { groups }
    }
}

/// What the kernels need to know about the array and the sweep.
pub(crate) struct Channels<'a> {
    pub tx: &'a [Point3<f64>],
    pub rx: &'a [Point3<f64>],
    pub mask: Option<&'a ChannelMask>,
    pub sweep: &'a FrequencySweep,
    pub pattern: &'a ElementPattern,
}

impl Channels<'_> {
    /// Whether channel (t, r) works.
    pub fn is_alive(&self, t: usize, r: usize) -> bool {
        self.mask.is_none_or(|m| m.is_alive(t, r))
    }

    /// One element seen from a source.
    pub fn view(&self, element: &Point3<f64>, source: &Point3<f64>) -> ElementView {
        let to_element = element - source;
        let distance = to_element.norm();
        let direction = to_element / distance;
        // θ is measured between the ray from the antenna toward the source and boresight +z.
        let gain = (self.pattern).gain(-direction.z, self.sweep.centre_wavelength());
        ElementView {
            distance,
            direction,
            gain,
        }
    }
}

/// An antenna element seen from a source.
pub(crate) struct ElementView {
    /// d = |p_e − P| (m).
    pub distance: f64,
    /// ω = (p_e − P)/d, the unit vector from the source toward the element.
    pub direction: Vector3<f64>,
    /// The element pattern g toward the source.
    pub gain: f64,
}
