//! `radar-face train`: one of the paper's three training stages (§3.3–3.5) on a dataset, in a
//! stage directory that a second run on the same `--out` resumes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use abs_fit::card::ModelCard;
use abs_fit::dataset::{Dataset, InputKind};
use abs_fit::train::{
    AutoencoderTrainConfig, DecoderTrainConfig, EncoderTrainConfig, ITERATIVE_GEOMETRY_WEIGHT,
    IdLoss, IdLossKind, IterativeTrainConfig, LearningRate, MeshEncoderConfig, ParamLoss,
    TrainSchedule,
};
use abs_fit::{
    FeedbackSet, FrozenDecoder, LearnedRenderer, PhysicsSeeds, TrainedEncoder, train_autoencoder,
    train_decoder, train_encoder, train_iterative, train_iterative_from, train_mesh_encoder,
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
    /// The mesh autoencoder of spectral graph convolutions (COMA) behind the learned 3D
    /// identity loss, trained on meshes of the face model (no dataset).
    MeshEncoder,
}

/// Command-line options.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Dataset directory (written by `generate`); training uses its training split. Every
    /// stage but mesh-encoder needs one.
    #[arg(long)]
    dataset: Option<PathBuf>,
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
    /// The trained encoder the autoencoder starts from (autoencoder stage), or the one-pass
    /// encoder the iterative encoder starts from (iterative stage: its weights on the image
    /// channels, zeros on the feedback channels; same input kind, preset and pose network).
    #[arg(long)]
    encoder: Option<PathBuf>,
    /// The frozen decoder the autoencoder trains through: the directory of a trained decoder
    /// (learned renderer), or `physics` (the differentiable physics on the dataset's imaging,
    /// each face with the seed it was generated with, so that the true face renders the target
    /// itself) or `physics:other` (each face with another realisation of its diffuse field). A
    /// directory named `physics` is `./physics`. For the iterative stage: the trained decoder
    /// of the input's kind whose images the `learned` feedback channels show.
    #[arg(long, value_parser = parse_decoder)]
    decoder: Option<DecoderChoice>,
    /// Train the autoencoder on the first N training faces only (the physics decoder costs
    /// about a second of one core per face at `cpu` imaging).
    #[arg(long)]
    train_faces: Option<usize>,
    /// Feedback channels of the iterative stage: a comma-separated list of pncc, normals,
    /// depth, residual and learned (a learned renderer's image of the estimate and the input
    /// minus it; needs --decoder DIR), or none (default: depth, and the residual where the
    /// input has depth).
    #[arg(long)]
    feedback: Option<FeedbackSet>,
    /// The factor the iterative stage's residual channel is multiplied by (default 1).
    #[arg(long)]
    residual_gain: Option<f64>,
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
    /// whose faces the iterative stage's feedback channels render, the identity loss compares
    /// and the mesh encoder learns.
    #[arg(long)]
    model: Option<PathBuf>,
    /// An identity loss beside the encoder's parameter loss: linear (the cosine of the shape
    /// offsets in vertex space), learned:DIR (a mesh encoder trained by --stage
    /// mesh-encoder), or distilled:DIR (that mesh encoder distilled into a small network of
    /// the coefficients first: ~1 min once, then a few percent of a step; its fidelity is
    /// written to the stage's identity-distillation.json), or distilled-centred:DIR (the same,
    /// comparing the identities less their mean). Encoder stage only.
    #[arg(long)]
    id_loss: Option<IdLossKind>,
    /// λ_id, the weight of the identity loss (the 3D-ID paper: 0.5).
    #[arg(long)]
    id_weight: Option<f64>,
    /// Length of the mesh encoder's code (mesh-encoder stage; default 16).
    #[arg(long)]
    code: Option<usize>,
    /// The leading code entries that make the identity vector (mesh-encoder stage; default:
    /// the whole code).
    #[arg(long)]
    identity: Option<usize>,
    /// Meshes drawn per epoch (mesh-encoder stage; default 2048).
    #[arg(long)]
    meshes_per_epoch: Option<usize>,
    /// Held-out meshes whose reconstruction error is reported (mesh-encoder stage; default
    /// 256).
    #[arg(long)]
    validation_meshes: Option<usize>,
    /// Weight of the term that keeps the identity vector of one shape under two expressions
    /// the same (mesh-encoder stage; default 0: off).
    #[arg(long)]
    invariance_weight: Option<f64>,
    /// Stage directory: `model.json` and the checkpoint. Running again resumes.
    #[arg(long, short)]
    out: PathBuf,
}

/// The autoencoder's frozen decoder on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum DecoderChoice {
    /// A trained decoder's directory.
    Learned(PathBuf),
    /// The differentiable physics, with the faces' own or other seeds.
    Physics(PhysicsSeeds),
}

/// `physics`, `physics:other`, or a directory.
fn parse_decoder(s: &str) -> Result<DecoderChoice, String> {
    Ok(match s {
        "physics" | "physics:target" => DecoderChoice::Physics(PhysicsSeeds::Target),
        "physics:other" => DecoderChoice::Physics(PhysicsSeeds::Other),
        _ if s.starts_with("physics:") => {
            return Err(format!(
                "'{s}': expected physics, physics:target, physics:other or a directory"
            ));
        }
        dir => DecoderChoice::Learned(PathBuf::from(dir)),
    })
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
    let started = Instant::now();
    let mut bar = Bar::new("steps");
    let dataset = match (&args.dataset, args.stage) {
        (_, Stage::MeshEncoder) => return train_mesh(&args, started, &mut bar),
        (Some(dir), _) => Dataset::open(dir)?,
        (None, stage) => {
            return Err(format!("--stage {} needs --dataset DIR", stage_name(stage)).into());
        }
    };
    let device = args.device.open()?;
    let what = match args.stage {
        Stage::MeshEncoder => return train_mesh(&args, started, &mut bar),
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
            let feedback_renderer = match &args.decoder {
                None => None,
                Some(DecoderChoice::Learned(dir)) => Some(dir.clone()),
                Some(DecoderChoice::Physics(_)) => {
                    return Err("--stage iterative's --decoder is a trained decoder's \
                                directory (for the learned feedback channels), not the physics"
                        .into());
                }
            };
            let config = IterativeTrainConfig {
                feedback: args.feedback.unwrap_or(defaults.feedback),
                feedback_renderer,
                residual_gain: args.residual_gain.unwrap_or(defaults.residual_gain),
                mean_start_fraction: args
                    .mean_start_fraction
                    .unwrap_or(defaults.mean_start_fraction),
                own_estimate_fraction: args
                    .own_estimate_fraction
                    .unwrap_or(defaults.own_estimate_fraction),
                ..defaults
            };
            let trained = match &args.encoder {
                None => train_iterative(
                    &dataset,
                    model.as_ref(),
                    input,
                    &config,
                    &args.out,
                    &mut bar,
                )?,
                Some(dir) => {
                    let start = TrainedEncoder::load(dir, &device)?;
                    if start.input() != input {
                        return Err(format!(
                            "--encoder {} reads {} images but --input is {}",
                            dir.display(),
                            start.input().name(),
                            input.name()
                        )
                        .into());
                    }
                    train_iterative_from(
                        &dataset,
                        model.as_ref(),
                        start,
                        &config,
                        &args.out,
                        &mut bar,
                    )?
                }
            };
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
                let id_loss = match &args.id_loss {
                    Some(kind) => Some(IdLoss::new(
                        kind.clone(),
                        args.id_weight.unwrap_or(DEFAULT_ID_WEIGHT),
                        Arc::new(load_model(args.model.as_deref())?),
                    )),
                    None => None,
                };
                let config = EncoderTrainConfig {
                    schedule: overridden(paper.schedule, &args),
                    pose_network: args.pose_network.unwrap_or(facenet::PoseNetwork::AlexNet),
                    id_loss,
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
            let (Some(encoder_dir), Some(decoder_choice)) = (&args.encoder, &args.decoder) else {
                return Err(
                    "--stage autoencoder needs --encoder DIR (a trained encoder) and \
                            --decoder DIR (a trained decoder) or --decoder physics"
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
            let paper = AutoencoderTrainConfig::paper();
            let config = AutoencoderTrainConfig {
                schedule: overridden(paper.schedule, &args),
                train_faces: args.train_faces,
                ..paper
            };
            let (trained, through) = match decoder_choice {
                DecoderChoice::Learned(dir) => {
                    let decoder = LearnedRenderer::load(dir, &device)?;
                    let trained = train_autoencoder(
                        &dataset, encoder, &decoder, &config, &args.out, &mut bar,
                    )?;
                    (trained, format!("decoder {}", dir.display()))
                }
                DecoderChoice::Physics(seeds) => {
                    let model = load_model(args.model.as_deref())?;
                    let kind = encoder.input();
                    let decoder = FrozenDecoder::physics(&model, &dataset, kind, *seeds)?;
                    let trained = train_autoencoder(
                        &dataset, encoder, decoder, &config, &args.out, &mut bar,
                    )?;
                    let realisation = match seeds {
                        PhysicsSeeds::Target => "its own",
                        PhysicsSeeds::Other => "another",
                    };
                    let through = format!("the physics, each face with {realisation} speckle");
                    (trained, through)
                }
            };
            format!(
                "{} through {through}",
                describe(trained.card(), config.schedule)
            )
        }
    };
    println!(
        "{what} → {} ({:.1} s)",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The identity loss's weight unless `--id-weight` says otherwise: the 3D-ID paper's λ.
const DEFAULT_ID_WEIGHT: f64 = 0.5;

/// `--stage mesh-encoder`: trains (or resumes) the mesh encoder of `--model` in `--out` and
/// prints its reconstruction error on held-out meshes.
fn train_mesh(args: &Args, started: Instant, bar: &mut Bar) -> CliResult {
    let model = load_model(args.model.as_deref())?;
    let defaults = MeshEncoderConfig::new(args.code.unwrap_or(16));
    let config = MeshEncoderConfig {
        identity: args.identity.unwrap_or(defaults.code),
        meshes_per_epoch: args.meshes_per_epoch.unwrap_or(defaults.meshes_per_epoch),
        validation_meshes: args.validation_meshes.unwrap_or(defaults.validation_meshes),
        invariance_weight: args.invariance_weight.unwrap_or(defaults.invariance_weight),
        schedule: overridden(defaults.schedule, args),
        ..defaults
    };
    let encoder = train_mesh_encoder(&model, &config, &args.out, bar)?;
    let card = encoder.card();
    let pyramid: Vec<String> = card.pyramid.iter().map(|n| n.to_string()).collect();
    println!(
        "mesh encoder of '{}' (code {}, identity {}, pyramid {} nodes) trained for {} epochs of {} meshes → {} ({:.1} s)",
        card.model.name,
        config.code,
        config.identity,
        pyramid.join(" → "),
        config.schedule.epochs,
        config.meshes_per_epoch,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    if let Some(v) = card.validation {
        println!(
            "held-out reconstruction ({} meshes): mean vertex error {:.3} mm, RMS {:.3} mm \
             (best linear code of this length: RMS {:.3} mm; the mean face: {:.3} mm)",
            v.meshes, v.mean_error_mm, v.rms_error_mm, v.best_linear_rms_mm, v.mean_face_error_mm
        );
    }
    Ok(())
}

/// Options the chosen stage would ignore are an error, not silently dropped: `--encoder` and
/// `--decoder` belong to the autoencoder stage, `--pose-network` to the encoder stage.
fn refuse_ignored(args: &Args) -> CliResult {
    let stage = stage_name(args.stage);
    let mesh = args.stage == Stage::MeshEncoder;
    let ignored = [
        ("--dataset", args.dataset.is_some() && mesh),
        ("--input", args.input.is_some() && mesh),
        ("--preset", args.preset.is_some() && mesh),
        (
            "--id-loss",
            args.id_loss.is_some() && args.stage != Stage::Encoder,
        ),
        (
            "--id-weight",
            args.id_weight.is_some() && args.id_loss.is_none(),
        ),
        ("--code", args.code.is_some() && !mesh),
        ("--identity", args.identity.is_some() && !mesh),
        (
            "--meshes-per-epoch",
            args.meshes_per_epoch.is_some() && !mesh,
        ),
        (
            "--validation-meshes",
            args.validation_meshes.is_some() && !mesh,
        ),
        (
            "--invariance-weight",
            args.invariance_weight.is_some() && !mesh,
        ),
        (
            "--encoder",
            args.encoder.is_some() && !matches!(args.stage, Stage::Autoencoder | Stage::Iterative),
        ),
        (
            "--decoder",
            args.decoder.is_some() && !matches!(args.stage, Stage::Autoencoder | Stage::Iterative),
        ),
        (
            "--train-faces",
            args.train_faces.is_some() && args.stage != Stage::Autoencoder,
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
            "--residual-gain",
            args.residual_gain.is_some() && args.stage != Stage::Iterative,
        ),
        (
            "--geometry-weight",
            args.geometry_weight.is_some() && args.stage != Stage::Iterative,
        ),
        (
            "--model",
            args.model.is_some()
                && !(matches!(args.stage, Stage::Iterative | Stage::MeshEncoder)
                    || args.id_loss.is_some()
                    || matches!(args.decoder, Some(DecoderChoice::Physics(_)))),
        ),
    ];
    match ignored.iter().find(|(_, ignored)| *ignored) {
        Some((option, _)) => Err(format!(
            "{option} does not apply to --stage {stage}: --encoder belongs to --stage \
             autoencoder or iterative, --decoder to --stage autoencoder or iterative, \
             --train-faces to --stage autoencoder, --pose-network to --stage encoder or iterative, --feedback, \
             --mean-start-fraction, --own-estimate-fraction, --residual-gain and \
             --geometry-weight to --stage iterative, --id-loss to --stage encoder (--id-weight with it), --code, \
             --identity, --meshes-per-epoch, --validation-meshes and --invariance-weight to \
             --stage mesh-encoder (which reads no --dataset, --input or --preset), and --model \
             to the stages that use the face model (iterative, mesh-encoder, encoder with \
             --id-loss, autoencoder with --decoder physics)"
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
        Stage::MeshEncoder => "mesh-encoder",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders_parse_from_their_names() {
        assert_eq!(
            parse_decoder("physics"),
            Ok(DecoderChoice::Physics(PhysicsSeeds::Target))
        );
        assert_eq!(
            parse_decoder("physics:other"),
            Ok(DecoderChoice::Physics(PhysicsSeeds::Other))
        );
        assert_eq!(
            parse_decoder("./physics"),
            Ok(DecoderChoice::Learned(PathBuf::from("./physics")))
        );
        let err = parse_decoder("physics:some").unwrap_err();
        assert!(err.contains("expected physics"), "{err}");
    }
}
