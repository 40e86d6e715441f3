//! Distils a trained mesh encoder (issue 17) into a small network of the dataset's coefficient
//! columns (docs/physics.md §9.4) and prints how closely it follows the encoder on held-out
//! (truth, estimate) pairs, as JSON: the fraction of the identities' variance it misses, the
//! identity losses through both, their correlation, and the cosine between their gradients.
//!
//! `cargo run --release -p radar-face --example distil_identity -- MESH_ENCODER DATASET
//! [SAMPLES EPOCHS WIDTH]`

use abs_fit::dataset::Dataset;
use abs_fit::identity::coefficient_basis;
use abs_fit::{DistilConfig, DistilledIdentity, MeshIdentityEncoder};
use candle_core::Device;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [encoder, dataset, rest @ ..] = args.as_slice() else {
        return Err("usage: distil_identity MESH_ENCODER DATASET [SAMPLES EPOCHS WIDTH]".into());
    };
    let defaults = DistilConfig::default();
    let number = |k: usize, default: usize| -> Result<usize, Error> {
        rest.get(k).map_or(Ok(default), |s| Ok(s.parse()?))
    };
    let width = number(2, defaults.hidden[0])?;
    let config = DistilConfig {
        samples: number(0, defaults.samples)?,
        epochs: number(1, defaults.epochs)?,
        hidden: vec![width; defaults.hidden.len()],
        ..defaults
    };
    let dataset = Dataset::open(std::path::Path::new(dataset))?;
    let model = morphable::builtin::builtin().model();
    let device = Device::Cpu;
    let basis = coefficient_basis(model, &dataset.manifest().layout, &device)?;
    let exact = MeshIdentityEncoder::load(std::path::Path::new(encoder), model, &device)?
        .for_coefficients(&basis)?;
    let started = std::time::Instant::now();
    let distilled = DistilledIdentity::distil(&exact, &config)?;
    println!("{}", serde_json::to_string_pretty(distilled.fidelity())?);
    eprintln!("distilled in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
