//! The simulator: array + sweep + validated settings, applied to scenes.

use nalgebra::Point3;
use ndarray::Array3;
use num_complex::Complex32;

use crate::array::validate_array;
use crate::facets::{Aperture, Taper, diffuse_cell_weight, facet_count};
use crate::hits::{SamplePlan, sample_scene};
use crate::kernel::fast::MAX_PHASE_SPREAD;
use crate::kernel::{self, Channels, Reflectance, Source, fast};
use crate::noise::{add_noise, apply_mask, mean_power};
use crate::{
    ArrayGeometry, ChannelMask, CoherentIntegral, FrequencySweep, Hit, RadarError, Result,
    SPEED_OF_LIGHT, Scene, SceneSample, SignalCube, SimulationConfig, SumMethod, SurfaceModel,
};

/// An SFCW MIMO radar simulator (docs/physics.md §3) for one array, one sweep and one set of
/// [`SimulationConfig`] settings, validated once at construction and reused for any number of
/// scenes.
///
/// The forward model, per channel (t, r) and frequency f:
///
/// s(t, r, f) = Σ_h a_h(t, r)·exp(−j·2πf·(d_t + d_r)/c)·exp(j·2k·δ_h) + noise(t, r, f),
/// a_h(t, r) = w_h·f_mat·max(0, n·ω_i)·max(0, n·ω_o)·g(ω_i)·g(ω_o)/(d_t·d_r)
///
/// with d_t, d_r the distances from hit h to the transmitter and the receiver, ω_i, ω_o the
/// unit vectors from the hit toward them, k = 2πf/c, f_mat the [`Material`](crate::Material)
/// and g the [`ElementPattern`](crate::ElementPattern), evaluated at the angle θ between the ray
/// from the antenna to the hit and boresight +z. Point scatterers contribute
/// σ·g(ω_i)·g(ω_o)/(d_t·d_r)·exp(−j·2πf·(d_t + d_r)/c).
///
/// Conventions and choices:
/// - Hits are sampled per area (area-stratified, see [`SceneSample`]), weigh area/count (m²)
///   each, and carry their triangle's flat normal turned toward the array centre, so the
///   triangle winding does not matter; terms facing away from an element vanish through
///   max(0, ·).
/// - Visibility is tested from the array centre ([`ArrayGeometry::centre`], the origin for the
///   QAR50): a hit or point whose straight path to the centre crosses a triangle of the scene is
///   dropped. Accepted approximation: the aperture (±7 cm) is small against the distance.
/// - Noise is complex white Gaussian with E|n|² = P_s/10^(SNR/10), P_s the mean |s|² over the
///   working channels; dead channels read exactly zero.
/// - Every random choice is seeded (see [`SimulationConfig::seed`]); one run gives the same
///   signal bit for bit whatever the number of threads.
///
/// ```
/// use nalgebra::Point3;
/// use radar_sim::{
///     ElementPattern, FrequencySweep, PointScatterer, Qar50, Scene, SimulationConfig,
///     Simulator, SPEED_OF_LIGHT,
/// };
///
/// // One point target 30 cm in front of the QAR50, no noise.
/// let config = SimulationConfig {
///     snr_db: None,
///     pattern: ElementPattern::Isotropic,
///     ..SimulationConfig::default()
/// };
/// let array = Qar50::new();
/// let simulator = Simulator::new(&array, FrequencySweep::qar50(), config)?;
/// let target = Point3::new(0.0, 0.0, 0.3);
/// let report = simulator.simulate(&Scene::from_points([PointScatterer::new(target, 1e-4)?]))?;
///
/// // Channel (0, 0) at the first frequency: σ/(d_t·d_r)·exp(−j2πf(d_t + d_r)/c).
/// use radar_sim::ArrayGeometry;
/// let (d_t, d_r) = ((array.tx()[0] - target).norm(), (array.rx()[0] - target).norm());
/// let f = 72e9;
/// let expected = num_complex::Complex64::from_polar(
///     1e-4 / (d_t * d_r),
///     -2.0 * std::f64::consts::PI * f * (d_t + d_r) / SPEED_OF_LIGHT,
/// );
/// let s = report.cube.data()[[0, 0, 0]];
/// approx::assert_relative_eq!(s.re as f64, expected.re, epsilon = 1e-5 * expected.norm());
/// approx::assert_relative_eq!(s.im as f64, expected.im, epsilon = 1e-5 * expected.norm());
/// # Ok::<(), radar_sim::RadarError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Simulator {
    tx: Vec<Point3<f64>>,
    rx: Vec<Point3<f64>>,
    mask: Option<ChannelMask>,
    centre: Point3<f64>,
    sweep: FrequencySweep,
    config: SimulationConfig,
}

/// The signal and what went into it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationReport {
    /// s(t, r, f), complex f32, `[tx, rx, frequency]`.
    pub cube: SignalCube,
    /// Counts and powers.
    pub stats: SimulationStats,
}

/// What a simulation used and dropped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimulationStats {
    /// How the sum was evaluated.
    pub method: SumMethod,
    /// Hits sampled on the surfaces, before the visibility test.
    pub hits_sampled: usize,
    /// Hits hidden from the array centre, dropped.
    pub hits_hidden: usize,
    /// Hits in the sum (the visible ones).
    pub hits_used: usize,
    /// Facets of the converged model's coherent part in the sum.
    pub facets_used: usize,
    /// Facets hidden from the array centre, dropped.
    pub facets_hidden: usize,
    /// Diffuse cells of the converged model in the sum.
    pub diffuse_used: usize,
    /// Diffuse cells hidden from the array centre, dropped.
    pub diffuse_hidden: usize,
    /// Point scatterers in the sum.
    pub points_used: usize,
    /// Point scatterers hidden behind a surface, dropped.
    pub points_hidden: usize,
    /// Degenerate triangles (repeated corners or zero area), skipped.
    pub degenerate_triangles: usize,
    /// Area of the non-degenerate triangles (m²).
    pub surface_area_m2: f64,
    /// Mean spacing of the sampled hits, √(area/hits) (m).
    pub hit_spacing_m: f64,
    /// Mean |s|² over the working channels before noise.
    pub signal_power: f64,
    /// E|n|² of the added noise per sample (0 without noise).
    pub noise_power: f64,
}

impl Simulator {
    /// Validates the array ([`validate_array`](crate::validate_array)) and the settings
    /// ([`SimulationConfig::validate`]) and keeps a copy of the element positions.
    pub fn new(
        array: &dyn ArrayGeometry,
        sweep: FrequencySweep,
        config: SimulationConfig,
    ) -> Result<Self> {
        validate_array(array)?;
        config.validate()?;
        Ok(Self {
            tx: array.tx().to_vec(),
            rx: array.rx().to_vec(),
            mask: array.channel_mask().cloned(),
            centre: array.centre(),
            sweep,
            config,
        })
    }

    /// The settings.
    pub fn config(&self) -> &SimulationConfig {
        &self.config
    }

    /// The sweep.
    pub fn sweep(&self) -> &FrequencySweep {
        &self.sweep
    }

    /// Samples the scene: hits on its surfaces (see [`SimulationConfig::hits`]) and the
    /// visibility of hits and points. Deterministic for a seed. Fails if the scene does not lie
    /// in front of the array (every z above the array's) or the simulation would need more
    /// than [`SimulationConfig::memory_limit_bytes`].
    pub fn sample(&self, scene: &Scene) -> Result<SceneSample> {
        scene.check_in_front(self.array_z())?;
        let (triangles, degenerate) = scene.triangles();
        let area: f64 = triangles.iter().map(|t| t.area).sum();
        let hits_for_area = if triangles.is_empty() {
            0.0
        } else {
            self.config.hits.hits_for_area(area)
        };
        let points = scene.points().len() as f64;
        let centre = self.centre;
        match &self.config.surface {
            SurfaceModel::Sampled => {
                self.check_memory(hits_for_area + points, triangles.len())?;
                let plan = SamplePlan {
                    hits: hits_for_area as usize,
                    seed: self.config.seed,
                    roughness_m: self.config.roughness_m,
                    taper: None,
                    facets: None,
                    diffuse: None,
                };
                Ok(sample_scene(scene, &triangles, degenerate, centre, &plan))
            }
            SurfaceModel::Converged(surface) => {
                let facets = match surface.coherent {
                    CoherentIntegral::Facets { max_edge_m } => {
                        Some((self.facet_edge_m(max_edge_m), self.aperture()))
                    }
                    CoherentIntegral::Hits => None,
                };
                let hits = if facets.is_some() { 0.0 } else { hits_for_area };
                let n_facets = facets.map_or(0.0, |(e, _)| facet_count(&triangles, e));
                let cells = area / surface.correlation_length_m.powi(2);
                self.check_memory(hits + n_facets + cells + points, triangles.len())?;
                let taper = Taper::new(scene, &triangles, surface.boundary_taper_m);
                let plan = SamplePlan {
                    hits: hits as usize,
                    seed: self.config.seed,
                    roughness_m: 0.0,
                    taper: Some(&taper),
                    facets,
                    diffuse: Some((
                        surface,
                        self.config.surface_seed,
                        diffuse_cell_weight(
                            surface.correlation_length_m,
                            self.config.material.exponent,
                            self.sweep.centre_wavelength(),
                        ),
                    )),
                };
                Ok(sample_scene(scene, &triangles, degenerate, centre, &plan))
            }
        }
    }

    /// The longest facet edge used (m): the configured one, or shorter where the facets' phase
    /// spread could pass 8 rad (the f32 series' limit) while their lobe is still above the
    /// floor: r = k·|q·ρ| ≤ k_max·2·sin θ_cut·(2/3)·edge, θ_cut where cos^{n_s}θ falls to 1e-3
    /// (docs/physics.md §3.5). 7.1 mm at 82 GHz with n_s = 50, so the default 6 mm applies.
    pub fn facet_edge_m(&self, configured_m: f64) -> f64 {
        let k_max = 2.0 * std::f64::consts::PI * self.sweep.stop_hz() / SPEED_OF_LIGHT;
        let cut = Aperture::lobe_cut_rad(self.config.material.exponent);
        let spread_limit = MAX_PHASE_SPREAD as f64 / (k_max * 2.0 * cut.sin() * (2.0 / 3.0));
        configured_m.min(spread_limit)
    }

    /// The elements' bounding rectangle in the array plane and the lobe cut.
    fn aperture(&self) -> Aperture {
        let (mut low, mut high) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        for p in self.tx.iter().chain(&self.rx) {
            for (axis, v) in [p.x, p.y].into_iter().enumerate() {
                low[axis] = low[axis].min(v);
                high[axis] = high[axis].max(v);
            }
        }
        Aperture {
            low,
            high,
            z: self.array_z(),
            cut_rad: Aperture::lobe_cut_rad(self.config.material.exponent),
        }
    }

    /// Samples and simulates a scene.
    pub fn simulate(&self, scene: &Scene) -> Result<SimulationReport> {
        self.simulate_sample(&self.sample(scene)?)
    }

    /// Simulates an already sampled scene (for instance to evaluate one sample with both
    /// [`SumMethod`]s). Its hits must be finite, in front of the array, with unit normals.
    pub fn simulate_sample(&self, sample: &SceneSample) -> Result<SimulationReport> {
        let sources = sample.hits.len() + sample.facets.len() + sample.diffuse.len();
        self.check_memory((sources + sample.points.len()) as f64, 0)?;
        let channels = self.channels();
        let sources = self.sources(sample)?;
        let sets = sources.sets();
        let mut signal = match self.config.method {
            SumMethod::Direct => kernel::direct::simulate(&channels, &sets),
            SumMethod::Fast => {
                let sets: Vec<fast::SourceSet> = (sets.iter())
                    .map(|(s, r)| fast::SourceSet::new(&channels, s, r.as_ref()))
                    .collect();
                let mut out = vec![Complex32::new(0.0, 0.0); self.n_samples()];
                fast::simulate(&channels, &sets, &mut out);
                out
            }
        };
        let signal_power = mean_power(&channels, &signal);
        let noise_power = match self.config.snr_db {
            Some(snr_db) => signal_power / 10f64.powf(snr_db / 10.0),
            None => 0.0,
        };
        add_noise(&channels, &mut signal, noise_power, self.config.seed);
        apply_mask(&channels, &mut signal);
        let shape = (self.tx.len(), self.rx.len(), self.sweep.steps());
        let data = Array3::from_shape_vec(shape, signal).map_err(|e| RadarError::Shape {
            what: "simulated signal [tx, rx, frequency]",
            expected: format!("{shape:?}"),
            actual: e.to_string(),
        })?;
        Ok(SimulationReport {
            cube: SignalCube::new(data),
            stats: SimulationStats {
                method: self.config.method,
                hits_sampled: sample.hits_sampled,
                hits_hidden: sample.hits_hidden,
                hits_used: sample.hits.len(),
                facets_used: sample.facets.len(),
                facets_hidden: sample.facets_hidden,
                diffuse_used: sample.diffuse.len(),
                diffuse_hidden: sample.diffuse_hidden,
                points_used: sample.points.len(),
                points_hidden: sample.points_hidden,
                degenerate_triangles: sample.degenerate_triangles,
                surface_area_m2: sample.surface_area_m2,
                hit_spacing_m: sample.hit_spacing_m(),
                signal_power,
                noise_power,
            },
        })
    }

    /// Bytes of working memory for `sources` hits and points and `triangles` triangles, by the
    /// chosen method (the signal cube included). f64: absurd requests must not overflow.
    /// The sample's sources as the kernels see them, checked, with their reflectances.
    pub(crate) fn sources(&self, sample: &SceneSample) -> Result<SourceSets> {
        let sources = |items: &[Hit]| items.iter().map(Source::from).collect::<Vec<Source>>();
        let (hits, diffuse) = (sources(&sample.hits), sources(&sample.diffuse));
        let facets: Vec<Source> = sample.facets.iter().map(Source::from).collect();
        let points: Vec<Source> = sample.points.iter().map(Source::from).collect();
        self.check_sources("hit", &hits)?;
        self.check_sources("facet", &facets)?;
        self.check_sources("diffuse cell", &diffuse)?;
        let material = &self.config.material;
        // The sampled model integrates the whole material coherently; the converged one only
        // its specular part, the diffuse part being the cells'.
        let coherent = match self.config.surface {
            SurfaceModel::Sampled => Reflectance::of(material),
            SurfaceModel::Converged(_) => Reflectance::specular(material),
        };
        Ok(SourceSets {
            hits,
            facets,
            diffuse,
            points,
            coherent,
            incoherent: Reflectance::diffuse(material),
        })
    }

    fn estimated_bytes(&self, sources: f64, triangles: usize) -> f64 {
        let per_source = std::mem::size_of::<Hit>() + 2 * std::mem::size_of::<Source>();
        let tables = match self.config.method {
            SumMethod::Direct => 0.0,
            SumMethod::Fast => {
                (self.tx.len() + self.rx.len()) as f64 * fast::BYTES_PER_ELEMENT_SOURCE as f64
            }
        };
        // The visibility grid holds about 4 entries of (index, box) per triangle.
        let per_triangle = (std::mem::size_of::<crate::scene::Triangle>() + 64) as f64;
        let cube = (self.n_samples() * std::mem::size_of::<Complex32>()) as f64;
        sources * (per_source as f64 + tables) + triangles as f64 * per_triangle + cube
    }

    fn check_memory(&self, sources: f64, triangles: usize) -> Result<()> {
        let needed = self.estimated_bytes(sources, triangles);
        if needed > self.config.memory_limit_bytes as f64 {
            return Err(RadarError::Memory {
                what: "simulation (hits and points, per-element tables, signal cube)",
                needed_bytes: needed.min(u64::MAX as f64) as u64,
                limit_bytes: self.config.memory_limit_bytes,
            });
        }
        Ok(())
    }

    /// The largest z of any element (m): scenes must lie above it.
    fn array_z(&self) -> f64 {
        self.tx
            .iter()
            .chain(&self.rx)
            .map(|p| p.z)
            .fold(f64::MIN, f64::max)
    }

    /// Hits, facets and cells given from outside (their fields are public) are checked before
    /// use: finite, in front of the array, with a unit normal.
    fn check_sources(&self, what: &str, sources: &[Source]) -> Result<()> {
        let array_z = self.array_z();
        let bad = |s: &Source| {
            let normal = s.normal.unwrap_or_default();
            let offsets = s.offsets.unwrap_or_default();
            let finite = (s.position.coords.iter())
                .chain(normal.iter())
                .chain(offsets.iter().flat_map(|o| o.iter()))
                .all(|v| v.is_finite())
                && s.weight.is_finite()
                && s.roughness_m.is_finite();
            !(finite && s.position.z > array_z && (normal.norm() - 1.0).abs() < 1e-6)
        };
        match sources.iter().position(bad) {
            None => Ok(()),
            Some(i) => Err(RadarError::config(
                "scene sample",
                format!(
                    "{what} {i} ({:?}) is not finite, not in front of the array (z > {array_z} m) \
                     or has no unit normal",
                    sources[i]
                ),
            )),
        }
    }

    pub(crate) fn n_samples(&self) -> usize {
        self.tx.len() * self.rx.len() * self.sweep.steps()
    }

    pub(crate) fn channels(&self) -> Channels<'_> {
        Channels {
            tx: &self.tx,
            rx: &self.rx,
            mask: self.mask.as_ref(),
            sweep: &self.sweep,
            pattern: &self.config.pattern,
        }
    }
}

/// One-shot simulation: [`Simulator::new`] then [`Simulator::simulate`].
pub fn simulate(
    array: &dyn ArrayGeometry,
    sweep: FrequencySweep,
    scene: &Scene,
    config: SimulationConfig,
) -> Result<SimulationReport> {
    Simulator::new(array, sweep, config)?.simulate(scene)
}

/// A sample's sources as the kernels see them, with the reflectance of each set.
pub(crate) struct SourceSets {
    pub hits: Vec<Source>,
    pub facets: Vec<Source>,
    pub diffuse: Vec<Source>,
    pub points: Vec<Source>,
    pub coherent: Reflectance,
    pub incoherent: Reflectance,
}

impl SourceSets {
    /// The sets with their reflectance (`None`: isotropic points); sets whose reflectance is 0
    /// (m = 0 or 1) add nothing and are left out.
    pub fn sets(&self) -> Vec<(&[Source], Option<Reflectance>)> {
        [
            (&self.hits[..], Some(self.coherent)),
            (&self.facets[..], Some(self.coherent)),
            (&self.diffuse[..], Some(self.incoherent)),
            (&self.points[..], None),
        ]
        .into_iter()
        .filter(|(s, r)| !s.is_empty() && r.is_none_or(|r| r.diffuse != 0.0 || r.specular != 0.0))
        .collect()
    }
}
