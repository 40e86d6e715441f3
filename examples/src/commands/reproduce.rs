//! `radar-face reproduce`: the whole paper at one preset — generate the dataset, train every
//! network, evaluate Table 1 (with test-time fitting and iterative-encoder rows beyond the
//! paper), the
//! cosine-similarity study of Figures 5–6, the renderer run times, and pictures and meshes of a
//! few fitted validation faces.
//!
//! Every stage resumes: the dataset and each network live in their own directory under `--out`
//! and a second run continues where the first stopped; the evaluation steps are cheap and are
//! redone.
//!
//! # Budgets
//!
//! The one place where the training and fitting effort of each preset is set ([`Budget::of`]):
//!
//! | preset  | networks (facenet) | pose network | encoder epochs | decoder epochs | autoencoder epochs | batch   | encoder rate   | fit steps | larger cosine study |
//! |---------|--------------------|--------------|---------------:|---------------:|-------------------:|--------:|----------------|----------:|--------------------:|
//! | `tiny`  | `Tiny`             | ResNet       | 2              | 2              | 1                  | 8       | 0.001          | 20        | 10 × 5              |
//! | `quick` | `Quick`            | ResNet       | 10             | 10             | 6                  | 32      | 0.001          | 50        | 20 × 5              |
//! | `cpu`   | `Cpu`              | ResNet       | 30             | 20             | 10                 | 32      | 0.001          | 50        | 60 × 5              |
//! | `paper` | `Paper`            | AlexNet      | 200            | 300            | 300                | paper's | 0.01 → 0.001   | 500       | 100 × 5             |
//!
//! "paper's" batches are 50 (encoder), 150 (decoder) and 50 (autoencoder). Each input kind also
//! trains an iterative encoder (docs/physics.md §8) with its encoder's epochs, batch and rate.
//! The `quick` row aims at ≤ 10 minutes end to end on 2 cores, the `cpu` row at ≤ 90 minutes
//! (`quick`, 1 400 faces, measured on 2026-12-04 on an idle machine: 8 min 16 s, 4 min 02 s of
//! it generating; `cpu` on 2026-11-21, before the converged forward model and the iterative
//! encoders: 72 min 20 s, a quarter of it generating). With the converged model and the
//! iterative encoders, the old `cpu` row (8 000 faces, 30 / 30 / 15 epochs, 100 fit steps,
//! 100 study shapes) was predicted from idle per-stage rates at about 125 min, so on
//! 2026-12-04 it was cut to 6 000 faces, 20 decoder and 10 autoencoder epochs, 50 fit steps
//! and 60 study shapes, keeping the encoders' 30 epochs: predicted about 82 min, measured
//! 1 h 13 min 57 s and 1.08 GB on an idle machine the same day.
//! The CPU presets spend their budget on more faces and fewer epochs, because the small networks overfit a few hundred faces: on the built-in model,
//! 510 training faces × 30 epochs left every encoder worse than the Mean baseline in point
//! distance (1.03–1.14 × Mean), 2 040 faces × 8 epochs put every one below it (0.95–0.996).
//! Test-time fits through the learned renderers and the depth raster keep the autoencoder's
//! pose and hold the coefficients near its estimate (`FitSettings::anchored`: Adam rate 0.02, a
//! prior of weight 0.01 centred on the estimate); `radar-face fit`'s plain defaults (the prior
//! at the mean face, the pose free) made faces worse on every preset. The larger cosine study
//! (shapes × the figure's 5 expressions, sampled and neutral pose) renders one physics image
//! per face; `quick` keeps it to 20 shapes (200 images).
//!
//! Fits through the differentiable physics renderer draw its speckle anew at every step and end
//! at the mean of their last third of iterates (`FitSettings::redrawn_physics`). They cost about
//! 0.9 s per face and step at `cpu` imaging, beyond the CPU presets' budgets: they run on the first
//! `--physics-fit-faces` validation faces (default 2 at `tiny`, 0 elsewhere) in a table of
//! their own, beside the encoder and autoencoder on the same faces.
//!
//! # Output
//!
//! `--out` (default `out/reproduce/PRESET`) holds `dataset/`, `networks/{encoder,decoder,
//! autoencoder,iterative}-{amplitude,depth,amplitude-depth}/` and `results/`: `table1.md` and
//! `table1.csv` (every cell with its 95 % bootstrap interval, the paper's rows and the note on
//! its pose protocol), `table1-iterations.{md,csv}` (each iterative encoder after each of its
//! four iterations from the mean face), `findings.md` and `findings.csv` (the paired
//! comparisons behind the README's statements), with physics fits `table1-physics-fit.{md,csv}` and
//! `findings-physics-fit.md`, `cosine_{shape,expression}_{sampled,neutral}_pose[_large].{png,csv}`
//! (the paper-sized figure and the larger study), `cosine.md`, `runtimes.md` and
//! `faces/VARIANT/` (per face a PLY coloured by error, a PNG of target and rendering, and a PNG
//! of the true, starting and fitted meshes, the last two coloured by error).
//!
//! With `--physics-decoder-faces N` (default 8 at `tiny`, 0 elsewhere), `networks/` also holds
//! `autoencoder-physics-amplitude-depth-N/` (the amplitude-depth encoder trained further
//! through the differentiable physics, each face with its own seed, on the first N training
//! faces with the autoencoder budget) and its control `autoencoder-amplitude-depth-N/` (the
//! same through the learned decoder); Table 1 gains their rows and the findings their paired
//! comparison.
//!
//! With `--id-loss-rows` (the default at `tiny` only: five more networks), `networks/` also
//! holds `mesh-encoder/` (COMA's mesh autoencoder of the face model, code 16) and
//! `encoder-{depth,amplitude-depth}-id-{linear,learned}/` (the one-pass encoders' settings and
//! seed plus a 3D identity loss, λ_id = 0.5, docs/physics.md §9); Table 1 and the findings gain
//! their rows, and `cosine-id-loss.md` compares their shape diagonal maximum in the larger
//! cosine study with the encoders' without the loss, paired over classes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use abs_fit::dataset::{Dataset, EVALUATION_RANGE_DB, InputKind};
use abs_fit::evaluate::{
    Bootstrap, Cell, CosineMatrix, CosineReport, FaceErrors, Finding, FitTime, IterativeStart,
    MAX_STUDY_FACES, MEAN_BASELINE, TableOptions, Validation, cosine_markdown, cosine_stem,
    encoder_cosine_studies, encoder_cosine_study, findings_csv, findings_markdown, markdown_table,
    paired_difference, renderer_times, runtimes_markdown, write_matrix_csv, write_table,
};
use abs_fit::fit::{FitSettings, FitTarget};
use abs_fit::generation::{GenerateOptions, generate};
use abs_fit::train::{
    AutoencoderTrainConfig, DecoderTrainConfig, EncoderTrainConfig, ITERATIVE_GEOMETRY_WEIGHT,
    IdLoss, IdLossKind, IterativeTrainConfig, LearningRate, MeshEncoderConfig, ParamLoss,
    TrainSchedule,
};
use abs_fit::{
    DifferentiablePhysicsRenderer, FrozenDecoder, Iterate, IterativeEncoder, LearnedRenderer,
    PhysicsSeeds, PoseScaling, Preset, Progress, TrainedEncoder, train_autoencoder, train_decoder,
    train_encoder, train_iterative_from, train_mesh_encoder,
};
use backproject::ColourMap;
use candle_core::Device;
use clap::Args as ClapArgs;
use facenet::{ComputeDevice, PoseNetwork};
use morphable::PcaModel;

use crate::commands::fit::write_faces;
use crate::pictures::{heatmap, save_png};
use crate::progress::Bar;
use crate::{CliResult, Physics, create_dir, load_model};

/// Command-line options.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Preset of the dataset and of the networks: tiny, quick, cpu or paper.
    #[arg(long, default_value = "quick")]
    preset: Preset,
    /// A statismo / BFM 2019 model file instead of the built-in model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Output directory (default: out/reproduce/PRESET). Running again resumes.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Number of dataset samples instead of the preset's.
    #[arg(long)]
    samples: Option<usize>,
    /// How pose columns are scaled: sampling-range (the paper's: each by its own sampling
    /// range, onto [−1, 1]) or fixed (translation / 5 cm, angles / 10°).
    #[arg(long, default_value = "sampling-range")]
    pose_scaling: PoseScaling,
    /// The forward model: converged (physical optics on facets plus an explicit diffuse field,
    /// the default) or sampled (the paper-like random hits of earlier datasets).
    #[arg(long, default_value = "converged")]
    physics: Physics,
    /// Epochs of every training stage instead of the preset's budget.
    #[arg(long)]
    epochs: Option<usize>,
    /// Optimiser steps of every test-time fit instead of the preset's budget.
    #[arg(long)]
    fit_steps: Option<usize>,
    /// Validation faces drawn and written as meshes and images.
    #[arg(long, default_value_t = 3)]
    faces: usize,
    /// Where the networks train: cpu, or cuda / cuda:N with a build that has `--features cuda`
    /// (evaluation and fitting run on the CPU).
    #[arg(long, default_value = "cpu")]
    device: ComputeDevice,
    /// Shape classes of the cosine-similarity study (the paper: 10; at least 2).
    #[arg(long, default_value_t = 10)]
    study_shapes: usize,
    /// Expression classes of the cosine-similarity study (the paper: 5; at least 2).
    #[arg(long, default_value_t = 5)]
    study_expressions: usize,
    /// Shape classes of the larger cosine study, whose first shapes are the figure's (default:
    /// the preset's budget; at least --study-shapes).
    #[arg(long)]
    study_large_shapes: Option<usize>,
    /// Validation faces whose amplitude-depth autoencoder estimate is refined through the
    /// differentiable physics renderer, in `table1-physics-fit.md` beside the encoder and the
    /// autoencoder on the same faces (default: the preset's budget; about 0.7 s per face and
    /// step at `cpu` imaging on two cores).
    #[arg(long)]
    physics_fit_faces: Option<usize>,
    /// Optimiser steps of the physics fits.
    #[arg(long, default_value_t = 25)]
    physics_fit_steps: usize,
    /// Train the amplitude-depth autoencoder through the differentiable physics (each face with
    /// its own seed) on the first N training faces, beside the same autoencoder through its
    /// learned decoder on the same faces, for two Table 1 rows and their paired comparison
    /// (default: the preset's budget, 8 at `tiny`, 0 (off) elsewhere; about a second of one
    /// core per face and epoch at `cpu` imaging).
    #[arg(long)]
    physics_decoder_faces: Option<usize>,
    /// Train a mesh encoder and the depth and amplitude-depth encoders again with each 3D
    /// identity loss (linear, learned), for Table 1 rows and a paired cosine study against the
    /// encoders without it (default: the preset's budget, true at tiny only).
    #[arg(long)]
    id_loss_rows: Option<bool>,
}

/// The training and fitting effort of a preset (the table in the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Network sizes.
    pub network: facenet::NetworkSize,
    /// Epochs of each encoder.
    pub encoder_epochs: usize,
    /// Epochs of each decoder (learned renderer).
    pub decoder_epochs: usize,
    /// Epochs of each autoencoder.
    pub autoencoder_epochs: usize,
    /// Examples per optimiser step of every stage; `None`: the paper's per stage.
    pub batch: Option<usize>,
    /// Optimiser steps of each test-time fit.
    pub fit_steps: usize,
    /// The encoder's learning rate. The paper's 0.01 → 0.001 ramp suits its ResNet-50s; on the
    /// small CPU networks it leaves even translation at the Mean baseline (quick data, depth
    /// encoder, 30 epochs: translation L2 0.326 vs Mean 0.326), while a constant 0.001 learns
    /// it (0.072; the paper reports 0.065).
    pub encoder_learning_rate: LearningRate,
    /// The encoder's network for pose and rendering columns. The paper's AlexNet reduces the
    /// CPU presets' 32 × 32 images to one cell and learns no rotation (2 040 quick faces, depth
    /// encoder, 8 epochs: rotation L2 0.243 vs Mean 0.246); a ResNet of the same preset
    /// learns some (0.170).
    pub pose_network: PoseNetwork,
    /// Where the networks train: the CPU unless `--device` says otherwise.
    pub device: ComputeDevice,
    /// Validation faces refined through the differentiable physics renderer (`--physics-fit-faces`).
    pub physics_fit_faces: usize,
    /// Shape classes of the larger cosine study (× the figure's expressions, both poses). Each
    /// face is one physics rendering: `quick`'s 40 shapes took 2 × 44 s of its run (1 500
    /// faces, 2026-12-04), so it studies 20.
    pub study_large_shapes: usize,
    /// Training faces of the physics-decoder autoencoder and its learned-decoder control
    /// (`--physics-decoder-faces`; 0: not trained).
    pub physics_decoder_faces: usize,
    /// Whether the 3D identity-loss encoders are trained and compared (`--id-loss-rows`): four
    /// more encoders and a mesh encoder, beyond the CPU presets' time budgets.
    pub id_loss_rows: bool,
    /// The mesh encoder behind the learned identity loss.
    pub mesh_encoder: MeshEncoderConfig,
}

impl Budget {
    /// The budget of `preset`.
    pub fn of(preset: Preset) -> Self {
        let (network, [encoder_epochs, decoder_epochs, autoencoder_epochs], batch, fit_steps) =
            match preset {
                Preset::Tiny => (facenet::NetworkSize::Tiny, [2, 2, 1], Some(8), 20),
                Preset::Quick => (facenet::NetworkSize::Quick, [10, 10, 6], Some(32), 50),
                Preset::Cpu => (facenet::NetworkSize::Cpu, [30, 20, 10], Some(32), 50),
                Preset::Paper => (facenet::NetworkSize::Paper, [200, 300, 300], None, 500),
            };
        let study_large_shapes = match preset {
            Preset::Tiny => 10,
            Preset::Quick => 20,
            Preset::Cpu => 60,
            Preset::Paper => 100,
        };
        // The physics fits cost ~0.7 s per face and step at `cpu` imaging: beyond the CPU
        // presets' time budgets, so they are opt-in there; `tiny` runs two faces as a check.
        let physics_fit_faces = match preset {
            Preset::Tiny => 2,
            Preset::Quick | Preset::Cpu | Preset::Paper => 0,
        };
        let (encoder_learning_rate, pose_network) = match preset {
            Preset::Paper => (LearningRate::PAPER_ENCODER, PoseNetwork::AlexNet),
            _ => (LearningRate::constant(1e-3), PoseNetwork::ResNet),
        };
        let defaults = MeshEncoderConfig::new(MESH_CODE);
        let mesh_encoder = match preset {
            Preset::Tiny => MeshEncoderConfig {
                meshes_per_epoch: 16,
                validation_meshes: 16,
                schedule: TrainSchedule {
                    epochs: 1,
                    ..defaults.schedule
                },
                ..defaults
            },
            _ => defaults,
        };
        Self {
            network,
            encoder_epochs,
            decoder_epochs,
            autoencoder_epochs,
            batch,
            fit_steps,
            encoder_learning_rate,
            pose_network,
            device: ComputeDevice::Cpu,
            study_large_shapes,
            physics_fit_faces,
            // One batch of faces at `tiny`, as a check; the physics renders cost ~1 s of one
            // core per face and epoch at `cpu` imaging.
            physics_decoder_faces: if preset == Preset::Tiny { 8 } else { 0 },
            id_loss_rows: preset == Preset::Tiny,
            mesh_encoder,
        }
    }

    /// `schedule` with `epochs` and this budget's batch size and device.
    fn schedule(&self, schedule: TrainSchedule, epochs: usize) -> TrainSchedule {
        TrainSchedule {
            epochs,
            batch_size: self.batch.unwrap_or(schedule.batch_size),
            device: self.device,
            ..schedule
        }
    }
}

/// Validation faces whose renderings are timed.
const TIMED_FACES: usize = 4;
/// Code length of the mesh encoder behind the learned identity loss (issue 17's).
const MESH_CODE: usize = 16;
/// λ_id of the identity-loss encoders (the 3D-ID paper's).
const ID_WEIGHT: f64 = 0.5;
/// Timed repetitions of each renderer.
const TIMING_REPEATS: usize = 3;
/// Mixed into the dataset's seed to seed the cosine study's faces and renderings.
pub(crate) const STUDY_SEED: u64 = 0xC051_0E57_0D1E_5EED;
/// Pixels per cell of the cosine heatmaps (at most).
const HEATMAP_CELL_PX: u32 = 24;
/// Width the heatmaps of many classes shrink their cells toward.
const HEATMAP_PX: u32 = 400;

/// The networks of one input kind.
struct Networks {
    kind: InputKind,
    encoder: PathBuf,
    decoder: PathBuf,
    autoencoder: PathBuf,
    iterative: PathBuf,
}

/// The networks of input `kind` among those trained.
fn networks_of(networks: &[Networks], kind: InputKind) -> CliResult<&Networks> {
    networks
        .iter()
        .find(|n| n.kind == kind)
        .ok_or_else(|| format!("no {} networks were trained", kind.name()).into())
}

/// Runs (or resumes) the whole reproduction and prints where its results are.
pub fn run(args: Args) -> CliResult {
    let study_faces = args.study_shapes.checked_mul(args.study_expressions);
    if args.study_shapes < 2
        || args.study_expressions < 2
        || study_faces.is_none_or(|n| n > MAX_STUDY_FACES)
    {
        return Err(format!(
            "--study-shapes {} --study-expressions {}: the cosine study needs at least 2 of each \
             (every class needs two instances) and at most {MAX_STUDY_FACES} faces in all",
            args.study_shapes, args.study_expressions
        )
        .into());
    }
    let started = Instant::now();
    let budget = Budget {
        device: args.device,
        ..Budget::of(args.preset)
    };
    let large_shapes = args
        .study_large_shapes
        .unwrap_or(budget.study_large_shapes)
        .max(args.study_shapes);
    if large_shapes
        .checked_mul(args.study_expressions)
        .is_none_or(|n| n > MAX_STUDY_FACES)
    {
        return Err(format!(
            "--study-large-shapes {large_shapes} × {} expressions: at most {MAX_STUDY_FACES} faces",
            args.study_expressions
        )
        .into());
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("out/reproduce").join(args.preset.name()));
    let model = load_model(args.model.as_deref())?;

    let mut config = args.preset.dataset()?;
    if let Some(n) = args.samples {
        config.n_samples = n;
    }
    config.set_pose_scaling(args.pose_scaling);
    config.imaging.simulation.surface = args.physics.model();
    let dataset = generate(
        &model,
        &config,
        &out.join("dataset"),
        &GenerateOptions::default(),
        &mut Bar::new("samples"),
    )?;
    dataset.check_model(&model)?;

    let networks = train_all(
        &dataset,
        &model,
        &budget,
        args.epochs,
        &out.join("networks"),
    )?;
    let id_encoders = if args.id_loss_rows.unwrap_or(budget.id_loss_rows) {
        train_id_loss_encoders(
            &dataset,
            &model,
            &budget,
            args.epochs,
            &out.join("networks"),
        )?
    } else {
        Vec::new()
    };

    let decoder_faces = (args.physics_decoder_faces)
        .unwrap_or(budget.physics_decoder_faces)
        .min(dataset.train_rows().len());
    let decoder_rows = if decoder_faces > 0 {
        train_physics_decoder_rows(
            &dataset,
            &model,
            (&networks, &budget, args.epochs),
            decoder_faces,
            &out.join("networks"),
        )?
    } else {
        Vec::new()
    };

    let results = create_dir(&out.join("results"))?;
    let fit_steps = args.fit_steps.unwrap_or(budget.fit_steps);
    let mut fit_seconds = table1(
        &dataset,
        &model,
        (&networks, &id_encoders, &decoder_rows),
        fit_steps,
        args.faces,
        &results,
    )?;
    let physics_faces = args.physics_fit_faces.unwrap_or(budget.physics_fit_faces);
    if physics_faces > 0 {
        let settings = FitSettings::redrawn_physics(args.physics_fit_steps);
        fit_seconds.push(physics_fit_table(
            &dataset,
            &model,
            &networks,
            (physics_faces, &settings),
            args.faces,
            &results,
        )?);
    }
    study(&dataset, &model, &networks, &args, large_shapes, &results)?;
    if !id_encoders.is_empty() {
        id_loss_study(
            &dataset,
            &model,
            (&networks, &id_encoders),
            &args,
            large_shapes,
            &results,
        )?;
    }
    runtimes(&dataset, &model, &networks, &fit_seconds, &results)?;
    println!(
        "reproduction at preset {} done in {:.1} s: results in {}",
        args.preset.name(),
        started.elapsed().as_secs_f64(),
        results.display()
    );
    Ok(())
}

/// Trains (or resumes) the encoder, the decoder and the autoencoder of every input kind under
/// `dir`.
fn train_all(
    dataset: &Dataset,
    model: &PcaModel,
    budget: &Budget,
    epochs: Option<usize>,
    dir: &Path,
) -> CliResult<Vec<Networks>> {
    let mut all = Vec::new();
    for kind in InputKind::ALL {
        let networks = Networks {
            kind,
            encoder: dir.join(format!("encoder-{}", kind.name())),
            decoder: dir.join(format!("decoder-{}", kind.name())),
            autoencoder: dir.join(format!("autoencoder-{}", kind.name())),
            iterative: dir.join(format!("iterative-{}", kind.name())),
        };
        let encoder_config = encoder_config(budget, epochs);
        let mut bar = Bar::new("steps");
        bar.message(&format!("training the {} encoder", kind.name()));
        let encoder = train_encoder(dataset, kind, &encoder_config, &networks.encoder, &mut bar)?;

        // The iterative encoder: the one-pass encoder's budget and settings, the geometry-aware
        // coefficient loss of the coarse-to-fine paper, the default feedback (depth and
        // residual), starting from the one-pass encoder (zeros on the feedback channels).
        let iterative_encoder = EncoderTrainConfig {
            param_loss: ParamLoss::geometry(Arc::new(model.clone()), ITERATIVE_GEOMETRY_WEIGHT),
            ..encoder_config.clone()
        };
        let iterative_config = IterativeTrainConfig::new(iterative_encoder, kind);
        bar.message(&format!("training the {} iterative encoder", kind.name()));
        let start = TrainedEncoder::load(&networks.encoder, encoder.network().device())?;
        train_iterative_from(
            dataset,
            model,
            start,
            &iterative_config,
            &networks.iterative,
            &mut bar,
        )?;

        let paper = DecoderTrainConfig::paper(budget.network);
        let decoder_config = DecoderTrainConfig {
            schedule: budget.schedule(paper.schedule, epochs.unwrap_or(budget.decoder_epochs)),
            ..paper
        };
        bar.message(&format!("training the {} decoder", kind.name()));
        let decoder = train_decoder(dataset, kind, &decoder_config, &networks.decoder, &mut bar)?;

        let paper = AutoencoderTrainConfig::paper();
        let autoencoder_config = AutoencoderTrainConfig {
            schedule: budget.schedule(paper.schedule, epochs.unwrap_or(budget.autoencoder_epochs)),
            ..paper
        };
        bar.message(&format!("training the {} autoencoder", kind.name()));
        train_autoencoder(
            dataset,
            encoder,
            &decoder,
            &autoencoder_config,
            &networks.autoencoder,
            &mut bar,
        )?;
        all.push(networks);
    }
    Ok(all)
}

/// The one-pass encoders' settings at `budget` (`epochs` overriding its count).
fn encoder_config(budget: &Budget, epochs: Option<usize>) -> EncoderTrainConfig {
    let paper = EncoderTrainConfig::paper(budget.network);
    EncoderTrainConfig {
        schedule: TrainSchedule {
            learning_rate: budget.encoder_learning_rate,
            ..budget.schedule(paper.schedule, epochs.unwrap_or(budget.encoder_epochs))
        },
        pose_network: budget.pose_network,
        ..paper
    }
}

/// Trains (or resumes) the amplitude-depth encoder further through the physics
/// ([`FrozenDecoder::physics`], each face with its own seed) and, as the control, through its
/// learned decoder, both with the autoencoder budget on the first `faces` training faces, in
/// `dir/autoencoder-physics-amplitude-depth-N` and `dir/autoencoder-amplitude-depth-N`.
/// Returns their directories.
fn train_physics_decoder_rows(
    dataset: &Dataset,
    model: &PcaModel,
    (networks, budget, epochs): (&[Networks], &Budget, Option<usize>),
    faces: usize,
    dir: &Path,
) -> CliResult<Vec<PathBuf>> {
    let net = networks_of(networks, InputKind::AmplitudeDepth)?;
    let paper = AutoencoderTrainConfig::paper();
    let config = AutoencoderTrainConfig {
        schedule: budget.schedule(paper.schedule, epochs.unwrap_or(budget.autoencoder_epochs)),
        train_faces: Some(faces),
        ..paper
    };
    let kind = InputKind::AmplitudeDepth;
    let mut bar = Bar::new("steps");
    let device = budget.device.open()?;
    let learned = LearnedRenderer::load(&net.decoder, &device)?;
    let (physics_dir, learned_dir) = (
        dir.join(format!("autoencoder-physics-{}-{faces}", kind.name())),
        dir.join(format!("autoencoder-{}-{faces}", kind.name())),
    );
    for (what, decoder, out) in [
        (
            "physics",
            FrozenDecoder::physics(model, dataset, kind, PhysicsSeeds::Target)?,
            &physics_dir,
        ),
        ("learned", FrozenDecoder::from(&learned), &learned_dir),
    ] {
        bar.message(&format!(
            "training the {} autoencoder through the {what} decoder on {faces} faces",
            kind.name()
        ));
        let encoder = TrainedEncoder::load(&net.encoder, &device)?;
        train_autoencoder(dataset, encoder, decoder, &config, out, &mut bar)?;
    }
    Ok(vec![physics_dir, learned_dir])
}

/// An encoder trained with a 3D identity loss: its input kind and its directory.
struct IdEncoder {
    kind: InputKind,
    dir: PathBuf,
}

/// Trains (or resumes) the mesh encoder of `model` in `dir/mesh-encoder`, then the depth and
/// amplitude-depth encoders again, each with the linear and with the learned identity loss
/// (λ_id = 0.5) and otherwise the one-pass encoders' settings and seed, in
/// `dir/encoder-{kind}-id-{linear,learned}`.
fn train_id_loss_encoders(
    dataset: &Dataset,
    model: &PcaModel,
    budget: &Budget,
    epochs: Option<usize>,
    dir: &Path,
) -> CliResult<Vec<IdEncoder>> {
    let mesh_dir = dir.join("mesh-encoder");
    let mut bar = Bar::new("steps");
    bar.message("training the mesh encoder");
    let mesh = train_mesh_encoder(model, &budget.mesh_encoder, &mesh_dir, &mut bar)?;
    if let Some(v) = mesh.card().validation {
        println!(
            "mesh encoder (code {MESH_CODE}): held-out mean vertex error {:.3} mm (RMS {:.3}, \
             best linear code {:.3}, mean face {:.3})",
            v.mean_error_mm, v.rms_error_mm, v.best_linear_rms_mm, v.mean_face_error_mm
        );
    }
    let shared: Arc<PcaModel> = Arc::new(model.clone());
    let mut trained = Vec::new();
    for kind in [InputKind::Depth, InputKind::AmplitudeDepth] {
        for (loss, id_kind) in [
            ("linear", IdLossKind::Linear),
            (
                "learned",
                IdLossKind::Learned {
                    dir: mesh_dir.clone(),
                },
            ),
        ] {
            let config = EncoderTrainConfig {
                id_loss: Some(IdLoss::new(id_kind, ID_WEIGHT, shared.clone())),
                ..encoder_config(budget, epochs)
            };
            let out = dir.join(format!("encoder-{}-id-{loss}", kind.name()));
            bar.message(&format!(
                "training the {} encoder with the {loss} identity loss",
                kind.name()
            ));
            train_encoder(dataset, kind, &config, &out, &mut bar)?;
            trained.push(IdEncoder { kind, dir: out });
        }
    }
    Ok(trained)
}

/// Table 1 on the validation split: the baselines, the encoders, the autoencoders, and beyond
/// the paper each autoencoder refined by test-time fitting through its learned renderer, and the
/// depth autoencoder refined through the depth raster, every cell with its 95 % bootstrap
/// interval. Writes `table1.md`, `table1.csv`, the paired comparisons behind the README's
/// findings (`findings.md`, `findings.csv`) and the first `faces` fitted faces of each fit under
/// `faces/`; returns the fits' run times.
fn table1(
    dataset: &Dataset,
    model: &PcaModel,
    (networks, id_encoders, decoder_rows): (&[Networks], &[IdEncoder], &[PathBuf]),
    fit_steps: usize,
    faces: usize,
    results: &Path,
) -> CliResult<Vec<FitTime>> {
    let validation = Validation::new(dataset, model)?;
    let device = Device::Cpu;
    let mut scores = validation.baselines()?;
    let batch = validation.rows().len().min(64);
    for stage in ["encoder", "autoencoder"] {
        for net in networks {
            let dir = if stage == "encoder" {
                &net.encoder
            } else {
                &net.autoencoder
            };
            let encoder = TrainedEncoder::load(dir, &device)?;
            scores.push(validation.encoder_row(&encoder, batch)?);
        }
    }
    let extra = (id_encoders.iter().map(|e| &e.dir)).chain(decoder_rows);
    for dir in extra {
        let encoder = TrainedEncoder::load(dir, &device)?;
        scores.push(validation.encoder_row(&encoder, batch)?);
    }
    let (iterative, iterations) = iterative_rows(&validation, model, networks, results)?;
    scores.extend(iterative);

    let settings = FitSettings::anchored(fit_steps);
    let mut times = Vec::new();
    let mut fit_row = |fitted: &str, target: FitTarget<'_>, dir: &Path, slug: String| {
        let autoencoder = TrainedEncoder::load(dir, &device)?;
        let name = format!("{} + fitting ({fitted})", autoencoder.method_name());
        let outcome = validation.fit_row(
            &name,
            &autoencoder,
            &target,
            &settings,
            batch,
            &mut Bar::new("steps"),
        )?;
        let (first, last) = outcome.faces.loss_change();
        println!(
            "{name}: image loss {first:.5} → {last:.5} in {} steps ({:.1} s)",
            outcome.faces.steps, outcome.seconds
        );
        if faces > 0 {
            let dir = results.join("faces").join(slug);
            write_faces(&outcome.faces.first(faces), dataset, model, &dir)?;
        }
        times.push(outcome.time());
        CliResult::Ok(outcome.errors)
    };
    let mut fitted = Vec::new();
    for net in networks {
        let target = FitTarget::learned(LearnedRenderer::load(&net.decoder, &device)?);
        let slug = format!("autoencoder-{}-learned", net.kind.name());
        fitted.push(fit_row(LEARNED_FIT, target, &net.autoencoder, slug)?);
    }
    if let Some(net) = networks.iter().find(|n| n.kind == InputKind::Depth) {
        let target = FitTarget::depth_raster(model, dataset)?;
        let slug = "autoencoder-depth-raster".to_string();
        fitted.push(fit_row(RASTER_FIT, target, &net.autoencoder, slug)?);
    }
    scores.extend(fitted);

    let bootstrap = Bootstrap::default();
    let table = abs_fit::evaluate::table1(&scores, &bootstrap)?;
    let options = TableOptions {
        layout: Some(dataset.manifest().layout),
        ..TableOptions::default()
    };
    let (md, csv) = (results.join("table1.md"), results.join("table1.csv"));
    write_table(&table, &md, &csv, &options)?;
    println!(
        "\nTable 1: {} validation samples at D = {EVALUATION_RANGE_DB} dB\n\n{}",
        validation.rows().len(),
        markdown_table(&table, &options)
    );
    let findings = findings(&[&scores[..], &iterations[..]].concat(), &bootstrap)?;
    let md = findings_markdown(&findings, validation.rows().len());
    morphable::export::atomic_write(&results.join("findings.md"), md.as_bytes())?;
    morphable::export::atomic_write(
        &results.join("findings.csv"),
        findings_csv(&findings).as_bytes(),
    )?;
    println!("{md}");
    Ok(times)
}

/// The iterative encoders of every input kind on the validation faces, each iterated from the
/// mean face as [`Iterate::default`] says: the errors after every iteration, written to
/// `table1-iterations.md` and `.csv`, and those after the last as Table 1's "Iterative encoder
/// (…)" rows. Returns (the last iteration's rows, every iteration's rows).
fn iterative_rows(
    validation: &Validation<'_>,
    model: &PcaModel,
    networks: &[Networks],
    results: &Path,
) -> CliResult<(Vec<FaceErrors>, Vec<FaceErrors>)> {
    let how = Iterate::default();
    let batch = validation.rows().len().min(64);
    let (mut last, mut every) = (Vec::new(), Vec::new());
    for net in networks {
        let encoder = IterativeEncoder::load(&net.iterative, model, &Device::Cpu)?;
        let rows = validation.iterative_rows(&encoder, IterativeStart::Mean, &how, batch)?;
        let mut final_row = rows.last().ok_or("no iteration was run")?.clone();
        final_row.method = encoder.method_name();
        last.push(final_row);
        every.extend(rows);
    }
    let table = abs_fit::evaluate::table1(&every, &Bootstrap::default())?;
    let options = TableOptions {
        layout: Some(validation.dataset().manifest().layout),
        ..TableOptions::default()
    };
    write_table(
        &table,
        &results.join("table1-iterations.md"),
        &results.join("table1-iterations.csv"),
        &options,
    )?;
    println!(
        "\nIterative encoders after each of {} iterations from the mean face\n\n{}",
        how.iterations,
        markdown_table(&table, &options)
    );
    Ok((last, every))
}

/// The amplitude-depth autoencoder's estimates of the first `faces` validation faces refined
/// through the differentiable physics renderer with `settings`, beside the Mean baseline, the
/// encoder and the autoencoder on the same faces: `table1-physics-fit.md` and `.csv`, the
/// paired fit − autoencoder differences in `findings-physics-fit.md`, and the first `pictures`
/// fitted faces under `faces/autoencoder-amplitude-depth-physics`. Returns the fit's run time.
fn physics_fit_table(
    dataset: &Dataset,
    model: &PcaModel,
    networks: &[Networks],
    (faces, settings): (usize, &FitSettings),
    pictures: usize,
    results: &Path,
) -> CliResult<FitTime> {
    let net = networks_of(networks, InputKind::AmplitudeDepth)?;
    let rows: Vec<usize> = dataset.validation_rows().into_iter().take(faces).collect();
    let validation = Validation::with_rows(dataset, model, rows)?;
    let device = Device::Cpu;
    let batch = validation.rows().len().min(64);
    let encoder = TrainedEncoder::load(&net.encoder, &device)?;
    let autoencoder = TrainedEncoder::load(&net.autoencoder, &device)?;
    let mut scores: Vec<FaceErrors> = (validation.baselines()?.into_iter())
        .filter(|s| s.method == MEAN_BASELINE)
        .collect();
    scores.push(validation.encoder_row(&encoder, batch)?);
    scores.push(validation.encoder_row(&autoencoder, batch)?);
    let target = FitTarget::physics(
        DifferentiablePhysicsRenderer::for_dataset(model, dataset, InputKind::AmplitudeDepth)?
            .with_redrawn_speckle(true),
    );
    let name = format!("{} + fitting ({PHYSICS_FIT})", autoencoder.method_name());
    let mut bar = Bar::new("steps");
    bar.message(&format!(
        "fitting {} faces through the physics",
        validation.rows().len()
    ));
    let outcome = validation.fit_row(&name, &autoencoder, &target, settings, batch, &mut bar)?;
    if pictures > 0 {
        let dir = results
            .join("faces")
            .join("autoencoder-amplitude-depth-physics");
        write_faces(&outcome.faces.first(pictures), dataset, model, &dir)?;
    }
    let time = outcome.time();
    scores.push(outcome.errors);
    let bootstrap = Bootstrap::default();
    let table = abs_fit::evaluate::table1(&scores, &bootstrap)?;
    let options = TableOptions {
        layout: Some(dataset.manifest().layout),
        ..TableOptions::default()
    };
    let (md, csv) = (
        results.join("table1-physics-fit.md"),
        results.join("table1-physics-fit.csv"),
    );
    write_table(&table, &md, &csv, &options)?;
    let (fitted, start) = (&scores[scores.len() - 1], &scores[scores.len() - 2]);
    let findings: Vec<Finding> = [Cell::PointDistance, Cell::Translation, Cell::Rotation]
        .into_iter()
        .map(|cell| {
            Ok(Finding {
                claim: "fitting through the physics helps".into(),
                difference: paired_difference(fitted, start, cell, &bootstrap)?,
            })
        })
        .collect::<CliResult<_>>()?;
    let findings_md = findings_markdown(&findings, validation.rows().len());
    morphable::export::atomic_write(
        &results.join("findings-physics-fit.md"),
        findings_md.as_bytes(),
    )?;
    println!(
        "\nTable 1 on the first {} validation faces, with the physics fit ({} steps)\n\n{}\n{findings_md}",
        validation.rows().len(),
        settings.steps,
        markdown_table(&table, &options)
    );
    Ok(time)
}

/// The fit rows' renderer names: "… + fitting (learned renderer)", "… (depth raster)",
/// "… (physics)".
const LEARNED_FIT: &str = "learned renderer";
const RASTER_FIT: &str = "depth raster";
const PHYSICS_FIT: &str = "physics";

/// The paired comparisons behind the README's statements, among the `scores` that exist: every
/// network against the Mean baseline (point distance), depth and amplitude-depth input against
/// amplitude (shape), each autoencoder against its encoder (shape, expression, point distance),
/// and each fit against the autoencoder it starts from (point distance).
fn findings(scores: &[FaceErrors], bootstrap: &Bootstrap) -> CliResult<Vec<Finding>> {
    let name = |stage: &str, kind: InputKind| format!("{stage} ({})", kind.paper_name());
    let mut wanted: Vec<(String, String, String, Cell)> = Vec::new();
    for stage in ["Encoder", "Autoencoder"] {
        for kind in InputKind::ALL {
            wanted.push((
                "a network beats the Mean baseline".into(),
                name(stage, kind),
                MEAN_BASELINE.into(),
                Cell::PointDistance,
            ));
        }
        for kind in [InputKind::Depth, InputKind::AmplitudeDepth] {
            wanted.push((
                "depth input helps shape".into(),
                name(stage, kind),
                name(stage, InputKind::Amplitude),
                Cell::Shape,
            ));
        }
    }
    for kind in InputKind::ALL {
        for cell in [Cell::Shape, Cell::Expression, Cell::PointDistance] {
            wanted.push((
                "the autoencoder beats its encoder".into(),
                name("Autoencoder", kind),
                name("Encoder", kind),
                cell,
            ));
        }
        for cell in [Cell::PointDistance, Cell::Rotation] {
            wanted.push((
                "the iterative encoder beats the one-pass encoder".into(),
                name("Iterative encoder", kind),
                name("Encoder", kind),
                cell,
            ));
        }
        for loss in ["linear", "learned"] {
            for cell in [Cell::PointDistance, Cell::Shape] {
                wanted.push((
                    format!("the {loss} 3D-ID loss changes the encoder"),
                    format!("{} + 3D-ID loss ({loss})", name("Encoder", kind)),
                    name("Encoder", kind),
                    cell,
                ));
            }
        }
        wanted.push((
            "iterating lowers point distance".into(),
            name("Iterative encoder", kind),
            format!("{}, iteration 1", name("Iterative encoder", kind)),
            Cell::PointDistance,
        ));
        for fitted in [LEARNED_FIT, RASTER_FIT] {
            let start = name("Autoencoder", kind);
            wanted.push((
                "test-time fitting lowers point distance".into(),
                format!("{start} + fitting ({fitted})"),
                start,
                Cell::PointDistance,
            ));
        }
    }
    // The physics-decoder autoencoder against its learned-decoder control on the same faces.
    let physics = "Autoencoder with physics decoder";
    for method in scores.iter().filter_map(|s| s.method.strip_prefix(physics)) {
        for cell in [Cell::PointDistance, Cell::Shape, Cell::Rotation] {
            wanted.push((
                "the physics decoder beats the learned one".into(),
                format!("{physics}{method}"),
                format!("Autoencoder{method}"),
                cell,
            ));
        }
    }
    let find = |method: &str| scores.iter().find(|s| s.method == method);
    let mut findings = Vec::new();
    for (claim, a, b, cell) in wanted {
        if let (Some(a), Some(b)) = (find(&a), find(&b)) {
            findings.push(Finding {
                claim,
                difference: paired_difference(a, b, cell, bootstrap)?,
            });
        }
    }
    Ok(findings)
}

/// The cosine-similarity study (Figures 5–6): study faces rendered by the physics renderer
/// (the dataset's imaging, amplitude-depth images at the evaluation range) and encoded by the
/// amplitude-depth autoencoder, with sampled and with neutral pose: `large_shapes` shapes ×
/// the figure's expressions, whose first `--study-shapes` shapes make the paper-sized figure.
/// Writes the matrices as PNG heatmaps and CSV (the larger study's with a `_large` suffix) and
/// `cosine.md` with each matrix's diagonal maximum beside the paper's.
fn study(
    dataset: &Dataset,
    model: &PcaModel,
    networks: &[Networks],
    args: &Args,
    large_shapes: usize,
    results: &Path,
) -> CliResult {
    let net = networks_of(networks, InputKind::AmplitudeDepth)?;
    let autoencoder = TrainedEncoder::load(&net.autoencoder, &Device::Cpu)?;
    let seed = dataset.manifest().seed ^ STUDY_SEED;
    let mut studies = Vec::new();
    for (pose, neutral) in [("sampled", false), ("neutral", true)] {
        let mut bar = Bar::new("faces");
        bar.message(&format!("rendering the {pose}-pose study faces"));
        let encoded = encoder_cosine_study(
            dataset,
            model,
            &autoencoder,
            (large_shapes, args.study_expressions),
            neutral,
            seed,
            &mut bar,
        )?;
        let figure = encoded.study(args.study_shapes)?;
        let large = encoded.study(large_shapes)?;
        for ((label, matrix), (_, large_matrix)) in
            figure.matrices().into_iter().zip(large.matrices())
        {
            let stem = cosine_stem(label, pose);
            write_matrix(matrix, label, &results.join(&stem))?;
            write_matrix(large_matrix, label, &results.join(format!("{stem}_large")))?;
            println!(
                "cosine study, {pose} pose, {label}: diagonal maximum in {:.0} % of {} classes",
                100.0 * matrix.diagonal_max_fraction(),
                matrix.n_classes()
            );
        }
        studies.push((pose, figure, large));
    }
    let reports: Vec<CosineReport<'_>> = studies
        .iter()
        .map(|(pose, figure, large)| CosineReport {
            pose,
            figure,
            large,
        })
        .collect();
    let summary = cosine_markdown(
        "Amplitude-depth autoencoder on faces rendered by the physics renderer at D = 20 dB",
        &reports,
        &Bootstrap::default(),
    )?;
    morphable::export::atomic_write(&results.join("cosine.md"), summary.as_bytes())?;
    println!("\n{summary}");
    Ok(())
}

/// The larger cosine study (sampled pose) of the depth and amplitude-depth encoders with and
/// without each identity loss, on the same rendered faces per input kind: each encoder's shape
/// diagonal maximum on the scale of the paper's figure (`--study-shapes` classes) and its
/// paired difference from the encoder without the loss, in `cosine-id-loss.md`.
fn id_loss_study(
    dataset: &Dataset,
    model: &PcaModel,
    (networks, id_encoders): (&[Networks], &[IdEncoder]),
    args: &Args,
    large_shapes: usize,
    results: &Path,
) -> CliResult {
    let seed = dataset.manifest().seed ^ STUDY_SEED;
    let subset = args.study_shapes.min(large_shapes);
    let mut md = format!(
        "# The 3D identity losses in the cosine study\n\n{}",
        cosine_comparison_header(
            (large_shapes, args.study_expressions),
            subset,
            "the same encoder trained without the loss"
        )
    );
    for kind in [InputKind::Depth, InputKind::AmplitudeDepth] {
        let ids: Vec<&IdEncoder> = id_encoders.iter().filter(|e| e.kind == kind).collect();
        if ids.is_empty() {
            continue;
        }
        let mut encoders = vec![TrainedEncoder::load(
            &networks_of(networks, kind)?.encoder,
            &Device::Cpu,
        )?];
        for id in &ids {
            encoders.push(TrainedEncoder::load(&id.dir, &Device::Cpu)?);
        }
        let labelled: Vec<(String, &TrainedEncoder)> =
            encoders.iter().map(|e| (e.method_name(), e)).collect();
        md.push_str(&cosine_comparison(
            dataset,
            model,
            &labelled,
            (large_shapes, args.study_expressions),
            subset,
            seed,
        )?);
    }
    morphable::export::atomic_write(&results.join("cosine-id-loss.md"), md.as_bytes())?;
    println!("\n{md}");
    Ok(())
}

/// What [`cosine_comparison`]'s rows hold, and their table header.
pub(crate) fn cosine_comparison_header(
    (shapes, expressions): (usize, usize),
    subset: usize,
    reference: &str,
) -> String {
    format!(
        "{shapes} shapes × {expressions} expressions, sampled pose, rendered by the physics \
         renderer at D = 20 dB; the shape matrix's diagonal maximum on the scale of a \
         {subset}-class study with its 95 % bootstrap interval over classes, and the paired \
         difference from {reference} (classes resampled, both encoders on each resample).\n\n\
         | encoder | shape diagonal maximum | 95 % interval | − reference | 95 % interval |\n\
         |---|---:|---|---:|---|\n"
    )
}

/// The larger cosine study of `encoders` (one input kind, each with the label its row shows)
/// on the same `shapes` × `expressions` faces (sampled pose, rendered once, D = 20 dB): a
/// Markdown table row per encoder with its shape diagonal maximum on the scale of a
/// `subset`-class study and, after the first, the paired difference from the first (classes
/// resampled, both encoders on each resample).
pub(crate) fn cosine_comparison(
    dataset: &Dataset,
    model: &PcaModel,
    labelled: &[(String, &TrainedEncoder)],
    (shapes, expressions): (usize, usize),
    subset: usize,
    seed: u64,
) -> CliResult<String> {
    let bootstrap = Bootstrap::default();
    let encoders: Vec<&TrainedEncoder> = labelled.iter().map(|(_, e)| *e).collect();
    let mut bar = Bar::new("faces");
    bar.message(&format!(
        "rendering the {} cosine-study faces",
        encoders.first().map_or("", |e| e.input().name())
    ));
    let studies = encoder_cosine_studies(
        dataset,
        model,
        &encoders,
        (shapes, expressions),
        false,
        seed,
        &mut bar,
    )?;
    let matrices = studies
        .iter()
        .map(|s| Ok(s.study(shapes)?.shape))
        .collect::<CliResult<Vec<CosineMatrix>>>()?;
    let mut md = String::new();
    for (i, ((label, _), matrix)) in labelled.iter().zip(&matrices).enumerate() {
        let own = matrix.diagonal_maximum(subset, &bootstrap)?;
        let versus = if i == 0 {
            "— | — |".to_string()
        } else {
            let (d, interval) =
                matrix.diagonal_maximum_difference(&matrices[0], subset, &bootstrap)?;
            format!("{d:+.3} | [{:+.3}, {:+.3}] |", interval.low, interval.high)
        };
        md.push_str(&format!(
            "| {label} | {:.3} | [{:.3}, {:.3}] | {versus}\n",
            own.fraction, own.interval.low, own.interval.high
        ));
    }
    Ok(md)
}

/// Writes `matrix` as `{stem}.csv` and as a heatmap `{stem}.png` (cosine −1 to 1 in viridis).
fn write_matrix(matrix: &CosineMatrix, label: &str, stem: &Path) -> CliResult {
    write_matrix_csv(matrix, label, &stem.with_extension("csv"))?;
    // Cells of 24 px up to 10 classes, smaller beyond (4 px for 100 classes).
    let cell_px = (HEATMAP_PX / matrix.n_classes() as u32).clamp(4, HEATMAP_CELL_PX);
    let picture = heatmap(&matrix.values, (-1.0, 1.0), ColourMap::Viridis, cell_px);
    save_png(&picture, &stem.with_extension("png"))
}

/// `runtimes.md`: the physics against the amplitude-depth learned renderer per image (on the
/// first validation faces, at the learned renderer's dynamic range), and each fit per face.
fn runtimes(
    dataset: &Dataset,
    model: &PcaModel,
    networks: &[Networks],
    fits: &[FitTime],
    results: &Path,
) -> CliResult {
    let kind = InputKind::AmplitudeDepth;
    let net = networks_of(networks, kind)?;
    let learned = LearnedRenderer::load(&net.decoder, &Device::Cpu)?;
    let rows: Vec<usize> = dataset
        .validation_rows()
        .into_iter()
        .take(TIMED_FACES)
        .collect();
    let times = renderer_times(dataset, model, learned, &rows, TIMING_REPEATS)?;
    let md = runtimes_markdown(&times, kind.name(), (rows.len(), TIMING_REPEATS), fits);
    morphable::export::atomic_write(&results.join("runtimes.md"), md.as_bytes())?;
    println!("\n{md}");
    Ok(())
}
