//! `radar-face evaluate`: Table 1 — the errors of trained encoders and of the Mean and Random
//! baselines on a dataset's validation split, at the paper's evaluation range D = 20 dB, every
//! cell with its 95 % bootstrap interval over the validation faces — and every other encoder
//! row against the first `--encoder`'s, paired on the same faces (`findings.md`).

use std::path::PathBuf;

use abs_fit::card::{ITERATIVE_STAGE, ModelCard};
use abs_fit::dataset::{Dataset, EVALUATION_RANGE_DB};
use abs_fit::evaluate::{
    Bootstrap, Cell, Finding, TableOptions, Validation, findings_csv, findings_markdown,
    markdown_table, paired_difference, table1, write_table,
};
use abs_fit::{Iterate, IterativeEncoder, TrainedEncoder};
use candle_core::Device;
use clap::Args as ClapArgs;

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
    /// Iterations of iterative encoders from the mean face: one row after each.
    #[arg(long, default_value_t = 4)]
    iterations: usize,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Leave the paper's published rows out of the table.
    #[arg(long)]
    no_paper: bool,
    /// Output directory for table1.md, table1.csv, findings.md and findings.csv.
    #[arg(long, short)]
    out: PathBuf,
}

/// Writes Table 1 (`table1.md`, `table1.csv`) for the encoders and the two baselines and prints
/// it as Markdown.
pub fn run(args: Args) -> CliResult {
    let dataset = Dataset::open(&args.dataset)?;
    let model = load_model(args.model.as_deref())?;
    let validation = Validation::new(&dataset, &model)?;
    let mut scores = validation.baselines()?;
    let n_baselines = scores.len();
    for dir in &args.encoders {
        let rows = if ModelCard::read(dir)?.stage == ITERATIVE_STAGE {
            let encoder = IterativeEncoder::load(dir, &model, &Device::Cpu)?;
            let how = Iterate {
                iterations: args.iterations,
                ..Iterate::default()
            };
            validation.iterative_rows(&encoder, &how, args.batch)?
        } else {
            let encoder = TrainedEncoder::load(dir, &Device::Cpu)?;
            vec![validation.encoder_row(&encoder, args.batch)?]
        };
        for mut errors in rows {
            if scores.iter().any(|r| r.method == errors.method) {
                errors.method = format!("{} [{}]", errors.method, dir.display());
            }
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
    Ok(())
}
