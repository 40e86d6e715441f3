//! `radar-face compare`: the same networks trained on two datasets of the same faces (e.g. the
//! same preset under two forward models), scored on their validation faces and compared face by
//! face: every Table 1 cell as a paired difference B − A with its 95 % bootstrap interval, and
//! the learned renderers' fidelity to each run's own physics images, paired the same way.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use abs_fit::dataset::{Dataset, EVALUATION_RANGE_DB};
use abs_fit::evaluate::{
    Bootstrap, Cell, FaceErrors, MEAN_BASELINE, Validation, paired_difference,
};
use abs_fit::{LearnedRenderer, Renderer, TrainedEncoder};
use candle_core::{Device, Tensor};
use clap::Args as ClapArgs;

use crate::{CliResult, create_dir, load_model};

/// Command-line options.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Run A: a `reproduce` output directory (with `dataset/` and `networks/`).
    #[arg(long)]
    a: PathBuf,
    /// Run B, over the same faces as A.
    #[arg(long)]
    b: PathBuf,
    /// A statismo / BFM 2019 model file instead of the built-in model (both datasets' model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Output directory for compare.md.
    #[arg(long, short)]
    out: PathBuf,
}

/// Scores every encoder and autoencoder that both runs trained (and the Mean baseline) on each
/// run's validation faces and writes the paired differences B − A to `compare.md`.
pub fn run(args: Args) -> CliResult {
    let model = load_model(args.model.as_deref())?;
    let (a, b) = (
        Dataset::open(&args.a.join("dataset"))?,
        Dataset::open(&args.b.join("dataset"))?,
    );
    let (va, vb) = (Validation::new(&a, &model)?, Validation::new(&b, &model)?);
    check_same_faces(&a, &va, &b, &vb)?;
    let bootstrap = Bootstrap::default();
    let mut md = format!(
        "Paired differences B − A over the {} validation faces (95 % bootstrap intervals)\n\
         A = {}, B = {}\n\n| network | cell | A | B | B − A | interval | verdict (B vs A) |\n\
         |---|---|---:|---:|---:|---|---|\n",
        va.rows().len(),
        args.a.display(),
        args.b.display()
    );
    let mean = |errors: Vec<FaceErrors>| errors.into_iter().find(|e| e.method == MEAN_BASELINE);
    let mut pairs = vec![(
        "Mean baseline".to_string(),
        mean(va.baselines()?).ok_or("no Mean baseline")?,
        mean(vb.baselines()?).ok_or("no Mean baseline")?,
    )];
    let encoders = ["encoder", "autoencoder"]
        .map(|prefix| shared_networks(&args.a.join("networks"), &args.b.join("networks"), prefix));
    for name in encoders
        .into_iter()
        .collect::<CliResult<Vec<_>>>()?
        .concat()
    {
        let score = |run: &Path, validation: &Validation| -> CliResult<FaceErrors> {
            let encoder = TrainedEncoder::load(&run.join("networks").join(&name), &Device::Cpu)?;
            Ok(validation.encoder_row(&encoder, 32)?)
        };
        pairs.push((name.clone(), score(&args.a, &va)?, score(&args.b, &vb)?));
    }
    for (name, ea, eb) in &pairs {
        for cell in Cell::ALL {
            let d = paired_difference(eb, ea, cell, &bootstrap)?;
            let verdict = match d.verdict() {
                "A lower" => "B lower",
                "A higher" => "B higher",
                other => other,
            };
            writeln!(
                md,
                "| {name} | {} | {:.4} | {:.4} | {:+.4} | [{:+.4}, {:+.4}] | {verdict} |",
                cell.label(),
                ea.mean(cell),
                eb.mean(cell),
                d.difference,
                d.interval.low,
                d.interval.high
            )?;
        }
    }
    let decoders = shared_networks(
        &args.a.join("networks"),
        &args.b.join("networks"),
        "decoder",
    )?;
    if !decoders.is_empty() {
        md.push_str(
            "\nThe learned renderers against each run's own physics images of the validation \
             faces at 20 dB: per-face mean squared error and Pearson correlation over the pixels.\n\n\
             | renderer | measure | A | B | B − A | interval | verdict (B vs A) |\n\
             |---|---|---:|---:|---:|---|---|\n",
        );
    }
    for name in decoders {
        let fidelity = |run: &Path, dataset: &Dataset, validation: &Validation| {
            let renderer = LearnedRenderer::load(&run.join("networks").join(&name), &Device::Cpu)?;
            renderer_fidelity(&renderer, dataset, validation.rows())
        };
        let (fa, fb) = (fidelity(&args.a, &a, &va)?, fidelity(&args.b, &b, &vb)?);
        for (measure, xa, xb) in [
            ("image MSE", &fa.0, &fb.0),
            ("image correlation", &fa.1, &fb.1),
        ] {
            let differences: Vec<f64> = xb.iter().zip(xa).map(|(y, x)| y - x).collect();
            let interval = bootstrap.mean_interval(&differences)?;
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let verdict = if interval.contains(0.0) {
                "not resolved at this budget"
            } else if mean(&differences) < 0.0 {
                "B lower"
            } else {
                "B higher"
            };
            writeln!(
                md,
                "| {name} | {measure} | {:.4} | {:.4} | {:+.4} | [{:+.4}, {:+.4}] | {verdict} |",
                mean(xa),
                mean(xb),
                mean(&differences),
                interval.low,
                interval.high
            )?;
        }
    }
    create_dir(&args.out)?;
    let path = args.out.join("compare.md");
    morphable::export::atomic_write(&path, md.as_bytes())?;
    println!("{md}\nwritten: {}", path.display());
    Ok(())
}

/// Refuses runs whose validation faces differ: a paired comparison needs the same faces.
fn check_same_faces(a: &Dataset, va: &Validation, b: &Dataset, vb: &Validation) -> CliResult {
    let rows = |d: &Dataset, v: &Validation| -> Vec<Vec<f32>> {
        let params = &d.arrays().params;
        // The shape and expression columns and the pose: the rendering columns may differ.
        let n = d.manifest().layout.dynamic_range_column().saturating_sub(2);
        v.rows()
            .iter()
            .map(|&r| params.row(r).iter().take(n).copied().collect())
            .collect()
    };
    if rows(a, va) != rows(b, vb) {
        return Err(
            "the two runs' validation faces differ (shape, expression or pose): a \
                    paired comparison needs the same faces (same preset, seed and samples)"
                .into(),
        );
    }
    Ok(())
}

/// The network directories whose names start with `prefix` ("encoder-…", "decoder-…") that
/// both networks folders hold, in name order.
fn shared_networks(a: &Path, b: &Path, prefix: &str) -> CliResult<Vec<String>> {
    let names = |dir: &Path| -> CliResult<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&format!("{prefix}-")))
            .collect();
        names.sort();
        Ok(names)
    };
    let in_b = names(b)?;
    Ok(names(a)?.into_iter().filter(|n| in_b.contains(n)).collect())
}

/// Per validation face: the mean squared error and the Pearson correlation between the learned
/// renderer's image of the face's true parameters and the dataset's (physics) image, at 20 dB.
fn renderer_fidelity(
    renderer: &LearnedRenderer,
    dataset: &Dataset,
    rows: &[usize],
) -> CliResult<(Vec<f64>, Vec<f64>)> {
    let (mut mse, mut correlation) = (Vec::new(), Vec::new());
    for chunk in rows.chunks(32) {
        let params = dataset.params_at_range(chunk, EVALUATION_RANGE_DB)?;
        let shape = (chunk.len(), params.ncols());
        let params = Tensor::from_vec(params.into_raw_vec_and_offset().0, shape, &Device::Cpu)?;
        let predicted: Vec<Vec<f32>> = renderer.render(&params)?.flatten_from(1)?.to_vec2()?;
        let target: Vec<Vec<f32>> =
            (dataset.input_images(chunk, renderer.output(), EVALUATION_RANGE_DB)?)
                .flatten_from(1)?
                .to_vec2()?;
        for (p, t) in predicted.iter().zip(&target) {
            let n = p.len() as f64;
            mse.push(
                p.iter()
                    .zip(t)
                    .map(|(x, y)| f64::from(x - y).powi(2))
                    .sum::<f64>()
                    / n,
            );
            let (mp, mt) = (
                p.iter().map(|x| f64::from(*x)).sum::<f64>() / n,
                t.iter().map(|x| f64::from(*x)).sum::<f64>() / n,
            );
            let (mut pt, mut pp, mut tt) = (0.0, 0.0, 0.0);
            for (x, y) in p.iter().zip(t) {
                let (dx, dy) = (f64::from(*x) - mp, f64::from(*y) - mt);
                pt += dx * dy;
                pp += dx * dx;
                tt += dy * dy;
            }
            correlation.push(if pp > 0.0 && tt > 0.0 {
                pt / (pp * tt).sqrt()
            } else {
                0.0
            });
        }
    }
    Ok((mse, correlation))
}
