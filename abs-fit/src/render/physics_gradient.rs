//! The differentiable physics renderer: the physics itself with exact gradients to every
//! parameter column (docs/physics.md §3.6 and §4.5).
//!
//! Forward, per row: coefficients → vertices (linear) → pose → the converged model's facets and
//! diffuse cells → the noise-free signal (the fast kernel by default, or its model summed term
//! by term in `f64`, [`Simulator::clean_signal`]: [`DifferentiablePhysicsRenderer::with_kernel`])
//! → the back-projection at the voxels the images read → level (dB) and depth → the input
//! channels (amplitude clip((L + D)/D, 0, 1), normalised depth where L ≥ −D). Which voxels the
//! images read, and every discrete choice of the simulation (visibility, culls, facet splits,
//! diffuse cells), are recorded from one pass ([`RenderChoices`]) and held: the images are then
//! smooth in the parameters, and the backward pass is their exact gradient (the subgradient of
//! the maxima and clamps). Between fitting steps the choices are recorded again.
//!
//! Backward: channel gradients → level and depth gradients → voxel cotangents
//! ([`ImageTape::backward`]) → signal cotangent ([`SparseProjection::adjoint`]) → vertex,
//! material and antenna gradients ([`Simulator::gradient_with`]: the fast kernel's f32 adjoint,
//! or the exact one) → the scaled columns through the pose and the linear model. D's column
//! gets ∂A/∂D = −L/D² on unclipped amplitude pixels.
//!
//! Cost (docs/physics.md §3.6): with the fast kernel, one render plus gradient at the `cpu`
//! preset's imaging takes well under a second on two cores; the exact kernel costs
//! O(N_t·N_r·N_f·N_sources) scalar `f64` terms, 5× (small imaging) to ~20× (`cpu` imaging)
//! more, and serves checks.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use backproject::{BackProjector, ImageTape, SparseProjection, Volume};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};
use morphable::{LinearMorphableModel, Mesh};
use nalgebra::Vector3;
use ndarray::{Array2, Array3};
use num_complex::{Complex32, Complex64};
use radar_sim::{
    ArrayGeometry, ElementPattern, GradientKernel, Material, Scene, SceneSample, SignalCube,
    SimulationConfig, Simulator, Surface,
};
use rayon::prelude::*;

use super::Renderer;
use super::depth_raster::{storage_f64, storage_of, to_candle};
use super::geometry::{DecodedFace, FaceGeometry};
use crate::dataset::{Dataset, Fnv1a, InputKind};
use crate::{AbsFitError, ImagingConfig, ParamGroup, ParamLayout, RenderParams, Result};

/// Renders faces of a linear model through the physics, differentiably (see the module
/// documentation). As a [`Renderer`], row b is simulated without noise with the seeds
/// `seed + b·K .. seed + (b + 1)·K` (sampling and surface; K realisations, 1 by default), or
/// with seeds drawn from its values ([`DifferentiablePhysicsRenderer::with_redrawn_speckle`]),
/// and imaged with the dynamic range of its own D column.
///
/// With K > 1 realisations each row's images are those of the root-mean-square volume over K
/// realisations of the diffuse field, the estimate of the expected image
/// ([`crate::PhysicsRenderer::expected_products`], docs/physics.md §3.4): the renderer's own
/// speckle averages out, at K times the cost.
pub struct DifferentiablePhysicsRenderer<M> {
    model: M,
    core: Arc<PhysicsCore>,
    seed: u64,
    kernel: GradientKernel,
    realisations: usize,
    redraw: bool,
}

/// What the op needs, shared by the renderer and its ops.
struct PhysicsCore {
    geometry: FaceGeometry,
    imaging: ImagingConfig,
    array: Box<dyn ArrayGeometry>,
    output: InputKind,
    height: usize,
    width: usize,
}

/// The discrete choices of one row's rendering, held while its gradient is taken: each
/// realisation's simulation sample (which facets and cells, where) and which voxels the images
/// read.
#[derive(Debug, Clone)]
pub struct RenderChoices {
    samples: Vec<SceneSample>,
    tape: ImageTape,
    projection: SparseProjection,
}

/// One row evaluated with held choices.
struct Evaluation {
    face: DecodedFace,
    placed: Mesh,
    scene: Scene,
    simulator: Simulator,
    samples: Vec<SceneSample>,
    /// The taped voxels of each realisation.
    values: Vec<Vec<Complex64>>,
    /// The taped voxels the images read: the one realisation's, or the root mean square over
    /// the realisations (real).
    combined: Vec<Complex64>,
    level_db: Array2<f64>,
    depth_m: Array2<f64>,
    render: RenderParams,
}

impl<M: LinearMorphableModel> DifferentiablePhysicsRenderer<M> {
    /// A renderer of `model`'s faces described by `layout`, imaged as `imaging` says, producing
    /// `output` images. The simulation must use the converged surface model with facets (the
    /// default), and the back-projection the direct or range-compressed method.
    pub fn new(
        model: M,
        layout: ParamLayout,
        imaging: ImagingConfig,
        output: InputKind,
    ) -> Result<Self> {
        layout.validate()?;
        imaging.validate()?;
        let geometry = FaceGeometry::new(&model, layout, imaging.distance_m, "physics gradient")?;
        let array = imaging.array.build()?;
        let (height, width) = imaging.image_shape();
        Ok(Self {
            model,
            core: Arc::new(PhysicsCore {
                geometry,
                imaging,
                array,
                output,
                height,
                width,
            }),
            seed: 0,
            kernel: GradientKernel::default(),
            realisations: 1,
            redraw: false,
        })
    }

    /// A renderer of `model`'s faces on `dataset`'s layout and imaging, producing `output`
    /// images, as fits of its faces and the physics-decoder autoencoder use it. Errors: a
    /// dataset whose imaging the renderer cannot differentiate.
    pub fn for_dataset(model: M, dataset: &Dataset, output: InputKind) -> Result<Self> {
        let imaging = dataset.config()?.imaging;
        Self::new(model, dataset.manifest().layout, imaging, output)
    }

    /// The same renderer imaging each row as the expected image over `k` realisations of the
    /// diffuse field (see the type's documentation). Errors: `k` = 0.
    pub fn with_realisations(mut self, k: usize) -> Result<Self> {
        if k == 0 {
            return Err(AbsFitError::config(
                "physics renderer realisations",
                "must be at least 1",
            ));
        }
        self.realisations = k;
        Ok(self)
    }

    /// The number of realisations of the diffuse field each row's images average.
    pub fn realisations(&self) -> usize {
        self.realisations
    }

    /// The same renderer drawing each row's realisations of the diffuse field from the row's
    /// own values when `redraw` is true: [`Renderer::render`]'s seeds become
    /// `seed + h(row) ..`, with h the FNV-1a hash of the row's values. A render is still a
    /// function of its parameters alone, but parameters that differ in any column render other
    /// speckle. A fit then meets a new realisation at every step, so its steps follow the
    /// gradient of the loss's expectation over realisations (a stochastic gradient), and no
    /// step can line the renderer's speckle up with the target's (docs/physics.md §4.5).
    pub fn with_redrawn_speckle(mut self, redraw: bool) -> Self {
        self.redraw = redraw;
        self
    }

    /// Whether each row's realisations are drawn from its values
    /// ([`DifferentiablePhysicsRenderer::with_redrawn_speckle`]).
    pub fn redraws_speckle(&self) -> bool {
        self.redraw
    }

    /// The same renderer with `kernel` for the signal and its gradient: the fast kernel and its
    /// f32 adjoint (the default), or the exact `f64` sum and its term-by-term adjoint
    /// ([`Simulator::clean_signal`], [`Simulator::gradient`]), for checks against central
    /// differences. The fast forward skips whole lane chunks below the lobe floor where the
    /// adjoint differentiates a smooth window (docs/physics.md §3.6): they differ by ~1e-4.
    pub fn with_kernel(mut self, kernel: GradientKernel) -> Self {
        self.kernel = kernel;
        self
    }

    /// The same renderer with base seed `seed` for [`Renderer::render`].
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The same renderer drawing another, independent realisation of the diffuse field: its
    /// base seed moved by [`DifferentiablePhysicsRenderer::OTHER_REALISATION`], far from every
    /// seed this one draws (its base plus a row's place times K, or plus a row's hash, which
    /// is spread over all 64 bits), for paired fits ([`crate::PairedRenderer`]).
    pub fn other_realisation(&self) -> Self
    where
        M: Clone,
    {
        Self {
            model: self.model.clone(),
            core: Arc::clone(&self.core),
            seed: self.seed.wrapping_add(Self::OTHER_REALISATION),
            kernel: self.kernel,
            realisations: self.realisations,
            redraw: self.redraw,
        }
    }

    /// The base-seed offset of [`DifferentiablePhysicsRenderer::other_realisation`]: 2⁴⁰.
    pub const OTHER_REALISATION: u64 = 1 << 40;

    /// The face model.
    pub fn model(&self) -> &M {
        &self.model
    }
    /// The parameter layout.
    pub fn layout(&self) -> &ParamLayout {
        &self.core.geometry.layout
    }
    /// The imaging settings.
    pub fn imaging(&self) -> &ImagingConfig {
        &self.core.imaging
    }
    /// The kind of images it renders.
    pub fn output(&self) -> InputKind {
        self.core.output
    }

    /// Records the discrete choices of rendering scaled row `row` (P columns) with the seeds
    /// `seed .. seed + K` (sampling and surface; K realisations).
    pub fn record(&self, row: &[f64], seed: u64) -> Result<RenderChoices> {
        Ok(self.core.record(row, self.seeds(seed), self.kernel)?.0)
    }

    /// The seeds of the realisations starting at `seed`.
    fn seeds(&self, seed: u64) -> std::ops::Range<u64> {
        seed..seed.wrapping_add(self.realisations as u64)
    }

    /// The images (C × H × W, row-major) of `row` with `choices` held.
    pub fn images_with(&self, row: &[f64], choices: &RenderChoices) -> Result<Vec<f64>> {
        let evaluation = self.core.evaluate(row, choices, self.kernel)?;
        Ok(self.core.channels(&evaluation))
    }

    /// The gradient by the P scaled columns of ⟨`grad_image`, images_with(row, choices)⟩.
    pub fn gradient_with(
        &self,
        row: &[f64],
        choices: &RenderChoices,
        grad_image: &[f64],
    ) -> Result<Vec<f64>> {
        let evaluation = self.core.evaluate(row, choices, self.kernel)?;
        (self.core).gradient_of(&evaluation, choices, grad_image, self.kernel)
    }
}

impl PhysicsCore {
    fn simulator(&self, render: &RenderParams, seed: u64) -> Result<Simulator> {
        let base = self.imaging.simulation;
        let config = SimulationConfig {
            material: Material::with_exponent(
                render.material.clamp(0.0, 1.0),
                base.material.exponent,
            )?,
            pattern: ElementPattern::sinc(render.antenna_cm.max(0.0))?,
            seed,
            surface_seed: seed,
            snr_db: None,
            ..base
        };
        Ok(Simulator::new(
            self.array.as_ref(),
            self.imaging.sweep,
            config,
        )?)
    }

    fn scene(&self, placed: &Mesh) -> Result<Scene> {
        Ok(Scene::from_surface(Surface::new(
            placed.vertices.clone(),
            placed.triangles.clone(),
        )?))
    }

    /// The choices of `row` with one realisation per seed of `seeds` (not empty), and the row
    /// evaluated with them.
    fn record(
        &self,
        row: &[f64],
        seeds: std::ops::Range<u64>,
        kernel: GradientKernel,
    ) -> Result<(RenderChoices, Evaluation)> {
        let face = self.geometry.decode(row)?;
        let placed = self.geometry.placed(&face);
        let render = self.geometry.layout.render(row);
        let scene = self.scene(&placed)?;
        let sweep = &self.imaging.sweep;
        let grid = &self.imaging.grid;
        let (n_tx, n_rx) = (self.array.tx().len(), self.array.rx().len());
        let (mut samples, mut signals, mut volumes) = (Vec::new(), Vec::new(), Vec::new());
        let mut simulator = None;
        for seed in seeds {
            let simulator = simulator.insert(self.simulator(&render, seed)?);
            let sample = simulator.sample(&scene)?;
            let signal = Self::signal(kernel, simulator, &sample)?;
            let cube = SignalCube::new(
                Array3::from_shape_vec(
                    (n_tx, n_rx, sweep.steps()),
                    (signal.iter())
                        .map(|s| Complex32::new(s.re as f32, s.im as f32))
                        .collect(),
                )
                .map_err(|e| AbsFitError::Shape {
                    what: "physics gradient signal",
                    expected: format!("{n_tx} × {n_rx} × {}", sweep.steps()),
                    actual: e.to_string(),
                })?,
            );
            volumes.push((self.imaging.backprojection).back_project(
                self.array.as_ref(),
                sweep,
                &cube,
                grid,
            )?);
            samples.push(sample);
            signals.push(signal);
        }
        // One realisation images its own volume, more the root mean square of theirs.
        let (volume, simulator) = match (volumes.len(), volumes.pop(), simulator) {
            (1, Some(one), Some(simulator)) => (one, simulator),
            (k, Some(last), Some(simulator)) => {
                let power = (volumes.iter()).fold(last.data().mapv(|x| x.norm_sqr()), |sum, v| {
                    sum + v.data().mapv(|x| x.norm_sqr())
                });
                let rms = power.mapv(|p| Complex32::new((p / k as f32).sqrt(), 0.0));
                (Volume::new(*grid, rms)?, simulator)
            }
            _ => {
                return Err(AbsFitError::config(
                    "physics renderer realisations",
                    "needs at least one seed",
                ));
            }
        };
        let tape = ImageTape::record(&volume, self.imaging.pool)?;
        let projection = SparseProjection::new(
            &self.imaging.backprojection,
            self.array.as_ref(),
            sweep,
            grid,
            tape.voxels(),
        )?;
        let values = (signals.iter())
            .map(|signal| projection.project(signal))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let combined = root_mean_square(&values);
        let images = tape.images(&combined)?;
        let evaluation = Evaluation {
            face,
            placed,
            scene,
            // Its seed only drew the choices, which are held from here on.
            simulator,
            samples: samples.clone(),
            values,
            combined,
            level_db: images.level_db,
            depth_m: images.depth_m,
            render,
        };
        let choices = RenderChoices {
            samples,
            tape,
            projection,
        };
        Ok((choices, evaluation))
    }

    /// The noise-free signal of `sample` by the core's kernel.
    fn signal(
        kernel: GradientKernel,
        simulator: &Simulator,
        sample: &SceneSample,
    ) -> Result<Vec<Complex64>> {
        Ok(match kernel {
            GradientKernel::Exact => simulator.clean_signal(sample)?,
            GradientKernel::Fast => (simulator.simulate_sample(sample)?.cube.data().iter())
                .map(|s| Complex64::new(s.re.into(), s.im.into()))
                .collect(),
        })
    }

    fn evaluate(
        &self,
        row: &[f64],
        choices: &RenderChoices,
        kernel: GradientKernel,
    ) -> Result<Evaluation> {
        let face = self.geometry.decode(row)?;
        let placed = self.geometry.placed(&face);
        let render = self.geometry.layout.render(row);
        let scene = self.scene(&placed)?;
        // The seed only drew the choices, which are held.
        let simulator = self.simulator(&render, 0)?;
        let samples = (choices.samples.iter())
            .map(|held| simulator.moved_sample(held, &scene))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let values = (samples.iter())
            .map(|sample| {
                let signal = Self::signal(kernel, &simulator, sample)?;
                Ok(choices.projection.project(&signal)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let combined = root_mean_square(&values);
        let images = choices.tape.images(&combined)?;
        Ok(Evaluation {
            face,
            placed,
            scene,
            simulator,
            samples,
            values,
            combined,
            level_db: images.level_db,
            depth_m: images.depth_m,
            render,
        })
    }

    /// D as the images use it (at least 1 dB), and whether it is clamped.
    fn dynamic_range(render: &RenderParams) -> (f64, bool) {
        let d = render.dynamic_range_db;
        (d.max(1.0), d < 1.0)
    }

    fn channels(&self, e: &Evaluation) -> Vec<f64> {
        let (d, _) = Self::dynamic_range(&e.render);
        let (z_near, z_far) = self.imaging.depth_range_m();
        let amplitude = e.level_db.iter().map(|l| ((l + d) / d).clamp(0.0, 1.0));
        let depth = (e.level_db.iter().zip(&e.depth_m)).map(|(l, z)| {
            if *l >= -d {
                (z_far - z) / (z_far - z_near)
            } else {
                0.0
            }
        });
        match self.output {
            InputKind::Amplitude => amplitude.collect(),
            InputKind::Depth => depth.collect(),
            InputKind::AmplitudeDepth => amplitude.chain(depth).collect(),
        }
    }

    /// The gradient by the scaled columns of ⟨`grad`, the images of `e`⟩.
    fn gradient_of(
        &self,
        e: &Evaluation,
        choices: &RenderChoices,
        grad: &[f64],
        kernel: GradientKernel,
    ) -> Result<Vec<f64>> {
        let hw = self.height * self.width;
        if grad.len() != self.output.channels() * hw {
            return Err(AbsFitError::Shape {
                what: "physics gradient image gradient",
                expected: format!("{} values", self.output.channels() * hw),
                actual: format!("{} values", grad.len()),
            });
        }
        let (d, d_clamped) = Self::dynamic_range(&e.render);
        let (z_near, z_far) = self.imaging.depth_range_m();
        let (g_amplitude, g_depth) = match self.output {
            InputKind::Amplitude => (Some(grad), None),
            InputKind::Depth => (None, Some(grad)),
            InputKind::AmplitudeDepth => (Some(&grad[..hw]), Some(&grad[hw..])),
        };
        let mut d_level = Array2::zeros(e.level_db.dim());
        let mut d_depth = Array2::zeros(e.level_db.dim());
        let mut d_range = 0.0;
        for (i, l) in e.level_db.iter().enumerate() {
            let (r, c) = (i / self.width, i % self.width);
            if let Some(g) = g_amplitude {
                let a = (l + d) / d;
                if a > 0.0 && a < 1.0 {
                    d_level[[r, c]] = g[i] / d;
                    d_range -= g[i] * l / (d * d);
                }
            }
            if let Some(g) = g_depth
                && *l >= -d
            {
                d_depth[[r, c]] = -g[i] / (z_far - z_near);
            }
        }
        let voxels = choices.tape.backward(&e.combined, &d_level, &d_depth)?;
        let k = e.values.len();
        let mut vertex_grad: Vec<Vector3<f64>> = Vec::new();
        let (mut d_material, mut d_antenna) = (0.0, 0.0);
        for (values, sample) in e.values.iter().zip(&e.samples) {
            // With a ∂ℓ/∂(real a) for a = √(Σ|v_i|²/K): v̄_i = ā · v_i / (K a).
            let cotangents: Cow<[Complex64]> = if k == 1 {
                Cow::Borrowed(&voxels)
            } else {
                (voxels.iter().zip(values).zip(&e.combined))
                    .map(|((g, v), a)| {
                        if a.re > 0.0 {
                            v * (g.re / (k as f64 * a.re))
                        } else {
                            Complex64::new(0.0, 0.0)
                        }
                    })
                    .collect()
            };
            let signal = choices.projection.adjoint(&cotangents)?;
            let scene_gradient = (e.simulator).gradient_with(kernel, &e.scene, sample, &signal)?;
            let this = &scene_gradient.vertices[0];
            if vertex_grad.is_empty() {
                vertex_grad.clone_from(this);
            } else {
                vertex_grad.iter_mut().zip(this).for_each(|(a, b)| *a += b);
            }
            d_material += scene_gradient.material;
            d_antenna += scene_gradient.antenna_size_cm;
        }
        let touched = vec![true; vertex_grad.len()];
        let mut out = (self.geometry).columns_gradient(&e.face, &e.placed, &vertex_grad, &touched);
        let layout = &self.geometry.layout;
        let [m_scale, s_scale, d_scale] = layout.render_scales();
        let render = layout.range(ParamGroup::Render);
        let m = e.render.material;
        if (0.0..=1.0).contains(&m) {
            out[render.start] = d_material * m_scale;
        }
        if e.render.antenna_cm >= 0.0 {
            out[render.start + 1] = d_antenna * s_scale;
        }
        if !d_clamped {
            out[render.start + 2] = d_range * d_scale;
        }
        Ok(out)
    }
}

/// FNV-1a 64 over the bits of a row's values: the seed offset of a redrawn row.
fn row_hash(row: &[f64]) -> u64 {
    let mut hash = Fnv1a::default();
    row.iter().for_each(|v| hash.write(&v.to_le_bytes()));
    hash.0
}

/// The voxels the images read: one realisation's own, or the root mean square of several
/// (real).
fn root_mean_square(values: &[Vec<Complex64>]) -> Vec<Complex64> {
    match values {
        [one] => one.clone(),
        _ => {
            let k = values.len() as f64;
            (0..values.first().map_or(0, Vec::len))
                .map(|v| {
                    let power: f64 = values.iter().map(|r| r[v].norm_sqr()).sum();
                    Complex64::new((power / k).sqrt(), 0.0)
                })
                .collect()
        }
    }
}

/// The candle op: (B, P) scaled parameters → (B, C, H, W) images, computed in f64 whatever the
/// dtype; the forward records each row's choices for the backward.
struct PhysicsOp {
    core: Arc<PhysicsCore>,
    /// The first seed of each row's realisations.
    seeds: Vec<u64>,
    kernel: GradientKernel,
    realisations: usize,
    /// Each row's choices and evaluation, from the forward pass.
    rows: Mutex<Vec<(RenderChoices, Evaluation)>>,
}

impl CustomOp1 for PhysicsOp {
    fn name(&self) -> &'static str {
        "physics-gradient"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let values = storage_f64(storage, layout)?;
        let core = &self.core;
        let p = core.geometry.layout.len();
        if !values.len().is_multiple_of(p) {
            candle_core::bail!(
                "physics gradient: {} values are not rows of {p}",
                values.len()
            );
        }
        if values.len() / p != self.seeds.len() {
            candle_core::bail!(
                "physics gradient: {} rows but {} seeds",
                values.len() / p,
                self.seeds.len()
            );
        }
        let rows: Vec<(RenderChoices, Evaluation)> = (values.par_chunks(p).zip(&self.seeds))
            .map(|(row, &start)| {
                let k = self.realisations as u64;
                core.record(row, start..start.wrapping_add(k), self.kernel)
            })
            .collect::<Result<_>>()
            .map_err(|e| to_candle("physics gradient", e))?;
        let b = rows.len();
        let images: Vec<f64> = rows.iter().flat_map(|(_, e)| core.channels(e)).collect();
        *self.rows.lock().expect("rows lock") = rows;
        let flat = images.into_iter();
        let out = storage_of(flat, storage.dtype());
        let c = core.output.channels();
        Ok((out, Shape::from((b, c, core.height, core.width))))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let core = &self.core;
        let grads = (grad_res.to_dtype(DType::F64)?.flatten_all()?).to_vec1::<f64>()?;
        let forward = self.rows.lock().expect("rows lock");
        let p = core.geometry.layout.len();
        let chw = core.output.channels() * core.height * core.width;
        if arg.elem_count() != forward.len() * p || grads.len() != forward.len() * chw {
            candle_core::bail!("physics gradient: the backward pass does not match the forward");
        }
        let rows: Vec<Vec<f64>> = (grads.par_chunks(chw).zip(forward.par_iter()))
            .map(|(g, (choices, e))| core.gradient_of(e, choices, g, self.kernel))
            .collect::<Result<_>>()
            .map_err(|e| to_candle("physics gradient", e))?;
        let grad =
            Tensor::from_vec(rows.concat(), arg.shape(), arg.device())?.to_dtype(arg.dtype())?;
        Ok(Some(grad))
    }
}

impl<M: LinearMorphableModel> Renderer for DifferentiablePhysicsRenderer<M> {
    fn name(&self) -> &str {
        "physics-gradient"
    }

    fn render(&self, params: &Tensor) -> Result<Tensor> {
        let k = self.realisations as u64;
        let seeds = if self.redraw && params.rank() == 2 {
            let rows: Vec<Vec<f64>> = params.to_dtype(DType::F64)?.to_vec2()?;
            (rows.iter())
                .map(|row| self.seed.wrapping_add(row_hash(row)))
                .collect()
        } else {
            (0..params.dims().first().copied().unwrap_or(0) as u64)
                .map(|b| self.seed.wrapping_add(b.wrapping_mul(k)))
                .collect()
        };
        self.render_seeded(params, seeds)
    }

    fn is_differentiable(&self) -> bool {
        true
    }

    fn image_shape(&self) -> (usize, usize, usize) {
        (
            self.core.output.channels(),
            self.core.height,
            self.core.width,
        )
    }
}

impl<M: LinearMorphableModel> DifferentiablePhysicsRenderer<M> {
    /// Renders row b of `params` (B, P) with the seeds `seeds[b] .. seeds[b] + K` (sampling
    /// and surface; K realisations) instead of [`Renderer::render`]'s `seed + b·K ..`, e.g.
    /// to key each face's realisation of the diffuse field to the face rather than to its
    /// place in a batch. Errors: `seeds` not one per row, or rows not of the layout's length.
    pub fn render_seeded(&self, params: &Tensor, seeds: Vec<u64>) -> Result<Tensor> {
        let layout = self.layout();
        match params.dims2() {
            Ok((b, p)) if p == layout.len() && b == seeds.len() => {}
            _ => {
                return Err(AbsFitError::Shape {
                    what: "physics gradient parameters",
                    expected: format!(
                        "(B, {}) parameter vectors, with {} seeds",
                        layout.len(),
                        seeds.len()
                    ),
                    actual: format!("{:?}", params.dims()),
                });
            }
        }
        let cpu = params.to_device(&Device::Cpu)?.contiguous()?;
        Ok(cpu.apply_op1_arc(Arc::new(Box::new(PhysicsOp {
            core: Arc::clone(&self.core),
            seeds,
            kernel: self.kernel,
            realisations: self.realisations,
            rows: Mutex::new(Vec::new()),
        })))?)
    }
}
