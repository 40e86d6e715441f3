//! Which test-time fit improves faces (issue 15): the amplitude-depth autoencoder's estimates
//! of a reproduction's first validation faces, refined through its learned renderer with the
//! default fit (prior at the mean face) and with the options `PriorCentre::Start` (at two
//! weights), `keep_best`, `fit_pose = false`, pooled, channel-weighted and robust losses,
//! backtracking (a step kept only when the face's loss falls), and a prior at the start
//! shaped by the autoencoder's residual covariance (estimated on up to 400 validation faces
//! after the fitted ones), each compared face by face with the unfitted
//! estimate (paired bootstrap intervals of point distance, translation and rotation L2; faces
//! improved).
//!
//! `cargo run --release -p radar-face --example fit_variants -- RUN [FACES] [STEPS] [RENDERER]`
//! (RUN: a `reproduce` output directory, e.g. out/reproduce/cpu; RENDERER: `learned`, the
//! default (`learned:depth` or `learned:amplitude`: that kind's decoder and autoencoder), or
//! `physics`, the differentiable physics renderer with the fast kernel, against the dataset's
//! images with their own surface seeds, or `physics:K`, the same rendering the expected image
//! over K realisations of the diffuse field (either followed by `+redraw`: a new realisation
//! at every step, and then optionally by `+paired`: two realisations per step compared with
//! the target as (r₁ − t)·(r₂ − t), `FitTarget::paired_physics`), or `raster`, the depth
//! raster from the *depth* autoencoder against the radar depth images; each variant after the first is also compared
//! with the first, face by face (printed to standard error); `FIT_VARIANTS_ONLY=i,j,…` runs
//! only those variants, numbered from 0 in the order of the table; `FIT_VARIANTS_FIRST=N`
//! fits the FACES validation faces from the N-th on, so that settings chosen on one part of
//! the split can be checked on another; `FIT_VARIANTS_CSV=FILE` appends one line per face and
//! variant to FILE (renderer, variant, dataset row, then start and fit point distance,
//! translation L2 and rotation L2), so that runs can be paired face by face afterwards)

use std::path::PathBuf;
use std::sync::Arc;

use abs_fit::dataset::{Dataset, InputKind};
use abs_fit::evaluate::{Bootstrap, Cell, FaceErrors, Validation, paired_difference};
use abs_fit::fit::{FitSettings, FitTarget};
use abs_fit::{
    DifferentiablePhysicsRenderer, LearnedRenderer, NoProgress, ParamGroup, PriorCentre,
    TrainedEncoder,
};
use candle_core::Device;

type Error = Box<dyn std::error::Error>;

/// Validation faces, after the fitted ones, whose autoencoder residuals shape the residual
/// prior.
const RESIDUAL_FACES: usize = 400;

/// How the names of the variants with the residual prior begin.
const RESIDUAL_PRIOR: &str = "prior at the start shaped by the residuals";

/// The renderer fitted through.
#[derive(Clone, Copy)]
enum Choice {
    /// The decoder of an input kind (amplitude-depth unless said).
    Learned(InputKind),
    /// The differentiable physics with K realisations of the diffuse field.
    Physics(usize),
    /// The depth raster.
    Raster,
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let run = PathBuf::from(
        args.next()
            .ok_or("usage: fit_variants RUN [FACES] [STEPS]")?,
    );
    let faces: usize = args.next().map_or(Ok(200), |a| a.parse())?;
    let steps: usize = args.next().map_or(Ok(100), |a| a.parse())?;
    let renderer_arg = args.next();
    // `+paired`: the physics renders two realisations per step (`FitTarget::paired_physics`).
    let (renderer_arg, paired) = match renderer_arg.as_deref().map(|a| a.strip_suffix("+paired")) {
        Some(Some(stripped)) => (Some(stripped.to_string()), true),
        _ => (renderer_arg, false),
    };
    // `+redraw`: the physics draws its speckle anew at every step.
    let (renderer_arg, redraw) = match renderer_arg.as_deref().map(|a| a.strip_suffix("+redraw")) {
        Some(Some(stripped)) => (Some(stripped.to_string()), true),
        _ => (renderer_arg, false),
    };
    let renderer = match renderer_arg.as_deref() {
        None | Some("learned") => Choice::Learned(InputKind::AmplitudeDepth),
        Some("learned:depth") => Choice::Learned(InputKind::Depth),
        Some("learned:amplitude") => Choice::Learned(InputKind::Amplitude),
        Some("physics") => Choice::Physics(1),
        Some("raster") => Choice::Raster,
        Some(other) => match other.strip_prefix("physics:").map(str::parse) {
            Some(Ok(k)) => Choice::Physics(k),
            _ => {
                return Err(format!(
                    "unknown renderer {other}: learned[:depth|:amplitude], physics, physics:K \
                     (either with +redraw, +paired or +redraw+paired) or raster"
                )
                .into());
            }
        },
    };
    if (redraw || paired) && !matches!(renderer, Choice::Physics(_)) {
        return Err("+redraw and +paired apply to the physics renderer only".into());
    }
    let first_face: usize = match std::env::var("FIT_VARIANTS_FIRST") {
        Ok(n) => n.parse()?,
        Err(_) => 0,
    };
    let dataset = Dataset::open(&run.join("dataset"))?;
    let model = morphable::builtin::builtin().model();
    let all = dataset.validation_rows();
    if first_face >= all.len() {
        return Err(format!(
            "FIT_VARIANTS_FIRST={first_face}: the dataset has {} validation faces",
            all.len()
        )
        .into());
    }
    let end = (first_face + faces).min(all.len());
    let rows = all[first_face..end].to_vec();
    let validation = Validation::with_rows(&dataset, model, rows)?;
    let device = Device::Cpu;
    let networks = run.join("networks");
    let kind = match renderer {
        Choice::Raster => "depth",
        Choice::Learned(kind) => kind.name(),
        Choice::Physics(_) => "amplitude-depth",
    };
    let encoder = TrainedEncoder::load(&networks.join(format!("autoencoder-{kind}")), &device)?;
    // The residual prior's precision, from the autoencoder's errors on the validation faces
    // after the fitted ones (at most RESIDUAL_FACES of them). Too few of them is an error only
    // for the variants that use it.
    let held_out: Vec<usize> = all[end..]
        .iter()
        .rev()
        .take(RESIDUAL_FACES)
        .copied()
        .collect();
    let groups = [ParamGroup::Shape, ParamGroup::Expression];
    let precision = Validation::with_rows(&dataset, model, held_out)
        .and_then(|faces| faces.residual_precision(&encoder, &groups, 0.1, 64))
        .map(Arc::<[f64]>::from)
        .map_err(|e| format!("the residual prior's precision: {e}"));
    let residual_prior = |prior: f64| FitSettings {
        fit_pose: false,
        prior,
        prior_centre: PriorCentre::Start,
        prior_precision: precision.as_ref().ok().cloned(),
        ..FitSettings::new(steps)
    };
    let target = match renderer {
        Choice::Physics(k) => {
            let physics = DifferentiablePhysicsRenderer::for_dataset(
                model,
                &dataset,
                InputKind::AmplitudeDepth,
            )?
            .with_realisations(k)?
            .with_redrawn_speckle(redraw);
            if paired {
                FitTarget::paired_physics(physics)?
            } else {
                FitTarget::physics(physics)
            }
        }
        Choice::Learned(kind) => {
            let renderer =
                LearnedRenderer::load(&networks.join(format!("decoder-{}", kind.name())), &device)?;
            FitTarget::learned(renderer)
        }
        Choice::Raster => FitTarget::depth_raster(model, &dataset)?,
    };
    let start = validation.encoder_row(&encoder, 64)?;
    let bootstrap = Bootstrap::default();
    println!(
        "{} validation faces of {} from the {first_face}-th, {steps} Adam steps through the \
         {} renderer from the {kind} autoencoder; fit − start, 95 % paired intervals",
        validation.rows().len(),
        run.display(),
        match renderer {
            Choice::Physics(k) => format!(
                "amplitude-depth physics ({k} realisation(s){})",
                match (redraw, paired) {
                    (false, false) => "",
                    (true, false) => ", drawn anew at every step",
                    (false, true) => ", two per step compared as (r1 - t)(r2 - t)",
                    (true, true) => {
                        ", two per step drawn anew and compared as (r1 - t)(r2 - t)"
                    }
                }
            ),
            Choice::Learned(kind) => format!("learned {}", kind.name()),
            Choice::Raster => "depth-raster".to_string(),
        }
    );
    println!(
        "| fit | point distance (mm) | change | translation L2 change | rotation L2 change | \
         faces improved |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| none (the start) | {:.3} | | | | |",
        start.mean(Cell::PointDistance)
    );
    let base = FitSettings::new(steps);
    let start_prior = FitSettings {
        prior_centre: PriorCentre::Start,
        ..base.clone()
    };
    let variants = [
        ("prior at the mean (default)", base.clone()),
        (
            "prior at the mean, keep best",
            FitSettings {
                keep_best: true,
                ..base.clone()
            },
        ),
        ("prior at the start", start_prior.clone()),
        (
            "prior at the start, λ = 0.01",
            FitSettings {
                prior: 0.01,
                ..start_prior.clone()
            },
        ),
        (
            "prior at the start, pose kept",
            FitSettings {
                fit_pose: false,
                ..start_prior.clone()
            },
        ),
        (
            "prior at the start, λ = 0.01, pose kept",
            FitSettings::anchored(steps),
        ),
        (
            "prior at the start on the pose too",
            FitSettings {
                pose_prior: true,
                ..start_prior.clone()
            },
        ),
        (
            "prior at the start on the pose too, λ = 0.01",
            FitSettings {
                prior: 0.01,
                pose_prior: true,
                ..start_prior.clone()
            },
        ),
        (
            "prior at the start on the pose too, 2 × 2 pooled loss",
            FitSettings {
                pose_prior: true,
                loss_pool: 2,
                ..start_prior.clone()
            },
        ),
        (
            "prior at the start on the pose too, 4 × 4 pooled loss",
            FitSettings {
                pose_prior: true,
                loss_pool: 4,
                ..start_prior.clone()
            },
        ),
        ("prior at the mean, pose kept", FitSettings::physics(steps)),
        (
            "prior at the mean, 2 × 2 pooled loss",
            FitSettings {
                loss_pool: 2,
                ..base.clone()
            },
        ),
        (
            "prior at the mean, pose kept, 2 × 2 pooled loss",
            FitSettings {
                fit_pose: false,
                loss_pool: 2,
                ..base.clone()
            },
        ),
        (
            "prior at the mean, pose kept, rate 0.05",
            FitSettings {
                fit_pose: false,
                learning_rate: 0.05,
                ..base.clone()
            },
        ),
        (
            "prior at the mean, pose kept, rate 0.05, λ = 0.003",
            FitSettings {
                fit_pose: false,
                learning_rate: 0.05,
                prior: 0.003,
                ..base.clone()
            },
        ),
        (
            "prior at the mean, pose kept, depth weight 10 where the target's is valid",
            FitSettings {
                fit_pose: false,
                depth_weight: Some(10.0),
                ..base.clone()
            },
        ),
        (
            "prior at the mean, pose kept, Cauchy loss of scale 0.1",
            FitSettings {
                fit_pose: false,
                cauchy_scale: Some(0.1),
                ..base.clone()
            },
        ),
        (
            "prior at the start shaped by the residuals, λ = 0.001, pose kept",
            residual_prior(1e-3),
        ),
        (
            "prior at the start shaped by the residuals, λ = 0.0001, pose kept",
            residual_prior(1e-4),
        ),
        (
            "prior at the mean, pose kept, twice the steps",
            FitSettings {
                fit_pose: false,
                steps: 2 * steps,
                ..base.clone()
            },
        ),
        (
            "prior at the mean, backtracking",
            FitSettings {
                backtrack: true,
                ..base.clone()
            },
        ),
        (
            "prior at the start on the pose too, backtracking",
            FitSettings {
                pose_prior: true,
                backtrack: true,
                ..start_prior.clone()
            },
        ),
        (
            "prior at the mean, pose kept, backtracking",
            FitSettings {
                fit_pose: false,
                backtrack: true,
                ..base.clone()
            },
        ),
        (
            "prior at the start, pose kept, backtracking",
            FitSettings {
                fit_pose: false,
                backtrack: true,
                ..start_prior.clone()
            },
        ),
        (
            "prior at the start, λ = 0.01, pose kept, backtracking",
            FitSettings {
                backtrack: true,
                ..FitSettings::anchored(steps)
            },
        ),
        (
            "prior at the mean, pose kept, mean of the last third of the iterates",
            FitSettings::redrawn_physics(steps),
        ),
        (
            "prior at the mean, pose kept, twice the steps, mean of the last half of the iterates",
            FitSettings {
                steps: 2 * steps,
                average_last: steps,
                ..FitSettings::physics(steps)
            },
        ),
        (
            "prior at the mean, pose kept, rate 0.05 decaying along a half cosine",
            FitSettings {
                learning_rate: 0.05,
                cosine_decay: true,
                ..FitSettings::physics(steps)
            },
        ),
        (
            "prior at the mean, pose kept, rate 0.03 decaying along a half cosine",
            FitSettings {
                learning_rate: 0.03,
                cosine_decay: true,
                ..FitSettings::physics(steps)
            },
        ),
    ];
    let only: Option<Vec<usize>> = match std::env::var("FIT_VARIANTS_ONLY") {
        Ok(list) => Some(
            list.split(',')
                .map(|i| i.trim().parse())
                .collect::<Result<_, _>>()?,
        ),
        Err(_) => None,
    };
    let chosen = (variants.into_iter().enumerate())
        .filter(|(i, _)| only.as_ref().is_none_or(|only| only.contains(i)));
    let renderer_name = match renderer {
        Choice::Physics(k) => format!(
            "physics:{k}{}{}",
            if redraw { "+redraw" } else { "" },
            if paired { "+paired" } else { "" }
        ),
        Choice::Learned(kind) => format!("learned:{}", kind.name()),
        Choice::Raster => "raster".to_string(),
    };
    let csv = std::env::var_os("FIT_VARIANTS_CSV").map(PathBuf::from);
    // The first variant run, which the later ones are compared with.
    let mut first: Option<(&str, FaceErrors)> = None;
    for (_, (name, settings)) in chosen {
        if name.starts_with(RESIDUAL_PRIOR) {
            precision.as_ref().map_err(|e| e.clone())?;
        }
        let time = std::time::Instant::now();
        let fitted: FaceErrors = validation
            .fit_row(name, &encoder, &target, &settings, 64, &mut NoProgress)?
            .errors;
        let difference = |a: &FaceErrors, b: &FaceErrors, cell: Cell| -> Result<String, Error> {
            let d = paired_difference(a, b, cell, &bootstrap)?;
            Ok(format!(
                "{:+.3} [{:+.3}, {:+.3}]",
                d.difference, d.interval.low, d.interval.high
            ))
        };
        let change = |cell: Cell| difference(&fitted, &start, cell);
        match &first {
            None => first = Some((name, fitted.clone())),
            Some((first_name, errors)) => eprintln!(
                "{name} − {first_name}: point distance {} mm",
                difference(&fitted, errors, Cell::PointDistance)?
            ),
        }
        if let Some(csv) = &csv {
            append_faces(
                csv,
                &renderer_name,
                name,
                validation.rows(),
                &start,
                &fitted,
            )?;
        }
        let improved = (fitted.values(Cell::PointDistance).iter())
            .zip(start.values(Cell::PointDistance))
            .filter(|(f, s)| *f < s)
            .count();
        println!(
            "| {name} | {:.3} | {} | {} | {} | {improved}/{} |",
            fitted.mean(Cell::PointDistance),
            change(Cell::PointDistance)?,
            change(Cell::Translation)?,
            change(Cell::Rotation)?,
            fitted.n_faces()
        );
        eprintln!("{name}: {:.0} s", time.elapsed().as_secs_f64());
    }
    Ok(())
}

/// Appends one CSV line per face (header first if the file is new): renderer, variant, dataset
/// row, and the start's and the fit's point distance, translation L2 and rotation L2.
fn append_faces(
    path: &std::path::Path,
    renderer: &str,
    variant: &str,
    rows: &[usize],
    start: &FaceErrors,
    fitted: &FaceErrors,
) -> Result<(), Error> {
    use std::io::Write;
    let new = !path.exists();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut text = String::new();
    if new {
        text.push_str(
            "renderer,variant,row,start_point_distance_mm,fit_point_distance_mm,\
             start_translation_l2,fit_translation_l2,start_rotation_l2,fit_rotation_l2\n",
        );
    }
    let cells = [Cell::PointDistance, Cell::Translation, Cell::Rotation];
    for (i, row) in rows.iter().enumerate() {
        text.push_str(&format!("{renderer},\"{variant}\",{row}"));
        for cell in cells {
            text.push_str(&format!(
                ",{},{}",
                start.values(cell)[i],
                fitted.values(cell)[i]
            ));
        }
        text.push('\n');
    }
    file.write_all(text.as_bytes())?;
    Ok(())
}
