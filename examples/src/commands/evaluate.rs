//! `radar-face evaluate`: Table 1 — the errors of trained encoders and of the Mean and Random
//! baselines on a dataset's validation split, at the paper's evaluation range D = 20 dB, every
//! cell with its 95 % bootstrap interval over the validation faces — and every other encoder
//! row against the first `--encoder`'s, paired on the same faces (`findings.md`); with
//! `--cosine-shapes N`, the larger cosine study of the one-pass encoders on `reproduce`'s study
//! faces of the dataset (`cosine.md`), each against the first, paired over classes.

use std::path::{Path, PathBuf};

use abs_fit::card::{ITERATIVE_STAGE, ModelCard};
use abs_fit::dataset::{Dataset, EVALUATION_RANGE_DB};
use abs_fit::evaluate::MAX_STUDY_FACES;
use abs_fit::evaluate::{
    Bootstrap, Cell, Finding, IterativeStart, TableOptions, Validation, findings_csv,
    findings_markdown, markdown_table, paired_difference, table1, write_table,
};
use abs_fit::{Iterate, IterativeEncoder, TrainedEncoder};
use candle_core::Device;
use clap::Args as ClapArgs;
use morphable::PcaModel;

use crate::commands::reproduce::{STUDY_SEED, cosine_comparison, cosine_comparison_header};
use crate::{CliResult, create_dir, load_model};

/// Command-line options.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Dataset directory; its validation split is evaluated.
    #[arg(long)]
    dataset: PathBuf,
    /// A trained encoder, autoencoder or iterative encoder directory (repeat for several).
    #[arg(long = "encoder", required = true)]
    encoders: Vec<PathBuf>,
    /// A statismo / BFM 2019 model file instead of the built-in model (the dataset's model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Iterations of iterative encoders: one row after each.
    #[arg(long, default_value_t = 4)]
    iterations: usize,
    /// Where iterative encoders start: `mean` (the mean face at zero pose), a one-pass
    /// encoder's directory (its estimate), or `truth` (the true parameters: an oracle that
    /// shows how much the feedback of a perfect estimate is worth, not a method). A directory
    /// named `mean` or `truth` is `./mean` or `./truth`.
    #[arg(long, default_value = "mean")]
    iterative_start: String,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Leave the paper's published rows out of the table.
    #[arg(long)]
    no_paper: bool,
    /// Shape classes of a larger cosine study of the one-pass encoders of the first encoder's
    /// input kind (`cosine.md`: each one's shape diagonal maximum and its paired difference
    /// from the first); 0 for none.
    #[arg(long, default_value_t = 0)]
    cosine_shapes: usize,
    /// Expression classes of that study (at least 2).
    #[arg(long, default_value_t = 5)]
    cosine_expressions: usize,
    /// Classes of the study whose scale the diagonal maximum is quoted on (the paper: 10).
    #[arg(long, default_value_t = 10)]
    cosine_subset: usize,
    /// Output directory for table1.md, table1.csv, findings.md and findings.csv (and
    /// cosine.md).
    #[arg(long, short)]
    out: PathBuf,
}

/// Writes Table 1 (`table1.md`, `table1.csv`) for the encoders and the two baselines and prints
/// it as Markdown.
pub fn run(args: Args) -> CliResult {
    if args.cosine_shapes > 0 {
        let (shapes, expressions, subset) = (
            args.cosine_shapes,
            args.cosine_expressions,
            args.cosine_subset,
        );
        if shapes < 2
            || expressions < 2
            || !(2..=shapes).contains(&subset)
            || shapes
                .checked_mul(expressions)
                .is_none_or(|n| n > MAX_STUDY_FACES)
        {
            return Err(format!(
                "--cosine-shapes {shapes} --cosine-expressions {expressions} --cosine-subset \
                 {subset}: the study needs at least 2 shapes and 2 expressions, at most \
                 {MAX_STUDY_FACES} faces, and a subset between 2 and the shapes"
            )
            .into());
        }
    }
    let dataset = Dataset::open(&args.dataset)?;
    let model = load_model(args.model.as_deref())?;
    let validation = Validation::new(&dataset, &model)?;
    let mut scores = validation.baselines()?;
    let n_baselines = scores.len();
    let one_pass_start = match args.iterative_start.as_str() {
        "mean" | "truth" => None,
        dir => Some(TrainedEncoder::load(Path::new(dir), &Device::Cpu)?),
    };
    let start = match (args.iterative_start.as_str(), &one_pass_start) {
        (_, Some(encoder)) => IterativeStart::Encoder(encoder),
        ("truth", None) => IterativeStart::Truth,
        _ => IterativeStart::Mean,
    };
    for dir in &args.encoders {
        let rows = if ModelCard::read(dir)?.stage == ITERATIVE_STAGE {
            let encoder = IterativeEncoder::load(dir, &model, &Device::Cpu)?;
            let how = Iterate {
                iterations: args.iterations,
                ..Iterate::default()
            };
            validation.iterative_rows(&encoder, start, &how, args.batch)?
        } else {
            let encoder = TrainedEncoder::load(dir, &Device::Cpu)?;
            vec![validation.encoder_row(&encoder, args.batch)?]
        };
        for mut errors in rows {
            let taken = scores.iter().any(|r| r.method == errors.method);
            errors.method = row_label(errors.method, dir, taken);
            scores.push(errors);
        }
    }
    let table = table1(&scores, &Bootstrap::default())?;

    create_dir(&args.out)?;
    let options = TableOptions {
        include_paper: !args.no_paper,
        layout: Some(dataset.manifest().layout),
        ..TableOptions::default()
    };
    let (md, csv) = (args.out.join("table1.md"), args.out.join("table1.csv"));
    write_table(&table, &md, &csv, &options)?;
    println!(
        "{} validation samples of {} at D = {EVALUATION_RANGE_DB} dB\n",
        validation.rows().len(),
        args.dataset.display()
    );
    println!("{}", markdown_table(&table, &options));
    println!("written: {} and {}", md.display(), csv.display());

    // Every later encoder row against the first encoder's (an iterative encoder's last
    // iteration when it comes first), paired on the same faces.
    let encoders = &scores[n_baselines..];
    let first_dir = args.encoders.first().ok_or("no --encoder given")?;
    let reference = if ModelCard::read(first_dir)?.stage == ITERATIVE_STAGE {
        encoders.get(args.iterations.max(1) - 1)
    } else {
        encoders.first()
    }
    .ok_or("the first encoder has no row")?;
    let bootstrap = Bootstrap::default();
    let mut findings = Vec::new();
    for row in encoders.iter().filter(|r| r.method != reference.method) {
        for cell in [Cell::PointDistance, Cell::Shape, Cell::Rotation] {
            findings.push(Finding {
                claim: format!("against the first encoder ({})", reference.method),
                difference: paired_difference(row, reference, cell, &bootstrap)?,
            });
        }
    }
    if !findings.is_empty() {
        let md = findings_markdown(&findings, validation.rows().len());
        let (md_path, csv_path) = (args.out.join("findings.md"), args.out.join("findings.csv"));
        morphable::export::atomic_write(&md_path, md.as_bytes())?;
        morphable::export::atomic_write(&csv_path, findings_csv(&findings).as_bytes())?;
        println!(
            "\n{md}\nwritten: {} and {}",
            md_path.display(),
            csv_path.display()
        );
    }
    if args.cosine_shapes > 0 {
        cosine(&args, &dataset, &model)?;
    }
    Ok(())
}

/// A row's name: the `method`, followed by its directory when an earlier row is `taken` by the
/// same name (an encoder given twice, or two runs of one method).
fn row_label(method: String, dir: &Path, taken: bool) -> String {
    if taken {
        format!("{method} [{}]", dir.display())
    } else {
        method
    }
}

/// The larger cosine study of the one-pass encoders of the first encoder's input kind, on the
/// faces of `reproduce`'s study of this dataset: `cosine.md`.
fn cosine(args: &Args, dataset: &Dataset, model: &PcaModel) -> CliResult {
    let mut encoders: Vec<(&PathBuf, TrainedEncoder)> = Vec::new();
    for dir in &args.encoders {
        if ModelCard::read(dir)?.stage == ITERATIVE_STAGE {
            println!("cosine study: {} is iterative, left out", dir.display());
            continue;
        }
        let encoder = TrainedEncoder::load(dir, &Device::Cpu)?;
        match encoders.first().map(|(_, e)| e.input()) {
            Some(kind) if kind != encoder.input() => println!(
                "cosine study: {} reads {} images, not {}: left out",
                dir.display(),
                encoder.input().name(),
                kind.name()
            ),
            _ => encoders.push((dir, encoder)),
        }
    }
    if encoders.is_empty() {
        return Err("--cosine-shapes: no one-pass encoder among the --encoder directories".into());
    }
    let (shapes, expressions) = (args.cosine_shapes, args.cosine_expressions);
    // Rows named as in Table 1: a repeated method name gets its directory.
    let mut labelled: Vec<(String, &TrainedEncoder)> = Vec::new();
    for (dir, encoder) in &encoders {
        let method = encoder.method_name();
        let taken = labelled.iter().any(|(l, _)| *l == method);
        labelled.push((row_label(method, dir, taken), encoder));
    }
    let md = format!(
        "# Cosine study of {}\n\n{}{}",
        args.dataset.display(),
        cosine_comparison_header(
            (shapes, expressions),
            args.cosine_subset,
            "the first encoder"
        ),
        cosine_comparison(
            dataset,
            model,
            &labelled,
            (shapes, expressions),
            args.cosine_subset,
            dataset.manifest().seed ^ STUDY_SEED,
        )?
    );
    let path = args.out.join("cosine.md");
    morphable::export::atomic_write(&path, md.as_bytes())?;
    println!("\n{md}\nwritten: {}", path.display());
    Ok(())
}
