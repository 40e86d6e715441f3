//! Dataset generation: N faces drawn as docs/physics.md §2 says, rendered by the physics renderer,
//! written chunk by chunk. Sample i depends on (config, seed, i) alone, so any shard or any
//! resumed run produces exactly the bytes one uninterrupted run would.
//!
//! It sits above both [`crate::dataset`] (what it writes) and [`crate::render`] (what draws the
//! images).

use std::path::Path;

use morphable::MorphableModel;
use ndarray::{Array2, Array3};
use rayon::prelude::*;

use crate::dataset::human_bytes;
use crate::dataset::{Dataset, DatasetConfig, DatasetWriter, SampleArrays, shard_range};
use crate::{AbsFitError, PhysicsRenderer, Progress, Result};

/// Where and how much to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Generate only shard `i` of `n` (contiguous sample ranges that merge by concatenation).
    pub shard: Option<(usize, usize)>,
    /// Samples per chunk file: the unit of resumption.
    pub chunk_size: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            shard: None,
            chunk_size: 16,
        }
    }
}

/// Generates (or resumes, or simply opens if it is complete) the dataset of `config` in `dir`.
/// A directory holding another dataset is refused. Progress is reported in samples.
pub fn generate<M: MorphableModel>(
    model: &M,
    config: &DatasetConfig,
    dir: &Path,
    options: &GenerateOptions,
    progress: &mut dyn Progress,
) -> Result<Dataset> {
    config.validate(model)?;
    let range = match options.shard {
        Some((i, n)) => shard_range(config.n_samples, i, n)?,
        None => (0, config.n_samples),
    };
    let writer = DatasetWriter::open(dir, config.manifest(model, range)?, options.chunk_size)?;
    let audit = writer.audit();
    let pending: usize = audit.pending.iter().map(|c| c.len()).sum();
    if !writer.is_complete() {
        check_disk(dir, config, pending, range.1 - range.0)?;
        check_memory(dir, config, range.1 - range.0, available_memory())?;
    }
    for (chunk, reason) in &audit.bad {
        progress.message(&format!(
            "chunk of samples {}..{} in {} is bad ({reason}): generating it again",
            chunk.start,
            chunk.end,
            dir.display()
        ));
    }
    let pending = audit.pending;
    let total = (range.1 - range.0) as u64;
    let todo: u64 = pending.iter().map(|c| c.len() as u64).sum();
    progress.start("generating samples", total, total - todo);
    if !pending.is_empty() {
        let renderer = PhysicsRenderer::new(model, config.layout, config.imaging.clone())?;
        for chunk in pending {
            let arrays = render_chunk(&renderer, config, chunk.clone())?;
            writer.write_chunk(&chunk, &arrays)?;
            progress.advance(chunk.len() as u64);
        }
    }
    progress.finish();
    writer.finish()
}

/// Fails with the estimate when the disk under `dir` cannot hold `pending` more chunk samples
/// and then the final arrays of `total` samples (chunks and final arrays coexist while they
/// are assembled). Where the free space cannot be read, nothing is checked.
fn check_disk(dir: &Path, config: &DatasetConfig, pending: usize, total: usize) -> Result<()> {
    let per_sample = config.bytes_per_sample();
    let needed = per_sample.saturating_mul((pending + total) as u64);
    match available_bytes(dir) {
        Some(free) if free < needed => Err(AbsFitError::dataset(
            dir,
            format!(
                "needs about {} of disk ({} samples of {} in chunks, then {} in the final \
                 arrays) but only {} is free",
                human_bytes(needed),
                pending,
                human_bytes(per_sample),
                human_bytes(per_sample.saturating_mul(total as u64)),
                human_bytes(free)
            ),
        )),
        _ => Ok(()),
    }
}

/// Fails with the estimate when the final arrays of `total` samples, which are assembled in
/// memory (and which training reads into memory whole), exceed `available` bytes of memory.
/// With `available` unknown, nothing is checked.
fn check_memory(
    dir: &Path,
    config: &DatasetConfig,
    total: usize,
    available: Option<u64>,
) -> Result<()> {
    let per_sample = config.bytes_per_sample();
    let needed = per_sample.saturating_mul(total as u64);
    match available {
        Some(free) if free < needed => Err(AbsFitError::dataset(
            dir,
            format!(
                "needs about {} of memory to assemble {total} samples of {} (and as much to \
                 train on them) but only {} is available",
                human_bytes(needed),
                human_bytes(per_sample),
                human_bytes(free)
            ),
        )),
        _ => Ok(()),
    }
}

/// Memory available to new work (`MemAvailable` of /proc/meminfo), where the system says.
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Bytes free to an unprivileged user on the file system holding `dir`.
#[cfg(unix)]
fn available_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs only writes into the zeroed struct we own, and `path` is a valid
    // NUL-terminated string for the duration of the call.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stats) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Some((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
}

/// Elsewhere the free space is not read.
#[cfg(not(unix))]
fn available_bytes(_dir: &Path) -> Option<u64> {
    None
}

/// Renders samples `range` in parallel.
fn render_chunk<M: MorphableModel>(
    renderer: &PhysicsRenderer<M>,
    config: &DatasetConfig,
    range: std::ops::Range<usize>,
) -> Result<SampleArrays> {
    let (h, w) = config.imaging.image_shape();
    let samples = range
        .clone()
        .into_par_iter()
        .map(|i| {
            let (face, seed) = config.draw(i);
            let products = renderer.image_products(&face, seed)?;
            Ok((
                config.layout.to_vector(&face),
                products.level_db().db().clone(),
                products.depth_m().depth_m().clone(),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let n = range.len();
    let p = config.layout.len();
    let mut arrays = SampleArrays {
        params: Array2::zeros((n, p)),
        level_db: Array3::zeros((n, h, w)),
        depth_m: Array3::zeros((n, h, w)),
    };
    for (k, (params, level, depth)) in samples.into_iter().enumerate() {
        arrays
            .params
            .row_mut(k)
            .assign(&ndarray::ArrayView1::from(&params));
        arrays
            .level_db
            .index_axis_mut(ndarray::Axis(0), k)
            .assign(&level);
        arrays
            .depth_m
            .index_axis_mut(ndarray::Axis(0), k)
            .assign(&depth);
    }
    Ok(arrays)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Preset;

    #[test]
    fn memory_is_estimated_before_any_work() {
        let config = DatasetConfig {
            n_samples: 10_000_000,
            ..Preset::Paper.dataset().unwrap()
        };
        let dir = Path::new("/tmp/never-written");
        // 10 million paper samples hold 2 × 64 × 64 f32 images each: about 330 GB.
        let err = check_memory(dir, &config, config.n_samples, Some(64 << 30))
            .unwrap_err()
            .to_string();
        assert!(err.contains("of memory") && err.contains("GB"), "{err}");
        check_memory(dir, &config, 1000, Some(64 << 30)).expect("1 000 samples fit in 64 GiB");
        check_memory(dir, &config, config.n_samples, None).expect("unknown memory is not checked");
        assert!(!dir.exists());
    }
}
