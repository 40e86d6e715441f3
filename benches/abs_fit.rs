//! `abs-fit` benchmarks: one dataset sample (face → simulation → back-projection → images)
//! per preset and forward model (converged, sampled), on the built-in model; one analysis-by-synthesis fit with the differentiable
//! depth renderer; and the learned renderer of the `cpu` preset (one image, and one fit through
//! it), the other half of issue 7's render-time comparison; one render plus gradient of
//! the differentiable physics renderer (issue 15); and the identity losses of issue 17 beside
//! the encoder training step they are added to.

use std::hint::black_box;

use std::sync::Arc;

use abs_fit::dataset::{DatasetConfig, InputKind};
use abs_fit::generation::{GenerateOptions, generate};
use abs_fit::identity::{DistilConfig, coefficient_basis, cosine_similarity, mean_face};
use abs_fit::train::{
    IdLoss, IdLossKind, LearningRate, MeshEncoderConfig, TrainSchedule, train_mesh_encoder,
};
use abs_fit::{
    ArraySpec, DepthRasterRenderer, DifferentiablePhysicsRenderer, FitConfig, ImagingConfig,
    LearnedRenderer, MeshIdentityEncoder, NoProgress, PhysicsRenderer, Preset, Renderer, fit,
};
use candle_core::{DType, Device, Tensor, Var};
use criterion::{Criterion, criterion_group};
use facenet::{
    Adam, AdamConfig, Encoder, LinearSchedule, Network, NetworkSize, OutputGroups, PoseNetwork,
};
use morphable::MorphableModel;
use morphable::builtin::builtin;
use radar_sim::{GradientKernel, SurfaceModel};

fn sample(c: &mut Criterion) {
    let mut group = c.benchmark_group("abs_fit/dataset_sample");
    group.sample_size(10);
    // The converged model (the default) beside the paper-like sampled one, in the same run.
    let physics = [
        ("converged", SurfaceModel::default()),
        ("sampled", SurfaceModel::Sampled),
    ];
    for preset in [Preset::Tiny, Preset::Quick, Preset::Cpu, Preset::Paper] {
        for (name, surface) in physics {
            let mut config = preset.dataset().expect("preset configs are valid");
            config.imaging.simulation.surface = surface;
            let renderer = PhysicsRenderer::new(builtin(), config.layout, config.imaging.clone())
                .expect("preset imaging is valid");
            let (face, seed) = config.draw(0);
            group.bench_function(format!("{}/{name}", preset.name()), |b| {
                b.iter(|| renderer.image_products(black_box(&face), seed))
            });
        }
    }
    group.finish();
}

/// Fits one drawn face of the `cpu` preset from the mean face at the identity pose, on the
/// preset's 32 × 32 pooled depth-image grid: 200 Adam steps (render + backward each).
fn fit_depth_raster(c: &mut Criterion) {
    let config = Preset::Cpu.dataset().expect("preset configs are valid");
    let layout = config.layout;
    let renderer = DepthRasterRenderer::new(builtin(), layout, &config.imaging)
        .expect("preset imaging is valid");
    let (face, _) = config.draw(0);
    let truth = Tensor::from_vec(layout.to_vector(&face), (1, layout.len()), &Device::Cpu)
        .expect("one parameter row");
    bench_fit(
        c,
        "abs_fit/fit_depth_raster",
        "cpu_200_steps",
        &renderer,
        layout,
        &truth,
    );
}

/// 200 Adam steps fitting the renderer's own image of `truth` from all-zero scaled parameters.
fn bench_fit(
    c: &mut Criterion,
    group_name: &str,
    name: &str,
    renderer: &dyn Renderer,
    layout: abs_fit::ParamLayout,
    truth: &Tensor,
) {
    let target = renderer.render(truth).expect("the drawn face renders");
    let start =
        Tensor::zeros((1, layout.len()), candle_core::DType::F32, &Device::Cpu).expect("zeros");
    let fit_config = FitConfig {
        steps: 200,
        tolerance: 0.0,
        ..FitConfig::new(layout)
    };
    let mut group = c.benchmark_group(group_name);
    group.sample_size(10);
    group.bench_function(name, |b| {
        b.iter(|| {
            fit(
                renderer,
                black_box(&target),
                &start,
                &fit_config,
                &mut NoProgress,
            )
        })
    });
    group.finish();
}

/// An untrained learned renderer of the `cpu` network preset for the `cpu` dataset (32 × 32
/// amplitude images): it costs what a trained one costs; its images are meaningless.
fn cpu_learned_renderer() -> (LearnedRenderer, abs_fit::ParamLayout, Tensor) {
    let config = Preset::Cpu.dataset().expect("preset configs are valid");
    let manifest = config
        .manifest(builtin(), (0, config.n_samples))
        .expect("the built-in model describes the preset dataset");
    let renderer = LearnedRenderer::untrained(
        facenet::NetworkSize::Cpu,
        &manifest,
        InputKind::Amplitude,
        0,
    )
    .expect("the cpu decoder builds");
    let layout = config.layout;
    let (face, _) = config.draw(0);
    let truth = Tensor::from_vec(layout.to_vector(&face), (1, layout.len()), &Device::Cpu)
        .expect("one parameter row");
    (renderer, layout, truth)
}

/// One image (batch 1) from the `cpu` preset's learned renderer, in evaluation mode.
fn learned_render(c: &mut Criterion) {
    let (renderer, _, truth) = cpu_learned_renderer();
    let mut group = c.benchmark_group("abs_fit/learned_render");
    group.bench_function("cpu", |b| b.iter(|| renderer.render(black_box(&truth))));
    group.finish();
}

/// Fits one drawn face through the `cpu` preset's learned renderer from all-zero scaled
/// parameters: 200 Adam steps (decoder forward + backward to the parameters each).
fn fit_learned(c: &mut Criterion) {
    let (renderer, layout, truth) = cpu_learned_renderer();
    bench_fit(c, "abs_fit/fit_learned", "cpu", &renderer, layout, &truth);
}

/// One render plus gradient (candle's backward of the image sum) of the differentiable physics
/// renderer, amplitude-depth, for one drawn face, with the fast kernel: at the basin example's
/// small imaging (QAR50 / 6, 8 steps, 12 × 12 images; also with the exact kernel, for the
/// ratio) and at the `tiny`, `cpu` and `paper` presets' imaging.
fn physics_gradient(c: &mut Criterion) {
    let tiny = Preset::Tiny.dataset().expect("preset configs are valid");
    let small = ImagingConfig {
        array: ArraySpec::Qar50Decimated { factor: 6 },
        sweep: radar_sim::FrequencySweep::new(72e9, 82e9, 8).expect("valid sweep"),
        grid: ImagingConfig::centred_grid(24, 24, 0.008, 0.20, 12, 0.013).expect("valid grid"),
        pool: 2,
        ..tiny.imaging.clone()
    };
    let imaging = |preset: Preset| preset.dataset().expect("preset configs are valid").imaging;
    let mut group = c.benchmark_group("abs_fit/physics_gradient");
    group.sample_size(10);
    for (name, imaging, kernel) in [
        ("small-exact", small.clone(), GradientKernel::Exact),
        ("small", small, GradientKernel::Fast),
        ("tiny", imaging(Preset::Tiny), GradientKernel::Fast),
        ("cpu", imaging(Preset::Cpu), GradientKernel::Fast),
        ("paper", imaging(Preset::Paper), GradientKernel::Fast),
    ] {
        let layout = tiny.layout;
        let renderer = DifferentiablePhysicsRenderer::new(
            builtin(),
            layout,
            imaging,
            InputKind::AmplitudeDepth,
        )
        .expect("valid imaging")
        .with_kernel(kernel);
        let (face, _) = tiny.draw(0);
        let row = Tensor::from_vec(layout.to_vector(&face), (1, layout.len()), &Device::Cpu)
            .expect("one parameter row");
        let params = Var::from_tensor(&row).expect("a variable");
        group.bench_function(name, |b| {
            b.iter(|| {
                let images = renderer.render(params.as_tensor()).expect("renders");
                images
                    .sum_all()
                    .and_then(|s| s.backward())
                    .expect("backward")
            })
        });
    }
    group.finish();
}

/// The cost of an identity loss on an encoder step (issue 17: at most +30 %): one training
/// step of the `cpu` face encoder (ResNet pose branch) at batch 32 on 2 × 32 × 32 images, and
/// the forward and backward pass of each identity term on the same batch's parameter rows,
/// with a mesh encoder of the default architecture (code 16) on the built-in model, and that
/// encoder distilled into a network of the coefficients.
fn id_loss(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let model = Arc::new(builtin().model().clone());
    let dataset = generate(
        builtin(),
        &DatasetConfig {
            n_samples: 4,
            ..Preset::Tiny.dataset().expect("preset configs are valid")
        },
        &dir.path().join("dataset"),
        &GenerateOptions::default(),
        &mut NoProgress,
    )
    .expect("a tiny dataset");
    let mesh_dir = dir.path().join("mesh-encoder");
    let mesh_config = MeshEncoderConfig {
        meshes_per_epoch: 16,
        validation_meshes: 16,
        schedule: TrainSchedule::new(1, 16, LearningRate::constant(1e-3)),
        ..MeshEncoderConfig::new(16)
    };
    train_mesh_encoder(model.as_ref(), &mesh_config, &mesh_dir, &mut NoProgress)
        .expect("a mesh encoder");
    let layout = dataset.manifest().layout;
    let (batch, p) = (32, layout.len());
    let rows = |seed: usize| {
        let values: Vec<f32> = (0..batch * p)
            .map(|i| (((i + seed) * 7919 % 1009) as f32 / 1009.0) - 0.5)
            .collect();
        Tensor::from_vec(values, (batch, p), &Device::Cpu).expect("rows")
    };
    let (predicted, truth) = (rows(1), rows(2));

    let mut group = c.benchmark_group("abs_fit/id_loss");
    group.sample_size(10);
    let groups = OutputGroups {
        shape: layout.n_shape,
        expression: layout.n_expression,
        other: p - layout.n_shape - layout.n_expression,
    };
    let encoder = Network::new(
        NetworkSize::Cpu.face_encoder_with(2, groups, PoseNetwork::ResNet),
        1,
        DType::F32,
        &Device::Cpu,
    )
    .expect("encoder");
    let mut adam = Adam::new(
        encoder.trainable_vars(),
        AdamConfig::new(LinearSchedule::constant(1e-3)),
    )
    .expect("optimiser");
    let images = Tensor::rand(0f32, 1.0, (batch, 2, 32, 32), &Device::Cpu).expect("images");
    group.bench_function("encoder_step_cpu", |b| {
        b.iter(|| {
            let loss = (encoder.encode(&images, true).expect("encode") - &truth)
                .and_then(|d| d.sqr())
                .and_then(|d| d.mean_all())
                .expect("loss");
            adam.backward_step(&loss).expect("step");
        })
    });
    // The learned term's old path, for the ratio: the whole meshes of both rows built and
    // encoded through every level (no tabulated finest convolution).
    let whole = MeshIdentityEncoder::load(&mesh_dir, model.as_ref(), &Device::Cpu)
        .expect("the mesh encoder");
    let n_coefficients = layout.n_shape + layout.n_expression;
    let basis = coefficient_basis(model.as_ref(), &layout, &Device::Cpu).expect("the basis");
    let mean = mean_face(model.as_ref(), &Device::Cpu).expect("the mean face");
    let meshes = |rows: &Tensor| -> Tensor {
        rows.narrow(1, 0, n_coefficients)
            .and_then(|c| c.matmul(&basis))
            .and_then(|m| m.reshape((batch, model.n_vertices(), 3)))
            .and_then(|m| m.broadcast_add(&mean))
            .expect("meshes")
    };
    group.bench_function("learned_whole_meshes", |b| {
        b.iter(|| {
            let var = Var::from_tensor(&predicted).expect("a variable");
            let e_hat = whole.embed(&meshes(var.as_tensor())).expect("embedded");
            let e = whole.embed(&meshes(&truth)).expect("embedded").detach();
            let loss = cosine_similarity(&e_hat, &e)
                .expect("the cosines")
                .mean_all()
                .expect("the loss");
            black_box(loss.backward().expect("its gradient"))
        })
    });
    for (name, kind) in [
        ("linear", IdLossKind::Linear),
        (
            "learned",
            IdLossKind::Learned {
                dir: mesh_dir.clone(),
            },
        ),
        // The default architecture; few rows and one epoch, since the fit's quality does not
        // change its cost.
        (
            "distilled",
            IdLossKind::Distilled {
                dir: mesh_dir,
                distil: DistilConfig {
                    samples: 512,
                    held_out: 64,
                    epochs: 1,
                    ..DistilConfig::default()
                },
                centred: false,
            },
        ),
    ] {
        let loss = IdLoss::new(kind, 0.5, model.clone())
            .resolve(dataset.manifest(), &Device::Cpu)
            .expect("an identity loss");
        group.bench_function(name, |b| {
            b.iter(|| {
                let var = Var::from_tensor(&predicted).expect("a variable");
                let value = loss.loss(var.as_tensor(), &truth).expect("the loss");
                black_box(value.backward().expect("its gradient"))
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    sample,
    fit_depth_raster,
    learned_render,
    fit_learned,
    physics_gradient,
    id_loss
);
