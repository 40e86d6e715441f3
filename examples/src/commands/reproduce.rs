//! `radar-face reproduce`: the whole paper at one preset — generate the dataset, train every
//! network, evaluate Table 1 (with test-time fitting rows beyond the paper), the
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
//! | preset  | networks (facenet) | pose network | encoder epochs | decoder epochs | autoencoder epochs | batch   | encoder rate   | fit steps |
//! |---------|--------------------|--------------|---------------:|---------------:|-------------------:|--------:|----------------|----------:|
//! | `tiny`  | `Tiny`             | ResNet       | 2              | 2              | 1                  | 8       | 0.001          | 20        |
//! | `quick` | `Quick`            | ResNet       | 10             | 10             | 6                  | 32      | 0.001          | 50        |
//! | `cpu`   | `Cpu`              | ResNet       | 30             | 30             | 15                 | 32      | 0.001          | 100       |
//! | `paper` | `Paper`            | AlexNet      | 200            | 300            | 300                | paper's | 0.01 → 0.001   | 500       |
//!
//! "paper's" batches are 50 (encoder), 150 (decoder) and 50 (autoencoder). The `quick` row aims
//! at ≤ 10 minutes end to end on 2 cores, the `cpu` row at ≤ 90 minutes (measured on 2026-11-21:
//! 6 min 13 s, half of it generating the dataset, and 72 min 20 s, a quarter of it generating).
//! The CPU presets spend their budget on more faces and fewer epochs, because the small networks overfit a few hundred faces: on the built-in model,
//! 510 training faces × 30 epochs left every encoder worse than the Mean baseline in point
//! distance (1.03–1.14 × Mean), 2 040 faces × 8 epochs put every one below it (0.95–0.996).
//! Test-time fits run with `radar-face fit`'s defaults: Adam rate 0.02 and a Gaussian prior of
//! weight 0.001 on the coefficients.
//!
//! # Output
//!
//! `--out` (default `out/reproduce/PRESET`) holds `dataset/`, `networks/{encoder,decoder,
//! autoencoder}-{amplitude,depth,amplitude-depth}/` and `results/`: `table1.md`, `table1.csv`,
//! `cosine_{shape,expression}_{sampled,neutral}_pose.{png,csv}`, `cosine.md`, `runtimes.md` and
//! `faces/VARIANT/` (per face a PLY coloured by error, a PNG of target and rendering, and a PNG
//! of the true, starting and fitted meshes, the last two coloured by error).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use abs_fit::dataset::{Dataset, GenerateOptions, InputKind, generate};
use abs_fit::evaluate::{
    CosineMatrix, TableOptions, cosine_study, cosine_study_faces, markdown_table, render_times,
    write_matrix_csv, write_table,
};
use abs_fit::train::{
    AutoencoderTrainConfig, DecoderTrainConfig, EncoderTrainConfig, LearningRate, TrainSchedule,
};
use abs_fit::{
    LearnedRenderer, ParamGroup, PhysicsRenderer, Preset, Progress, Renderer, Table1Row,
    TrainedEncoder, evaluate, train_autoencoder, train_decoder, train_encoder,
};
use backproject::ColourMap;
use candle_core::{DType, Device, Tensor};
use clap::Args as ClapArgs;
use facenet::{ComputeDevice, PoseNetwork};
use morphable::PcaModel;
use ndarray::Array2;

use crate::commands::evaluate::{
    baseline_rows, check_model, dataset_config, evaluation_range_db, method_name, predict_rows,
    truth_params,
};
use crate::commands::fit::{
    FIT_LEARNING_RATE, FIT_PRIOR, FitSettings, FitTarget, fit_faces, with_dynamic_range,
    write_faces,
};
use crate::pictures::heatmap;
use crate::progress::Bar;
use crate::{CliResult, create_dir, load_model};

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
}

/// The training and fitting effort of a preset (the table in the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Network sizes.
    pub network: facenet::Preset,
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
}

impl Budget {
    /// The budget of `preset`.
    pub fn of(preset: Preset) -> Self {
        let (network, [encoder_epochs, decoder_epochs, autoencoder_epochs], batch, fit_steps) =
            match preset {
                Preset::Tiny => (facenet::Preset::Tiny, [2, 2, 1], Some(8), 20),
                Preset::Quick => (facenet::Preset::Quick, [10, 10, 6], Some(32), 50),
                Preset::Cpu => (facenet::Preset::Cpu, [30, 30, 15], Some(32), 100),
                Preset::Paper => (facenet::Preset::Paper, [200, 300, 300], None, 500),
            };
        let (encoder_learning_rate, pose_network) = match preset {
            Preset::Paper => (LearningRate::PAPER_ENCODER, PoseNetwork::AlexNet),
            _ => (LearningRate::constant(1e-3), PoseNetwork::ResNet),
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
/// Timed repetitions of each renderer.
const TIMING_REPEATS: usize = 3;
/// Mixed into the dataset's seed to seed the cosine study's faces and renderings.
const STUDY_SEED: u64 = 0xC051_0E57_0D1E_5EED;
/// Pixels per cell of the cosine heatmaps.
const HEATMAP_CELL_PX: u32 = 24;

/// The networks of one input kind.
struct Networks {
    kind: InputKind,
    encoder: PathBuf,
    decoder: PathBuf,
    autoencoder: PathBuf,
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
    if args.study_shapes < 2 || args.study_expressions < 2 {
        return Err(format!(
            "--study-shapes {} --study-expressions {}: the cosine study needs at least 2 of each \
             (every class needs two instances)",
            args.study_shapes, args.study_expressions
        )
        .into());
    }
    let started = Instant::now();
    let budget = Budget {
        device: args.device,
        ..Budget::of(args.preset)
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("out/reproduce").join(args.preset.name()));
    let model = load_model(args.model.as_deref())?;

    let mut config = args.preset.dataset()?;
    if let Some(n) = args.samples {
        config.n_samples = n;
    }
    let dataset = generate(
        &model,
        &config,
        &out.join("dataset"),
        &GenerateOptions::default(),
        &mut Bar::new("samples"),
    )?;
    check_model(&dataset, &model)?;

    let networks = train_all(&dataset, &budget, args.epochs, &out.join("networks"))?;

    let results = create_dir(&out.join("results"))?;
    let fit_steps = args.fit_steps.unwrap_or(budget.fit_steps);
    let fit_seconds = table1(&dataset, &model, &networks, fit_steps, args.faces, &results)?;
    study(&dataset, &model, &networks, &args, &results)?;
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
        };
        let paper = EncoderTrainConfig::paper(budget.network);
        let encoder_config = EncoderTrainConfig {
            schedule: TrainSchedule {
                learning_rate: budget.encoder_learning_rate,
                ..budget.schedule(paper.schedule, epochs.unwrap_or(budget.encoder_epochs))
            },
            pose_network: budget.pose_network,
            ..paper
        };
        let mut bar = Bar::new("steps");
        bar.message(&format!("training the {} encoder", kind.name()));
        let encoder = train_encoder(dataset, kind, &encoder_config, &networks.encoder, &mut bar)?;

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

/// Seconds per face of one test-time fit, for the run-time table.
struct FitTime {
    method: String,
    faces: usize,
    steps: usize,
    seconds_per_face: f64,
}

/// Table 1 on the validation split: the baselines, the encoders, the autoencoders, and beyond
/// the paper each autoencoder refined by test-time fitting through its learned renderer, and the
/// depth autoencoder refined through the depth raster. Writes `table1.md`, `table1.csv` and the
/// first `faces` fitted faces of each fit under `faces/`; returns the fits' run times.
fn table1(
    dataset: &Dataset,
    model: &PcaModel,
    networks: &[Networks],
    fit_steps: usize,
    faces: usize,
    results: &Path,
) -> CliResult<Vec<FitTime>> {
    let rows = dataset.validation_rows();
    if rows.is_empty() {
        return Err(format!(
            "dataset {} has no validation samples",
            dataset.dir().display()
        )
        .into());
    }
    let layout = dataset.manifest().layout;
    let d_db = evaluation_range_db()?;
    let truth = truth_params(dataset, &rows, d_db)?;
    let device = Device::Cpu;
    let mut table = baseline_rows(dataset, model, &rows, truth.view())?;
    let score = |name: String, predicted: &Array2<f32>| -> CliResult<Table1Row> {
        Ok(evaluate(
            name,
            predicted.view(),
            truth.view(),
            &layout,
            model,
        )?)
    };
    let batch = rows.len().min(64);
    for stage in ["encoder", "autoencoder"] {
        for net in networks {
            let dir = if stage == "encoder" {
                &net.encoder
            } else {
                &net.autoencoder
            };
            let encoder = TrainedEncoder::load(dir, &device)?;
            let predicted = predict_rows(&encoder, dataset, &rows, d_db, batch)?;
            table.push(score(method_name(&encoder), &predicted)?);
        }
    }

    let settings = FitSettings {
        steps: fit_steps,
        learning_rate: FIT_LEARNING_RATE,
        prior: FIT_PRIOR,
    };
    let mut times = Vec::new();
    let faces_dir = results.join("faces");
    let mut fit_row =
        |name: String, target: FitTarget<'_>, encoder: &TrainedEncoder, slug: String| {
            let predicted = predict_rows(encoder, dataset, &rows, d_db, batch)?;
            let started = Instant::now();
            let fitted = fit_faces(&target, dataset, &rows, &predicted, &settings)?;
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "{name}: image loss {:.5} → {:.5} in {} steps ({seconds:.1} s)",
                fitted.losses.first().copied().unwrap_or(f32::NAN),
                fitted.losses.last().copied().unwrap_or(f32::NAN),
                fitted.steps
            );
            // The fit keeps the rendering columns but its renderer's dynamic range: evaluate with
            // the prediction's rendering columns, as the unfitted row is.
            let mut evaluated = fitted.fitted.clone();
            let render = ndarray::s![.., layout.range(ParamGroup::Render)];
            evaluated.slice_mut(render).assign(&predicted.slice(render));
            let row = score(name.clone(), &evaluated)?;
            if faces > 0 {
                write_faces(&fitted.first(faces), dataset, model, &faces_dir.join(slug))?;
            }
            times.push(FitTime {
                method: name,
                faces: rows.len(),
                steps: fitted.steps,
                seconds_per_face: seconds / rows.len() as f64,
            });
            CliResult::Ok(row)
        };
    let mut fitted_rows = Vec::new();
    for net in networks {
        let autoencoder = TrainedEncoder::load(&net.autoencoder, &device)?;
        let target = FitTarget::learned(LearnedRenderer::load(&net.decoder, &device)?);
        let name = format!("{} + fitting (learned renderer)", method_name(&autoencoder));
        let slug = format!("autoencoder-{}-learned", net.kind.name());
        fitted_rows.push(fit_row(name, target, &autoencoder, slug)?);
    }
    if let Some(net) = networks.iter().find(|n| n.kind == InputKind::Depth) {
        let autoencoder = TrainedEncoder::load(&net.autoencoder, &device)?;
        let target = FitTarget::load(
            &crate::commands::fit::RendererChoice::DepthRaster,
            dataset,
            model,
            &device,
        )?;
        let name = format!("{} + fitting (depth raster)", method_name(&autoencoder));
        fitted_rows.push(fit_row(
            name,
            target,
            &autoencoder,
            "autoencoder-depth-raster".into(),
        )?);
    }
    table.extend(fitted_rows);

    let options = TableOptions::default();
    let (md, csv) = (results.join("table1.md"), results.join("table1.csv"));
    write_table(&table, &md, &csv, &options)?;
    println!(
        "\nTable 1: {} validation samples at D = {d_db} dB\n\n{}",
        rows.len(),
        markdown_table(&table, &options)
    );
    Ok(times)
}

/// The cosine-similarity study (Figures 5–6): study faces rendered by the physics renderer
/// (the dataset's imaging, amplitude-depth images at the evaluation range) and encoded by the
/// amplitude-depth autoencoder, with sampled and with neutral pose. Writes the matrices as PNG
/// heatmaps and CSV and `cosine.md` with each matrix's diagonal-maximum fraction.
fn study(
    dataset: &Dataset,
    model: &PcaModel,
    networks: &[Networks],
    args: &Args,
    results: &Path,
) -> CliResult {
    let kind = InputKind::AmplitudeDepth;
    let net = networks_of(networks, kind)?;
    let autoencoder = TrainedEncoder::load(&net.autoencoder, &Device::Cpu)?;
    let config = dataset_config(dataset)?;
    let layout = dataset.manifest().layout;
    let seed = dataset.manifest().seed ^ STUDY_SEED;
    let d_db = evaluation_range_db()?;
    let mut summary = String::from(
        "# Cosine-similarity study (Figures 5–6)\n\nAmplitude-depth autoencoder on faces rendered \
         by the physics renderer at D = 20 dB. Diagonal maximum: the fraction of classes whose \
         row is largest on the diagonal (1: every class told apart).\n\n\
         | pose | matrix | classes | diagonal maximum |\n|---|---|---:|---:|\n",
    );
    let mut tables = String::new();
    for (pose, neutral) in [("sampled", false), ("neutral", true)] {
        let faces = cosine_study_faces(
            &layout,
            &config.sampling,
            args.study_shapes,
            args.study_expressions,
            neutral,
            seed,
        )?;
        let labels: Vec<(usize, usize)> = faces.iter().map(|(i, j, _)| (*i, *j)).collect();
        let vectors: Vec<f32> = faces
            .into_iter()
            .flat_map(|(_, _, mut face)| {
                face.render.dynamic_range_db = f64::from(d_db);
                layout.to_vector(&face)
            })
            .collect();
        let params = Array2::from_shape_vec((labels.len(), layout.len()), vectors)?;
        let images = render_physics(model, dataset, &params, kind, seed, pose)?;
        let predicted = autoencoder.predict(&images)?.to_dtype(DType::F32)?;
        let predicted = Array2::from_shape_vec(
            predicted.dims2()?,
            predicted.flatten_all()?.to_vec1::<f32>()?,
        )?;
        let matrices = cosine_study(predicted.view(), &labels, &layout)?;
        for (label, matrix) in [
            ("shape", &matrices.shape),
            ("expression", &matrices.expression),
        ] {
            let name = format!("cosine_{label}_{pose}_pose");
            write_matrix(matrix, label, &results.join(&name))?;
            let fraction = matrix.diagonal_max_fraction();
            println!(
                "cosine study, {pose} pose, {label}: diagonal maximum in {:.0} % of {} classes",
                100.0 * fraction,
                matrix.n_classes()
            );
            let _ = writeln!(
                summary,
                "| {pose} | {label} | {} | {fraction:.3} |",
                matrix.n_classes()
            );
            let _ = write!(
                tables,
                "\n## {label}, {pose} pose ({name}.png)\n\n{}",
                markdown_matrix(matrix, label)
            );
        }
    }
    summary.push_str(
        "\nCell (i, j): mean cosine similarity between the predicted coefficient vectors of \
         the faces of true class i and those of true class j (the diagonal: distinct faces of \
         one class); the largest cell of each row is bold.\n",
    );
    summary.push_str(&tables);
    let path = results.join("cosine.md");
    morphable::export::atomic_write(&path, summary.as_bytes())?;
    Ok(())
}

/// A cosine matrix as a Markdown table with the largest cell of each row in bold.
fn markdown_matrix(matrix: &CosineMatrix, label: &str) -> String {
    let k = matrix.n_classes();
    let mut out = format!("| {label} |");
    for j in 0..k {
        let _ = write!(out, " {j} |");
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(k));
    out.push('\n');
    for (i, row) in matrix.values.iter().enumerate() {
        let largest = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let _ = write!(out, "| {i} |");
        for &value in row {
            if value == largest {
                let _ = write!(out, " **{value:.2}** |");
            } else {
                let _ = write!(out, " {value:.2} |");
            }
        }
        out.push('\n');
    }
    out
}

/// Faces to render per physics-renderer call: the unit of progress.
const RENDER_CHUNK: usize = 8;

/// Physics-renderer images (N, C, H, W) of `kind` of the scaled parameter rows `params`, the
/// dataset's imaging, row k simulated with seed `seed + k`.
fn render_physics(
    model: &PcaModel,
    dataset: &Dataset,
    params: &Array2<f32>,
    kind: InputKind,
    seed: u64,
    what: &str,
) -> CliResult<Tensor> {
    let imaging = dataset_config(dataset)?.imaging;
    let layout = dataset.manifest().layout;
    let n = params.nrows();
    let mut bar = Bar::new("faces");
    bar.start(
        &format!("rendering the {what}-pose study faces"),
        n as u64,
        0,
    );
    let mut images = Vec::new();
    for start in (0..n).step_by(RENDER_CHUNK) {
        let end = (start + RENDER_CHUNK).min(n);
        let renderer = PhysicsRenderer::new(model, layout, imaging.clone())?
            .with_output(kind)
            .with_seed(seed.wrapping_add(start as u64));
        let chunk = params.slice(ndarray::s![start..end, ..]);
        let tensor = Tensor::from_vec(
            chunk.iter().copied().collect::<Vec<f32>>(),
            (end - start, layout.len()),
            &Device::Cpu,
        )?;
        images.push(renderer.render(&tensor)?);
        bar.advance((end - start) as u64);
    }
    bar.finish();
    Ok(Tensor::cat(&images, 0)?)
}

/// Writes `matrix` as `{stem}.csv` and as a heatmap `{stem}.png` (cosine −1 to 1 in viridis).
fn write_matrix(matrix: &CosineMatrix, label: &str, stem: &Path) -> CliResult {
    write_matrix_csv(matrix, label, &stem.with_extension("csv"))?;
    let png = stem.with_extension("png");
    heatmap(
        &matrix.values,
        (-1.0, 1.0),
        ColourMap::Viridis,
        HEATMAP_CELL_PX,
    )
    .save(&png)
    .map_err(|e| format!("cannot write {}: {e}", png.display()))?;
    Ok(())
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
    let learned = FitTarget::learned(LearnedRenderer::load(&net.decoder, &Device::Cpu)?);
    let layout = dataset.manifest().layout;
    let rows: Vec<usize> = dataset
        .validation_rows()
        .into_iter()
        .take(TIMED_FACES)
        .collect();
    let params = with_dynamic_range(
        &truth_params(dataset, &rows, learned.target_db)?,
        &layout,
        learned.target_db,
    )?;
    let tensor = Tensor::from_vec(
        params.iter().copied().collect::<Vec<f32>>(),
        (rows.len(), layout.len()),
        &Device::Cpu,
    )?;
    let physics = PhysicsRenderer::new(model, layout, dataset_config(dataset)?.imaging)?
        .with_output(kind)
        .with_seed(dataset.manifest().seed);
    let times = render_times(&physics, learned.renderer.as_ref(), &tensor, TIMING_REPEATS)?;
    let mut md = format!(
        "# Run times\n\nOne process on this machine's CPU; medians of {TIMING_REPEATS} timed \
         calls on {} validation faces after a warm-up.\n\n| what | seconds per image or face |\n\
         |---|---:|\n| physics renderer ({}) | {:.4} |\n| learned renderer ({}) | {:.6} |\n\
         | speed-up of the learned renderer | {:.1}× |\n",
        rows.len(),
        kind.name(),
        times.physics_s_per_image,
        kind.name(),
        times.learned_s_per_image,
        times.speedup()
    );
    for fit in fits {
        let _ = writeln!(
            md,
            "| {} ({} faces fitted together, {} steps), per face | {:.4} |",
            fit.method, fit.faces, fit.steps, fit.seconds_per_face
        );
    }
    let path = results.join("runtimes.md");
    morphable::export::atomic_write(&path, md.as_bytes())?;
    println!("\n{md}");
    Ok(())
}
