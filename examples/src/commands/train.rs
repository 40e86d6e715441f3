//! `radar-face train`: one of the paper's three training stages (§3.3–3.5) on a dataset, in a
//! stage directory that a second run on the same `--out` resumes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use abs_fit::card::ModelCard;
use abs_fit::dataset::{Dataset, InputKind};
use abs_fit::train::{
    AutoencoderTrainConfig, DecoderTrainConfig, EncoderTrainConfig, ITERATIVE_GEOMETRY_WEIGHT,
    IterativeTrainConfig, LearningRate, ParamLoss, TrainSchedule,
};
use abs_fit::{
    FeedbackSet, LearnedRenderer, TrainedEncoder, train_autoencoder, train_decoder, train_encoder,
    train_iterative,
};
use clap::{Args as ClapArgs, ValueEnum};

use crate::progress::Bar;
use crate::{CliResult, load_model};

/// The training stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Stage {
    /// The face encoder: images → parameters (§3.3).
    Encoder,
    /// The learned renderer: parameters → images at 15 dB (§3.4).
    Decoder,
    /// A trained encoder trained further through a frozen decoder (§3.4, eq. 1).
    Autoencoder,
    /// An encoder that also reads feedback channels of its current estimate and is applied
    /// several times (the coarse-to-fine paper's CoarseNet).
    Iterative,
}

/// Command-line options.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Dataset directory (written by `generate`); training uses its training split.
    #[arg(long)]
    dataset: PathBuf,
    /// The stage to train.
    #[arg(long, value_enum)]
    stage: Stage,
    /// Images the encoder reads or the decoder renders: amplitude, depth or amplitude-depth.
    /// The autoencoder reads what its encoder reads (if given, it must agree).
    #[arg(long, value_parser = parse_input)]
    input: Option<InputKind>,
    /// Network size: tiny, quick, cpu or paper (default quick). The autoencoder keeps its
    /// encoder's architecture.
    #[arg(long)]
    preset: Option<facenet::NetworkSize>,
    /// Epochs of the whole run (default: the paper's, 200 / 300 / 300).
    #[arg(long)]
    epochs: Option<usize>,
    /// Examples per optimiser step (default: the paper's, 50 / 150 / 50).
    #[arg(long)]
    batch: Option<usize>,
    /// Seed of the initial weights, the shuffling and the dynamic-range draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A constant Adam learning rate instead of the paper's schedule.
    #[arg(long)]
    learning_rate: Option<f64>,
    /// The encoder's network for pose and rendering parameters: alexnet (the paper, the
    /// default) or resnet (learns rotation on the small presets). Encoder stage only.
    #[arg(long)]
    pose_network: Option<facenet::PoseNetwork>,
    /// Where the network trains: cpu, or cuda / cuda:N with a build that has `--features cuda`.
    #[arg(long, default_value = "cpu")]
    device: facenet::ComputeDevice,
    /// The trained encoder the autoencoder starts from (autoencoder stage only).
    #[arg(long)]
    encoder: Option<PathBuf>,
    /// The trained decoder (learned renderer) the autoencoder trains through (autoencoder
    /// stage only).
    #[arg(long)]
    decoder: Option<PathBuf>,
    /// Feedback channels of the iterative stage: a comma-separated list of pncc, normals,
    /// depth and residual, or none (default: depth, and the residual where the input has
    /// depth).
    #[arg(long)]
    feedback: Option<FeedbackSet>,
    /// Fraction of the iterative stage's estimates at the mean face (the others mix the truth
    /// with a random face, β ~ U(0, 1)).
    #[arg(long)]
    mean_start_fraction: Option<f64>,
    /// Fraction of the iterative stage's batches that train on the network's own estimates
    /// (one step from the drawn ones), as inference feeds it its previous output.
    #[arg(long)]
    own_estimate_fraction: Option<f64>,
    /// Weight (1/mm²) of the iterative stage's geometry-aware loss on the coefficients (mean
    /// squared vertex displacement) against the L2 of the pose and rendering columns.
    #[arg(long)]
    geometry_weight: Option<f64>,
    /// A statismo / BFM 2019 model file instead of the built-in model: the dataset's model,
    /// whose faces the iterative stage's feedback channels render.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Stage directory: `model.json` and the checkpoint. Running again resumes.
    #[arg(long, short)]
    out: PathBuf,
}

/// An [`InputKind`] from its name.
pub fn parse_input(s: &str) -> Result<InputKind, String> {
    InputKind::ALL
        .into_iter()
        .find(|kind| kind.name() == s)
        .ok_or_else(|| format!("'{s}': choose amplitude, depth or amplitude-depth"))
}

/// `schedule` with the command line's epochs, batch size, seed and learning rate.
fn overridden(schedule: TrainSchedule, args: &Args) -> TrainSchedule {
    TrainSchedule {
        epochs: args.epochs.unwrap_or(schedule.epochs),
        batch_size: args.batch.unwrap_or(schedule.batch_size),
        seed: args.seed,
        device: args.device,
        learning_rate: args
            .learning_rate
            .map_or(schedule.learning_rate, LearningRate::constant),
        ..schedule
    }
}

/// Trains the chosen stage on the dataset's training split in `--out` (resuming what is there)
/// and prints one line on the trained network.
pub fn run(args: Args) -> CliResult {
    refuse_ignored(&args)?;
    let dataset = Dataset::open(&args.dataset)?;
    let started = Instant::now();
    let mut bar = Bar::new("steps");
    let device = args.device.open()?;
    let what = match args.stage {
        Stage::Iterative => {
            let input = args
                .input
                .ok_or("--stage iterative needs --input amplitude|depth|amplitude-depth")?;
            let model = Arc::new(load_model(args.model.as_deref())?);
            let paper =
                EncoderTrainConfig::paper(args.preset.unwrap_or(facenet::NetworkSize::Quick));
            let encoder = EncoderTrainConfig {
                schedule: overridden(paper.schedule, &args),
                pose_network: args.pose_network.unwrap_or(facenet::PoseNetwork::AlexNet),
                param_loss: ParamLoss::geometry(
                    model.clone(),
                    args.geometry_weight.unwrap_or(ITERATIVE_GEOMETRY_WEIGHT),
                ),
                ..paper
            };
            let defaults = IterativeTrainConfig::new(encoder, input);
            let config = IterativeTrainConfig {
                feedback: args.feedback.unwrap_or(defaults.feedback),
                mean_start_fraction: args
                    .mean_start_fraction
                    .unwrap_or(defaults.mean_start_fraction),
                own_estimate_fraction: args
                    .own_estimate_fraction
                    .unwrap_or(defaults.own_estimate_fraction),
                ..defaults
            };
            let trained = train_iterative(
                &dataset,
                model.as_ref(),
                input,
                &config,
                &args.out,
                &mut bar,
            )?;
            format!(
                "{} reading feedback {}",
                describe(trained.card(), config.encoder.schedule),
                config.feedback
            )
        }
        Stage::Encoder | Stage::Decoder => {
            let input = args.input.ok_or_else(|| {
                format!(
                    "--stage {} needs --input amplitude|depth|amplitude-depth",
                    stage_name(args.stage)
                )
            })?;
            let preset = args.preset.unwrap_or(facenet::NetworkSize::Quick);
            if args.stage == Stage::Encoder {
                let paper = EncoderTrainConfig::paper(preset);
                let config = EncoderTrainConfig {
                    schedule: overridden(paper.schedule, &args),
                    pose_network: args.pose_network.unwrap_or(facenet::PoseNetwork::AlexNet),
                    ..paper
                };
                let encoder = train_encoder(&dataset, input, &config, &args.out, &mut bar)?;
                describe(encoder.card(), config.schedule)
            } else {
                let paper = DecoderTrainConfig::paper(preset);
                let config = DecoderTrainConfig {
                    schedule: overridden(paper.schedule, &args),
                    ..paper
                };
                let decoder = train_decoder(&dataset, input, &config, &args.out, &mut bar)?;
                describe(decoder.card(), config.schedule)
            }
        }
        Stage::Autoencoder => {
            if args.preset.is_some() {
                return Err(
                    "--preset does not apply to --stage autoencoder: it keeps the \
                            architecture of its --encoder"
                        .into(),
                );
            }
            let (Some(encoder_dir), Some(decoder_dir)) = (&args.encoder, &args.decoder) else {
                return Err(
                    "--stage autoencoder needs --encoder DIR (a trained encoder) and \
                            --decoder DIR (a trained decoder)"
                        .into(),
                );
            };
            let encoder = TrainedEncoder::load(encoder_dir, &device)?;
            if let Some(input) = args.input
                && input != encoder.input()
            {
                return Err(format!(
                    "--input {} disagrees with encoder {}, which reads {} images",
                    input.name(),
                    encoder_dir.display(),
                    encoder.input().name()
                )
                .into());
            }
            let decoder = LearnedRenderer::load(decoder_dir, &device)?;
            let paper = AutoencoderTrainConfig::paper();
            let config = AutoencoderTrainConfig {
                schedule: overridden(paper.schedule, &args),
                ..paper
            };
            let trained =
                train_autoencoder(&dataset, encoder, &decoder, &config, &args.out, &mut bar)?;
            describe(trained.card(), config.schedule)
        }
    };
    println!(
        "{what} → {} ({:.1} s)",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Options the chosen stage would ignore are an error, not silently dropped: `--encoder` and
/// `--decoder` belong to the autoencoder stage, `--pose-network` to the encoder stage.
fn refuse_ignored(args: &Args) -> CliResult {
    let stage = stage_name(args.stage);
    let ignored = [
        (
            "--encoder",
            args.encoder.is_some() && args.stage != Stage::Autoencoder,
        ),
        (
            "--decoder",
            args.decoder.is_some() && args.stage != Stage::Autoencoder,
        ),
        (
            "--pose-network",
            args.pose_network.is_some() && !matches!(args.stage, Stage::Encoder | Stage::Iterative),
        ),
        (
            "--feedback",
            args.feedback.is_some() && args.stage != Stage::Iterative,
        ),
        (
            "--mean-start-fraction",
            args.mean_start_fraction.is_some() && args.stage != Stage::Iterative,
        ),
        (
            "--own-estimate-fraction",
            args.own_estimate_fraction.is_some() && args.stage != Stage::Iterative,
        ),
        (
            "--geometry-weight",
            args.geometry_weight.is_some() && args.stage != Stage::Iterative,
        ),
        (
            "--model",
            args.model.is_some() && args.stage != Stage::Iterative,
        ),
    ];
    match ignored.iter().find(|(_, ignored)| *ignored) {
        Some((option, _)) => Err(format!(
            "{option} does not apply to --stage {stage}: --encoder and --decoder belong to \
             --stage autoencoder, --pose-network to --stage encoder or iterative, --feedback, \
             --mean-start-fraction, --own-estimate-fraction, --geometry-weight and --model to \
             --stage iterative"
        )
        .into()),
        None => Ok(()),
    }
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Encoder => "encoder",
        Stage::Decoder => "decoder",
        Stage::Autoencoder => "autoencoder",
        Stage::Iterative => "iterative",
    }
}

/// One line on a trained network.
fn describe(card: &ModelCard, schedule: TrainSchedule) -> String {
    format!(
        "{} ({} images, {} × {}, {} parameters) trained for {} epochs of batches of {}",
        card.stage,
        card.image.name(),
        card.height,
        card.width,
        card.layout.len(),
        schedule.epochs,
        schedule.batch_size
    )
}
