//! The physics renderer: face model → placed mesh → radar-sim → backproject → images.
//! Exact (up to the simulator's documented approximations) and slow; not differentiable.

use backproject::{BackProjector, ImageProducts, Volume, VoxelGrid};
use candle_core::{Device, Tensor};
use morphable::{Mesh, MorphableModel, Placement};
use radar_sim::{
    ArrayGeometry, ElementPattern, Material, Scene, SimulationConfig, SimulationReport, Simulator,
    Surface,
};

use super::Renderer;
use crate::dataset::{InputKind, write_input_image};
use crate::{AbsFitError, FaceParams, ImagingConfig, ParamLayout, Result};

/// The closest a face may come to the array plane (m): well inside the near field of the
/// ±7 cm aperture; the presets place faces 25 cm away.
pub const MIN_DISTANCE_M: f64 = 0.05;

/// Renders faces of any [`MorphableModel`] with any array of [`ImagingConfig`].
///
/// As a [`Renderer`], row b of the parameters is simulated with seed `seed + b` and imaged
/// with the dynamic range in its own D column.
pub struct PhysicsRenderer<M> {
    model: M,
    placement: Placement,
    layout: ParamLayout,
    imaging: ImagingConfig,
    array: Box<dyn ArrayGeometry>,
    output: InputKind,
    seed: u64,
}

impl<M: MorphableModel> PhysicsRenderer<M> {
    /// A renderer of `model`'s faces described by `layout`, imaged as `imaging` says; it
    /// outputs amplitude images until [`PhysicsRenderer::with_output`] says otherwise.
    pub fn new(model: M, layout: ParamLayout, imaging: ImagingConfig) -> Result<Self> {
        layout.validate()?;
        imaging.validate()?;
        let placement = Placement::for_mean_mesh(&model.mean_mesh()?, imaging.distance_m)?;
        let array = imaging.array.build()?;
        Ok(Self {
            model,
            placement,
            layout,
            imaging,
            array,
            output: InputKind::Amplitude,
            seed: 0,
        })
    }

    /// The same renderer producing `output` images.
    pub fn with_output(mut self, output: InputKind) -> Self {
        self.output = output;
        self
    }

    /// The same renderer imaging through `array` instead of the one [`ImagingConfig::array`]
    /// names: any [`ArrayGeometry`], e.g. a downstream user's own. (Datasets record the
    /// config's array in their manifests, so dataset generation keeps to `ArraySpec`.)
    pub fn with_array(mut self, array: Box<dyn ArrayGeometry>) -> Result<Self> {
        radar_sim::validate_array(array.as_ref())?;
        self.array = array;
        Ok(self)
    }

    /// The same renderer with base seed `seed` for [`Renderer::render`].
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The face model.
    pub fn model(&self) -> &M {
        &self.model
    }
    /// Where faces sit in front of the array.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }
    /// The imaging settings.
    pub fn imaging(&self) -> &ImagingConfig {
        &self.imaging
    }
    /// The voxel grid.
    pub fn grid(&self) -> &VoxelGrid {
        &self.imaging.grid
    }
    /// The parameter layout.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }
    /// The array.
    pub fn array(&self) -> &dyn ArrayGeometry {
        self.array.as_ref()
    }

    /// The face mesh in model space (mm).
    pub fn model_mesh(&self, face: &FaceParams) -> Result<Mesh> {
        Ok(self.model.instance(&face.shape, &face.expression)?)
    }

    /// The face mesh placed in radar space (m). Errors: coefficients beyond
    /// ±[`MAX_COEFFICIENT_SD`](crate::params::MAX_COEFFICIENT_SD), a pose outside its ranges
    /// ([`Pose::validate`](morphable::Pose::validate)), or a face closer than
    /// [`MIN_DISTANCE_M`] to the array plane.
    pub fn placed_mesh(&self, face: &FaceParams) -> Result<Mesh> {
        crate::params::check_coefficients(&face.shape, &face.expression)?;
        face.pose.validate()?;
        let mesh = self.placement.place(&self.model_mesh(face)?, &face.pose);
        let nearest = mesh
            .vertices
            .iter()
            .map(|v| v.z)
            .fold(f64::INFINITY, f64::min);
        if !(MIN_DISTANCE_M..).contains(&nearest) {
            return Err(AbsFitError::config(
                "face placement",
                format!(
                    "the face's nearest point is {:.1} mm from the array plane; it must be at \
                     least {:.0} mm away (translation {:?} m)",
                    nearest * 1e3,
                    MIN_DISTANCE_M * 1e3,
                    face.pose.translation.as_slice()
                ),
            ));
        }
        Ok(mesh)
    }

    /// The simulation settings of one face: its material and antenna size, and the sampling
    /// and surface seeds. Predicted parameters may stray outside the physical ranges: they are
    /// clamped.
    fn face_simulation(
        &self,
        face: &FaceParams,
        sampling_seed: u64,
        surface_seed: u64,
    ) -> Result<SimulationConfig> {
        let base = self.imaging.simulation;
        Ok(SimulationConfig {
            material: Material::with_exponent(
                face.render.material.clamp(0.0, 1.0),
                base.material.exponent,
            )?,
            pattern: ElementPattern::sinc(face.render.antenna_cm.max(0.0))?,
            seed: sampling_seed,
            surface_seed,
            ..base
        })
    }

    /// Everything about one face's rendering: the signal, the volume and the (pooled) images.
    /// `seed` is both the sampling seed and the surface seed (their random streams are
    /// independent): datasets draw one per sample.
    pub fn render_face(&self, face: &FaceParams, seed: u64) -> Result<Rendering> {
        self.render_face_seeded(face, seed, seed)
    }

    /// [`PhysicsRenderer::render_face`] with the two seeds apart: `sampling_seed` (numerical
    /// sampling and noise) and `surface_seed` (the diffuse field's realisation, the physical
    /// speckle; docs/physics.md §3.4).
    pub fn render_face_seeded(
        &self,
        face: &FaceParams,
        sampling_seed: u64,
        surface_seed: u64,
    ) -> Result<Rendering> {
        let mesh = self.placed_mesh(face)?;
        let scene = Scene::from_surface(Surface::new(mesh.vertices, mesh.triangles)?);
        self.imaging.image_scene(
            self.array.as_ref(),
            &scene,
            self.face_simulation(face, sampling_seed, surface_seed)?,
        )
    }

    /// The expected images of one face over realisations of its diffuse field
    /// (docs/physics.md §3.4): the root-mean-square volume over the surface seeds
    /// `surface_seeds`, an unbiased estimate of E|V|² per voxel that becomes exact as the
    /// number of seeds grows, then its level and depth images (pooled as the imaging config
    /// says). One seed gives that rendering's own images. Errors: no seeds, or as
    /// [`PhysicsRenderer::render_face_seeded`].
    pub fn expected_products(
        &self,
        face: &FaceParams,
        sampling_seed: u64,
        surface_seeds: std::ops::Range<u64>,
    ) -> Result<ImageProducts> {
        let count = surface_seeds.end.saturating_sub(surface_seeds.start);
        if count == 0 {
            return Err(AbsFitError::config(
                "expected image",
                "needs at least one surface seed",
            ));
        }
        let mut power: Option<ndarray::Array3<f32>> = None;
        for seed in surface_seeds {
            let volume = self.render_face_seeded(face, sampling_seed, seed)?.volume;
            let this = volume.data().mapv(|v| v.norm_sqr());
            power = Some(match power {
                Some(sum) => sum + this,
                None => this,
            });
        }
        let mean = power
            .expect("at least one seed")
            .mapv(|p| num_complex::Complex32::new((p / count as f32).sqrt(), 0.0));
        let volume = Volume::new(self.imaging.grid, mean)?;
        Ok(ImageProducts::from_volume(&volume)?.max_pooled(self.imaging.pool)?)
    }

    /// The dB level and depth images of one face, before any dynamic range is applied,
    /// pooled as the imaging config says.
    pub fn image_products(&self, face: &FaceParams, seed: u64) -> Result<ImageProducts> {
        Ok(self.render_face(face, seed)?.products)
    }
}

/// One scene rendered: the signal, the back-projected volume and the image products.
#[derive(Debug, Clone)]
pub struct Rendering {
    /// The simulated signal and its statistics.
    pub report: SimulationReport,
    /// The complex volume on the imaging grid.
    pub volume: Volume,
    /// Level (dB) and depth (m) images, pooled as the imaging config says.
    pub products: ImageProducts,
}

impl ImagingConfig {
    /// Simulates `scene` with `array` and `simulation`, back-projects onto the config's grid
    /// and makes the images: any scene (a face or point targets) and any array — usually the
    /// one [`ImagingConfig::array`] builds.
    pub fn image_scene(
        &self,
        array: &dyn ArrayGeometry,
        scene: &Scene,
        simulation: SimulationConfig,
    ) -> Result<Rendering> {
        let report = Simulator::new(array, self.sweep, simulation)?.simulate(scene)?;
        let volume =
            self.backprojection
                .back_project(array, &self.sweep, &report.cube, &self.grid)?;
        let products = ImageProducts::from_volume(&volume)?.max_pooled(self.pool)?;
        Ok(Rendering {
            report,
            volume,
            products,
        })
    }
}

impl<M: MorphableModel> Renderer for PhysicsRenderer<M> {
    fn name(&self) -> &str {
        "physics"
    }

    fn render(&self, params: &Tensor) -> Result<Tensor> {
        let rows: Vec<Vec<f32>> = params.to_dtype(candle_core::DType::F32)?.to_vec2()?;
        let (c, h, w) = self.image_shape();
        let (z_near, z_far) = self.imaging.depth_range_m();
        let mut images = vec![0.0f32; rows.len() * c * h * w];
        for (b, (row, out)) in rows.iter().zip(images.chunks_mut(c * h * w)).enumerate() {
            let face = self.layout.from_vector(row)?;
            let products = self.image_products(&face, self.seed.wrapping_add(b as u64))?;
            write_input_image(
                products.level_db().db().view(),
                products.depth_m().depth_m().view(),
                self.output,
                (face.render.dynamic_range_db as f32).max(1.0),
                (z_near, z_far),
                out,
            )?;
        }
        Ok(Tensor::from_vec(
            images,
            (rows.len(), c, h, w),
            &Device::Cpu,
        )?)
    }

    fn is_differentiable(&self) -> bool {
        false
    }

    fn image_shape(&self) -> (usize, usize, usize) {
        let (h, w) = self.imaging.image_shape();
        (self.output.channels(), h, w)
    }
}
