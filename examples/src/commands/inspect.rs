//! `radar-face inspect`: what a dataset holds, and a contact sheet of its first samples.

use std::path::{Path, PathBuf};

use abs_fit::dataset::{Dataset, InputKind};
use backproject::ColourMap;
use clap::Args as ClapArgs;

use crate::CliResult;
use crate::pictures::{colour_picture, contact_sheet, save_png, side_by_side};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Dataset directory.
    dir: PathBuf,
    /// Contact sheet PNG (default: DIR/contact_sheet.png).
    #[arg(long)]
    sheet: Option<PathBuf>,
    /// Samples on the contact sheet (at least 1).
    #[arg(long, default_value_t = 16)]
    count: usize,
    /// Dynamic range (dB) of the pictures.
    #[arg(long, default_value_t = 20.0)]
    range_db: f32,
}

pub fn run(args: Args) -> CliResult {
    if args.count == 0 {
        return Err("--count 0: the contact sheet needs at least one sample".into());
    }
    let dataset = Dataset::open(&args.dir)?;
    let m = dataset.manifest();
    println!("dataset      {}", args.dir.display());
    println!(
        "samples      {}..{} of {} (train {}, validation {})",
        m.range.0,
        m.range.1,
        m.n_samples,
        dataset.train_rows().len(),
        dataset.validation_rows().len()
    );
    println!(
        "model        {} ({} vertices, {} + {} components, fingerprint {})",
        m.model.name,
        m.model.n_vertices,
        m.model.n_shape,
        m.model.n_expression,
        m.model.fingerprint
    );
    println!(
        "images       {} × {}, depth normalised over [{:.3}, {:.3}) m",
        m.image.height, m.image.width, m.image.z_near_m, m.image.z_far_m
    );
    println!(
        "parameters   {} columns: {}",
        m.param_names.len(),
        m.param_names.join(" ")
    );
    println!("pose scaling {}", m.layout.describe_pose_scaling());
    if let Some(imaging) = m.settings.get("imaging") {
        for key in ["array", "sweep", "pool"] {
            if let Some(v) = imaging.get(key) {
                println!("{key:<12} {v}");
            }
        }
    }
    println!("seed         {}", m.seed);
    println!(
        "size on disk {:.1} MB",
        size_on_disk(&args.dir) as f64 / 1e6
    );

    let count = args.count.min(dataset.len());
    let (h, w) = (m.image.height, m.image.width);
    let scale = (128 / w.max(1)).max(1) as u32;
    let mut tiles = Vec::with_capacity(count);
    let mut image = vec![0.0; 2 * h * w];
    for row in 0..count {
        dataset.write_input(row, InputKind::AmplitudeDepth, args.range_db, &mut image)?;
        let (amplitude, depth) = image.split_at(h * w);
        tiles.push(side_by_side(
            &colour_picture(amplitude, (h, w), ColourMap::Viridis, |_| false, scale),
            &colour_picture(depth, (h, w), ColourMap::Turbo, |i| depth[i] <= 0.0, scale),
        ));
    }
    let sheet_path = args
        .sheet
        .unwrap_or_else(|| args.dir.join("contact_sheet.png"));
    save_png(&contact_sheet(&tiles, 4), &sheet_path)?;
    println!(
        "contact sheet {} ({count} samples; each: amplitude at {} dB, depth with invalid pixels black)",
        sheet_path.display(),
        args.range_db
    );
    Ok(())
}

/// Total size of the files directly in `dir` (bytes).
pub fn size_on_disk(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
