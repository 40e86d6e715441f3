//! `radar-face generate` and `radar-face merge`.

use std::path::PathBuf;

use abs_fit::dataset::{Dataset, merge_shards};
use abs_fit::generation::{GenerateOptions, generate};
use abs_fit::{PoseScaling, Preset};
use clap::Args as ClapArgs;

use crate::progress::Bar;
use crate::{CliResult, Physics, load_model};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Dataset preset: tiny, quick, cpu or paper.
    #[arg(long, default_value = "quick")]
    preset: Preset,
    /// A statismo / BFM 2019 model file instead of the built-in model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Output directory (default: out/datasets/PRESET).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Generate only shard I of N ("I/N", 0-based), for a job array; merge the shards after.
    #[arg(long, value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// Number of samples instead of the preset's.
    #[arg(long)]
    samples: Option<usize>,
    /// Seed instead of the preset's.
    #[arg(long)]
    seed: Option<u64>,
    /// Samples per chunk file: the unit of resumption.
    #[arg(long, default_value_t = 16)]
    chunk: usize,
    /// How pose columns are scaled: sampling-range (the paper's: each by its own sampling
    /// range, onto [−1, 1]) or fixed (translation / 5 cm, angles / 10°).
    #[arg(long, default_value = "sampling-range")]
    pose_scaling: PoseScaling,
    /// The forward model: converged (physical optics on facets plus an explicit diffuse field,
    /// the default) or sampled (the paper-like random hits of earlier datasets).
    #[arg(long, default_value = "converged")]
    physics: Physics,
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("'{s}': expected I/N, e.g. 0/4"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|_| format!("'{s}': '{v}' is not a whole number"))
    };
    Ok((parse(i)?, parse(n)?))
}

pub fn run(args: Args) -> CliResult {
    let model = load_model(args.model.as_deref())?;
    let mut config = args.preset.dataset()?;
    if let Some(n) = args.samples {
        config.n_samples = n;
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    config.set_pose_scaling(args.pose_scaling);
    config.imaging.simulation.surface = args.physics.model();
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from("out/datasets").join(match args.shard {
            Some((i, n)) => format!("{}-shard-{i}-of-{n}", args.preset.name()),
            None => args.preset.name().to_string(),
        })
    });
    let options = GenerateOptions {
        shard: args.shard,
        chunk_size: args.chunk,
    };
    let started = std::time::Instant::now();
    let dataset = generate(&model, &config, &out, &options, &mut Bar::new("samples"))?;
    report(&dataset, started.elapsed().as_secs_f64());
    Ok(())
}

#[derive(Debug, ClapArgs)]
pub struct MergeArgs {
    /// Shard directories written by `generate --shard`.
    #[arg(required = true)]
    shards: Vec<PathBuf>,
    /// Output directory.
    #[arg(long, short)]
    out: PathBuf,
}

pub fn merge(args: MergeArgs) -> CliResult {
    let started = std::time::Instant::now();
    let dataset = merge_shards(&args.shards, &args.out)?;
    report(&dataset, started.elapsed().as_secs_f64());
    Ok(())
}

fn report(dataset: &Dataset, seconds: f64) {
    let m = dataset.manifest();
    println!(
        "{}: samples {}..{} of {} ({} train / {} validation), {} × {} images, {:.1} MB, {:.1} s",
        dataset.dir().display(),
        m.range.0,
        m.range.1,
        m.n_samples,
        dataset.train_rows().len(),
        dataset.validation_rows().len(),
        m.image.height,
        m.image.width,
        crate::commands::inspect::size_on_disk(dataset.dir()) as f64 / 1e6,
        seconds
    );
}
