//! `radar-face evaluate`: Table 1 — the errors of trained encoders and of the Mean and Random
//! baselines on a dataset's validation split, at the paper's evaluation range D = 20 dB.

use std::path::PathBuf;

use abs_fit::TrainedEncoder;
use abs_fit::dataset::{Dataset, DatasetConfig, InputKind, ModelIdentity, RangePolicy};
use abs_fit::evaluate::{
    MEAN_BASELINE, RANDOM_BASELINE, TableOptions, markdown_table, mean_baseline, random_baseline,
    write_table,
};
use abs_fit::{Table1Row, evaluate};
use candle_core::{DType, Device, Tensor};
use clap::Args as ClapArgs;
use morphable::PcaModel;
use ndarray::{Array2, ArrayView2, Axis};

use crate::{CliResult, create_dir, load_model};

/// Command-line options.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Dataset directory; its validation split is evaluated.
    #[arg(long)]
    dataset: PathBuf,
    /// A trained encoder or autoencoder directory (repeat for several).
    #[arg(long = "encoder", required = true)]
    encoders: Vec<PathBuf>,
    /// A statismo / BFM 2019 model file instead of the built-in model (the dataset's model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Leave the paper's published rows out of the table.
    #[arg(long)]
    no_paper: bool,
    /// Output directory for table1.md and table1.csv.
    #[arg(long, short)]
    out: PathBuf,
}

/// Writes Table 1 (`table1.md`, `table1.csv`) for the encoders and the two baselines and prints
/// it as Markdown.
pub fn run(args: Args) -> CliResult {
    let dataset = Dataset::open(&args.dataset)?;
    let model = load_model(args.model.as_deref())?;
    check_model(&dataset, &model)?;
    let manifest = dataset.manifest();
    let layout = manifest.layout;
    let rows = dataset.validation_rows();
    if rows.is_empty() {
        return Err(format!(
            "dataset {} has no validation samples",
            args.dataset.display()
        )
        .into());
    }
    let d_db = evaluation_range_db()?;
    let truth = truth_params(&dataset, &rows, d_db)?;

    let mut table = baseline_rows(&dataset, &model, &rows, truth.view())?;
    for dir in &args.encoders {
        let encoder = TrainedEncoder::load(dir, &Device::Cpu)?;
        let predicted = predict_rows(&encoder, &dataset, &rows, d_db, args.batch)?;
        let name = unique_name(method_name(&encoder), dir, &table);
        table.push(evaluate(
            name,
            predicted.view(),
            truth.view(),
            &layout,
            &model,
        )?);
    }

    create_dir(&args.out)?;
    let options = TableOptions {
        include_paper: !args.no_paper,
        ..TableOptions::default()
    };
    let (md, csv) = (args.out.join("table1.md"), args.out.join("table1.csv"));
    write_table(&table, &md, &csv, &options)?;
    println!(
        "{} validation samples of {} at D = {d_db} dB\n",
        rows.len(),
        args.dataset.display()
    );
    println!("{}", markdown_table(&table, &options));
    println!("written: {} and {}", md.display(), csv.display());
    Ok(())
}

/// The Mean (training-set mean) and Random (drawn from the dataset's sampling distribution)
/// baselines of Table 1, evaluated against `truth` (the true parameters of `rows`).
pub fn baseline_rows(
    dataset: &Dataset,
    model: &PcaModel,
    rows: &[usize],
    truth: ArrayView2<'_, f32>,
) -> CliResult<Vec<Table1Row>> {
    let manifest = dataset.manifest();
    let layout = manifest.layout;
    let train = dataset
        .arrays()
        .params
        .select(Axis(0), &dataset.train_rows());
    let mean = mean_baseline(train.view(), rows.len())?;
    let sampling = dataset_config(dataset)?.sampling;
    // Any seed other than the dataset's: the dataset's would repeat its own first faces.
    let random = random_baseline(&layout, &sampling, rows.len(), manifest.seed ^ RANDOM_SEED)?;
    Ok(vec![
        evaluate(MEAN_BASELINE, mean.view(), truth, &layout, model)?,
        evaluate(RANDOM_BASELINE, random.view(), truth, &layout, model)?,
    ])
}

/// Mixed into the dataset's seed to seed the Random baseline.
const RANDOM_SEED: u64 = 0x5EED_0000_BA5E_11FE;

/// The dynamic range (dB) encoders are evaluated at: the paper's [`RangePolicy::EVALUATE`].
pub fn evaluation_range_db() -> CliResult<f32> {
    match RangePolicy::EVALUATE {
        RangePolicy::Fixed(d_db) => Ok(d_db),
        policy => Err(format!("evaluation range policy {policy:?} is not one fixed range").into()),
    }
}

/// Fails unless `model` is the face model `dataset` was generated with.
pub fn check_model(dataset: &Dataset, model: &PcaModel) -> CliResult {
    let identity = ModelIdentity::of(model)?;
    let expected = &dataset.manifest().model;
    if identity != *expected {
        return Err(format!(
            "dataset {} was generated with model '{}' (fingerprint {}), but the model given is \
             '{}' (fingerprint {}): pass the dataset's model with --model",
            dataset.dir().display(),
            expected.name,
            expected.fingerprint,
            identity.name,
            identity.fingerprint
        )
        .into());
    }
    Ok(())
}

/// The configuration `dataset` was generated from (its manifest's settings).
pub fn dataset_config(dataset: &Dataset) -> CliResult<DatasetConfig> {
    serde_json::from_value(dataset.manifest().settings.clone()).map_err(|e| {
        format!(
            "dataset {}: the manifest's settings are not a dataset configuration: {e}",
            dataset.dir().display()
        )
        .into()
    })
}

/// The true scaled parameters (N × P) of `rows`, with the dynamic-range column at `d_db`.
pub fn truth_params(dataset: &Dataset, rows: &[usize], d_db: f32) -> CliResult<Array2<f32>> {
    let p = dataset.manifest().layout.len();
    let values = rows
        .iter()
        .flat_map(|&row| dataset.params_with_range(row, d_db))
        .collect();
    Ok(Array2::from_shape_vec((rows.len(), p), values)?)
}

/// The input images (B, C, H, W) of `rows` of kind `kind` at dynamic range `d_db`.
pub fn input_images(
    dataset: &Dataset,
    rows: &[usize],
    kind: InputKind,
    d_db: f32,
) -> CliResult<Tensor> {
    let info = dataset.manifest().image;
    let size = kind.channels() * info.height * info.width;
    let mut values = vec![0.0f32; rows.len() * size];
    for (&row, image) in rows.iter().zip(values.chunks_exact_mut(size)) {
        dataset.write_input(row, kind, d_db, image)?;
    }
    let shape = (rows.len(), kind.channels(), info.height, info.width);
    Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
}

/// The encoder's predictions (N × P) for `rows` shown at `d_db`, `batch` images at a time.
pub fn predict_rows(
    encoder: &TrainedEncoder,
    dataset: &Dataset,
    rows: &[usize],
    d_db: f32,
    batch: usize,
) -> CliResult<Array2<f32>> {
    if batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    let p = encoder.layout().len();
    let mut values = Vec::with_capacity(rows.len() * p);
    for chunk in rows.chunks(batch) {
        let images = input_images(dataset, chunk, encoder.input(), d_db)?;
        let predicted = encoder.predict(&images)?.to_dtype(DType::F32)?;
        values.extend(predicted.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(Array2::from_shape_vec((rows.len(), p), values)?)
}

/// "Encoder (Depth)", "Autoencoder (Amp.-Depth)", ...: the paper's names.
pub fn method_name(encoder: &TrainedEncoder) -> String {
    let stage = match encoder.card().stage.as_str() {
        "autoencoder" => "Autoencoder",
        _ => "Encoder",
    };
    let input = match encoder.input() {
        InputKind::Amplitude => "Amplitude",
        InputKind::Depth => "Depth",
        InputKind::AmplitudeDepth => "Amp.-Depth",
    };
    format!("{stage} ({input})")
}

/// `name`, or `name [DIR]` when a row of that name exists already.
fn unique_name(name: String, dir: &std::path::Path, table: &[Table1Row]) -> String {
    if table.iter().any(|row| row.method == name) {
        format!("{name} [{}]", dir.display())
    } else {
        name
    }
}
