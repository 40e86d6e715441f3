//! `radar-face`: simulate radar images of faces, generate and inspect datasets, train the
//! networks, evaluate them (Table 1) and fit faces by analysis-by-synthesis.
//!
//! Every command works on the built-in face model unless `--model FILE.h5` names a statismo /
//! Basel Face Model 2019 file. `radar-face <command> --help` lists each command's options.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use morphable::PcaModel;

mod commands;
mod pictures;
mod progress;

/// 3D face reconstruction from near-field MIMO radar images.
#[derive(Debug, Parser)]
#[command(name = "radar-face", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate one face (or point targets) and write its images, mesh, signal and volume.
    Simulate(commands::simulate::Args),
    /// Generate a dataset (or one shard of it); an interrupted run resumes.
    Generate(commands::generate::Args),
    /// Merge dataset shards into one dataset.
    Merge(commands::generate::MergeArgs),
    /// Summarise a dataset and draw a contact sheet of its first samples.
    Inspect(commands::inspect::Args),
    /// Train the encoder, the learned renderer (decoder) or the autoencoder; a second run on the
    /// same --out resumes.
    Train(Box<commands::train::Args>),
    /// Table 1: the L2 errors and point distances of encoders and baselines on the validation
    /// split at D = 20 dB.
    Evaluate(commands::evaluate::Args),
    /// Two `reproduce` runs over the same faces (e.g. two forward models) compared face by
    /// face: every Table 1 cell as a paired difference with its interval.
    Compare(commands::compare::Args),
    /// Fit faces by analysis-by-synthesis from an encoder's prediction and write the fitted
    /// meshes and images.
    Fit(commands::fit::Args),
    /// The whole paper at one preset: dataset, every network, Table 1 with test-time fitting,
    /// the cosine-similarity study, run times and fitted faces; an interrupted run resumes.
    Reproduce(commands::reproduce::Args),
}

/// Errors of the command line: any error, shown with its causes.
pub type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    // candle's elementwise thread pool spins against its matrix-multiply threads on small
    // CPUs: one elementwise thread trains ~1.6× faster on 2 cores. A value already set wins.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: at the start of main, before any thread exists.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
    keep_freed_memory();
    // A closed standard output (`radar-face inspect DIR | head -1`) ends the program quietly,
    // as it does other command-line tools, instead of a panic in `println!`.
    #[cfg(unix)]
    // SAFETY: at the start of main, before any thread exists; SIG_DFL is a valid action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Simulate(args) => commands::simulate::run(args),
        Command::Generate(args) => commands::generate::run(args),
        Command::Merge(args) => commands::generate::merge(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Train(args) => commands::train::run(*args),
        Command::Evaluate(args) => commands::evaluate::run(args),
        Command::Compare(args) => commands::compare::run(args),
        Command::Fit(args) => commands::fit::run(args),
        Command::Reproduce(args) => commands::reproduce::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("radar-face: error: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

/// Makes glibc's allocator reuse freed memory instead of returning it to the system: candle
/// allocates every intermediate tensor afresh, and glibc serves blocks above its mmap threshold
/// (at most 32 MB) with a fresh mapping whose pages the kernel clears on first touch; a third
/// of a mesh-encoder training step went to those page faults. With mappings off and the heap
/// never trimmed, freed blocks are reused. The peak memory stays the high-water mark (2.06 GB
/// against 2.02 GB on a mesh-encoder run). A `MALLOC_*` variable in the environment wins.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if !std::env::vars_os().any(|(k, _)| k.to_string_lossy().starts_with("MALLOC_")) {
        // SAFETY: at the start of main, before any allocation-heavy work; both are valid
        // glibc options (a refused one leaves the default).
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
        }
    }
}

/// The face model: a statismo / BFM 2019 file, or the built-in model.
pub fn load_model(path: Option<&Path>) -> CliResult<PcaModel> {
    Ok(match path {
        Some(path) => morphable::statismo::load(path)?,
        None => morphable::builtin::builtin().model().clone(),
    })
}

/// The forward model of `simulate`, `generate` and `reproduce` (docs/physics.md §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Physics {
    /// The converged model: physical optics on facets plus an explicit diffuse field.
    Converged,
    /// The paper-like model: the whole material integrated at random hits with per-hit
    /// roughness (images depend on the hit sampling).
    Sampled,
}

impl std::str::FromStr for Physics {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "converged" => Ok(Self::Converged),
            "sampled" => Ok(Self::Sampled),
            other => Err(format!("'{other}': expected converged or sampled")),
        }
    }
}

impl Physics {
    /// The surface model this names.
    pub fn model(self) -> radar_sim::SurfaceModel {
        match self {
            Self::Converged => radar_sim::SurfaceModel::default(),
            Self::Sampled => radar_sim::SurfaceModel::Sampled,
        }
    }
}

/// Creates a directory and its parents, saying which one failed.
pub fn create_dir(dir: &Path) -> CliResult<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir.to_path_buf())
}
