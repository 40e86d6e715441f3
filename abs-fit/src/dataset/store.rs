//! The dataset on disk: `manifest.json` plus `.npy` arrays that numpy and PyTorch read directly.
//!
//! ```text
//! dataset/
//!   manifest.json   every generation setting, the model identity, seed, sample range, split
//!   params.npy      (N, P) f32, scaled parameters (columns named in the manifest)
//!   level_db.npy    (N, H, W) f32, dB level images L ≤ 0 (before any dynamic range)
//!   depth_m.npy     (N, H, W) f32, refined depth z* (m) of every pixel (before any validity mask)
//! ```
//!
//! While generating, finished chunks of samples live in `chunks/` (each file written atomically),
//! so an interrupted run resumes where it stopped and loses nothing; the arrays above are
//! assembled when every chunk exists.

use std::ops::Range;
use std::path::{Path, PathBuf};

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis, concatenate};
use radar_sim::npy::{read_npy, write_npy};
use serde::{Deserialize, Serialize};

use super::chunks::{CHUNK_DIR, ChunkState, Chunks};
use super::tidy::tidy;
use crate::lock::DirLock;
use crate::{AbsFitError, ParamLayout, Result};

/// Version of the on-disk format written by this code.
pub const FORMAT_VERSION: u32 = 1;
/// File names inside a dataset directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Parameters, (N, P) f32.
pub const PARAMS_FILE: &str = "params.npy";
/// dB level images, (N, H, W) f32.
pub const LEVEL_FILE: &str = "level_db.npy";
/// Depth images in metres, (N, H, W) f32.
pub const DEPTH_FILE: &str = "depth_m.npy";

/// Which face model made a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelIdentity {
    /// The model's name.
    pub name: String,
    /// Vertex count.
    pub n_vertices: usize,
    /// Triangle count.
    pub n_triangles: usize,
    /// Shape components available.
    pub n_shape: usize,
    /// Expression components available.
    pub n_expression: usize,
    /// FNV-1a hash of the mean face and the triangles: two models with the same name but
    /// different data differ here.
    pub fingerprint: String,
}

impl ModelIdentity {
    /// The identity of a model.
    pub fn of(model: &dyn morphable::MorphableModel) -> Result<Self> {
        let mean = model.mean_mesh()?;
        let mut h = Fnv1a::default();
        for v in &mean.vertices {
            for c in [v.x, v.y, v.z] {
                h.write(&(c as f32).to_le_bytes());
            }
        }
        for t in model.triangles() {
            for i in t {
                h.write(&i.to_le_bytes());
            }
        }
        Ok(Self {
            name: model.name().to_string(),
            n_vertices: model.n_vertices(),
            n_triangles: model.triangles().len(),
            n_shape: model.n_shape(),
            n_expression: model.n_expression(),
            fingerprint: format!("{:016x}", h.0),
        })
    }
}

/// FNV-1a 64: a tiny hash whose value never changes between Rust versions (unlike std's).
#[derive(Debug)]
pub(crate) struct Fnv1a(pub u64);
impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}
impl Fnv1a {
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Image geometry shared by every sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Rows H.
    pub height: usize,
    /// Columns W.
    pub width: usize,
    /// Nearest depth of the voxel grid (m): normalised depth 1.
    pub z_near_m: f64,
    /// Farthest depth of the voxel grid (m): normalised depth 0.
    pub z_far_m: f64,
}

/// The manifest of a dataset (or of one shard of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// On-disk format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Every generation setting, as the generator's config serialises it.
    pub settings: serde_json::Value,
    /// The face model.
    pub model: ModelIdentity,
    /// Base seed; sample i is generated from (seed, i) alone.
    pub seed: u64,
    /// Samples in the whole dataset.
    pub n_samples: usize,
    /// The samples held in this directory, `[start, end)`: the whole dataset, or a shard.
    pub range: (usize, usize),
    /// Samples `[0, n_train)` train; `[n_train, n_samples)` validate.
    pub n_train: usize,
    /// Parameter layout of `params.npy`.
    pub layout: ParamLayout,
    /// Column names of `params.npy`.
    pub param_names: Vec<String>,
    /// Image geometry.
    pub image: ImageInfo,
}

impl Manifest {
    /// Samples held here.
    pub fn len(&self) -> usize {
        self.range.1 - self.range.0
    }
    /// Whether no sample is held here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether two manifests describe slices of the same dataset (all but the range agree).
    pub fn same_dataset(&self, other: &Manifest) -> bool {
        Manifest {
            range: other.range,
            ..self.clone()
        } == *other
    }

    fn check(&self, dir: &Path) -> Result<()> {
        let bad = |reason: String| Err(AbsFitError::dataset(dir, reason));
        if self.format_version != FORMAT_VERSION {
            return bad(format!(
                "format version {} (this build reads {FORMAT_VERSION})",
                self.format_version
            ));
        }
        let (start, end) = self.range;
        if start > end || end > self.n_samples || self.n_train > self.n_samples {
            return bad(format!(
                "sample range {:?} or split {} does not fit {} samples",
                self.range, self.n_train, self.n_samples
            ));
        }
        if self.param_names.len() != self.layout.len() || self.param_names != self.layout.names() {
            return bad("parameter names disagree with the parameter layout".into());
        }
        Ok(())
    }

    fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| AbsFitError::Io {
            path: path.clone(),
            source: e,
        })?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| AbsFitError::dataset(dir, format!("{MANIFEST_FILE}: {e}")))?;
        manifest.check(dir)?;
        Ok(manifest)
    }

    fn write(&self, dir: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| AbsFitError::dataset(dir, format!("cannot serialise manifest: {e}")))?;
        text.push('\n');
        morphable::export::atomic_write(&dir.join(MANIFEST_FILE), text.as_bytes())?;
        Ok(())
    }
}

/// The arrays of a chunk of consecutive samples.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleArrays {
    /// (n, P) scaled parameters.
    pub params: Array2<f32>,
    /// (n, H, W) dB level.
    pub level_db: Array3<f32>,
    /// (n, H, W) depth (m).
    pub depth_m: Array3<f32>,
}

impl SampleArrays {
    /// Checks the arrays of samples `range` (row 0 is sample `range.start`) read from or bound
    /// for `at`: the shapes `manifest` declares, finite parameters within their columns'
    /// physical limits ([`ParamLayout::column_limits`](crate::ParamLayout::column_limits)),
    /// levels ≤ 0 dB (or −∞ where
    /// nothing was seen, never NaN) and finite depths. Errors name the file, the sample and the
    /// value.
    pub(super) fn validate(
        &self,
        manifest: &Manifest,
        range: &Range<usize>,
        at: &Path,
    ) -> Result<()> {
        self.check(manifest, range.len(), at)?;
        let first = range.start;
        let bad =
            |file: &str, what: String| Err(AbsFitError::dataset(at, format!("{file}: {what}")));
        // f32 storage rounds a value at a limit by a relative 6e-8.
        let limits: Vec<f32> = manifest
            .layout
            .column_limits()
            .iter()
            .map(|l| (l * (1.0 + 1e-6)) as f32)
            .collect();
        if let Some(((row, col), v)) = self.params.indexed_iter().find(|((_, col), v)| {
            let limit = limits.get(*col).copied().unwrap_or(f32::INFINITY);
            !(0.0..=limit).contains(&v.abs())
        }) {
            let name = manifest.param_names.get(col).map_or("?", String::as_str);
            return bad(
                PARAMS_FILE,
                format!(
                    "sample {} column {name} is {v}: a physically valid face has at most {} \
                     in this column",
                    first + row,
                    limits[col]
                ),
            );
        }
        let pixel =
            |(i, r, c): (usize, usize, usize)| format!("sample {} pixel ({r}, {c})", first + i);
        if let Some((at, v)) = self
            .level_db
            .indexed_iter()
            .find(|(_, v)| v.is_nan() || **v > 0.0)
        {
            return bad(
                LEVEL_FILE,
                format!("{} is {v} dB: levels are ≤ 0 dB", pixel(at)),
            );
        }
        if let Some((at, v)) = self.depth_m.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return bad(DEPTH_FILE, format!("{} is {v} m", pixel(at)));
        }
        Ok(())
    }

    fn check(&self, manifest: &Manifest, n: usize, at: &Path) -> Result<()> {
        let (h, w) = (manifest.image.height, manifest.image.width);
        let p = manifest.layout.len();
        let expected = [(n, p, 1), (n, h, w), (n, h, w)];
        let actual = [
            (self.params.nrows(), self.params.ncols(), 1),
            self.level_db.dim(),
            self.depth_m.dim(),
        ];
        for ((name, e), a) in [PARAMS_FILE, LEVEL_FILE, DEPTH_FILE]
            .iter()
            .zip(expected)
            .zip(actual)
        {
            if e != a {
                return Err(AbsFitError::dataset(
                    at,
                    format!("{name} has shape {a:?}, expected {e:?}"),
                ));
            }
        }
        Ok(())
    }

    /// Reads a finished dataset's arrays from `dir`.
    fn read(dir: &Path) -> Result<Self> {
        Ok(Self {
            params: read_npy(dir.join(PARAMS_FILE))?,
            level_db: read_npy(dir.join(LEVEL_FILE))?,
            depth_m: read_npy(dir.join(DEPTH_FILE))?,
        })
    }

    /// Writes a finished dataset's arrays to `dir`, each atomically and synced.
    fn write(&self, dir: &Path) -> Result<()> {
        // Parameters last: the dataset counts as complete only once its params file exists.
        write_npy(dir.join(LEVEL_FILE), &self.level_db)?;
        write_npy(dir.join(DEPTH_FILE), &self.depth_m)?;
        write_npy(dir.join(PARAMS_FILE), &self.params)?;
        Ok(())
    }

    /// Concatenates chunks along the sample axis.
    fn concatenate(parts: &[SampleArrays]) -> Result<Self> {
        let cat2 = |v: Vec<ArrayView2<f32>>| concatenate(Axis(0), &v);
        let cat3 = |v: Vec<ArrayView3<f32>>| concatenate(Axis(0), &v);
        let err = |e: ndarray::ShapeError| {
            AbsFitError::config("dataset chunks", format!("cannot concatenate: {e}"))
        };
        Ok(Self {
            params: cat2(parts.iter().map(|p| p.params.view()).collect()).map_err(err)?,
            level_db: cat3(parts.iter().map(|p| p.level_db.view()).collect()).map_err(err)?,
            depth_m: cat3(parts.iter().map(|p| p.depth_m.view()).collect()).map_err(err)?,
        })
    }
}

/// Writes a dataset (or one shard) chunk by chunk, resuming from what an earlier run left.
#[derive(Debug)]
pub struct DatasetWriter {
    dir: PathBuf,
    manifest: Manifest,
    chunk_size: usize,
    chunks: Chunks,
    /// Held while the writer lives: one writer per directory at a time.
    _lock: DirLock,
}

/// What [`DatasetWriter::audit`] found in the chunk folder.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChunkAudit {
    /// The chunks still to generate: missing ones and bad ones, in order.
    pub pending: Vec<Range<usize>>,
    /// The bad chunks among them (files without a record, of another dataset, not matching
    /// their checksums, unreadable or non-finite), each with the reason.
    pub bad: Vec<(Range<usize>, String)>,
}

impl DatasetWriter {
    /// Opens `dir` for the dataset `manifest` describes. A directory holding a different dataset
    /// (other settings, model, seed or range), or files that no manifest describes, is refused,
    /// never overwritten; one holding the same dataset is resumed. The directory's advisory lock
    /// ([`DirLock`]) is held until the writer is dropped, so a second process writing the same
    /// directory is refused with the holder's pid.
    pub fn open(dir: &Path, manifest: Manifest, chunk_size: usize) -> Result<Self> {
        manifest.check(dir)?;
        if chunk_size == 0 {
            return Err(AbsFitError::config("chunk size", "must be at least 1"));
        }
        let io = |e| AbsFitError::Io {
            path: dir.to_path_buf(),
            source: e,
        };
        let lock = DirLock::acquire(dir)?;
        tidy(dir)?;
        std::fs::create_dir_all(dir.join(CHUNK_DIR)).map_err(io)?;
        if dir.join(MANIFEST_FILE).exists() {
            let existing = Manifest::read(dir)?;
            if existing != manifest {
                return Err(AbsFitError::dataset(
                    dir,
                    format!(
                        "holds a different dataset: {}; choose another directory or delete it",
                        describe_difference(&existing, &manifest)
                    ),
                ));
            }
        } else {
            manifest.write(dir)?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            chunks: Chunks::new(dir, &manifest)?,
            manifest,
            chunk_size,
            _lock: lock,
        })
    }

    /// The manifest being written.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Whether the final arrays exist already (nothing left to do).
    pub fn is_complete(&self) -> bool {
        self.dir.join(PARAMS_FILE).exists()
    }

    /// All chunks of this directory's range, in order.
    pub fn chunks(&self) -> Vec<Range<usize>> {
        let (start, end) = self.manifest.range;
        (start..end)
            .step_by(self.chunk_size)
            .map(|s| s..(s + self.chunk_size).min(end))
            .collect()
    }

    /// Verifies every chunk on disk against its provenance record: what is still to generate,
    /// and which chunks were bad (they are regenerated: their files are overwritten).
    pub fn audit(&self) -> ChunkAudit {
        let mut audit = ChunkAudit::default();
        if self.is_complete() {
            return audit;
        }
        for chunk in self.chunks() {
            match self.chunks.check(&chunk, &self.manifest) {
                ChunkState::Valid(_) => {}
                ChunkState::Missing => audit.pending.push(chunk),
                ChunkState::Bad(reason) => {
                    audit.bad.push((chunk.clone(), reason));
                    audit.pending.push(chunk);
                }
            }
        }
        audit
    }

    /// Whether the chunk of `range` was written completely by an earlier run of this dataset
    /// and still matches its record.
    pub fn has_chunk(&self, range: &Range<usize>) -> bool {
        matches!(
            self.chunks.check(range, &self.manifest),
            ChunkState::Valid(_)
        )
    }

    /// The chunks still to generate ([`DatasetWriter::audit`]).
    pub fn pending_chunks(&self) -> Vec<Range<usize>> {
        self.audit().pending
    }

    /// Stores one generated chunk: its arrays, checked (shapes and values, as
    /// [`Dataset::open`] checks them), then the record of their provenance. Each file is written
    /// atomically.
    pub fn write_chunk(&self, range: &Range<usize>, arrays: &SampleArrays) -> Result<()> {
        arrays.validate(&self.manifest, range, &self.dir.join(CHUNK_DIR))?;
        self.chunks.write(range, arrays)
    }

    /// Assembles the final arrays from the chunks, then removes them. Every chunk is verified
    /// before anything is assembled; a bad one is removed (so the next run regenerates it) and
    /// reported as the error. The chunks are deleted only once the final arrays are written
    /// (each synced; `params.npy` last, which marks the dataset complete).
    pub fn finish(self) -> Result<Dataset> {
        if !self.is_complete() {
            let mut parts = Vec::new();
            for chunk in self.chunks() {
                match self.chunks.check(&chunk, &self.manifest) {
                    ChunkState::Valid(arrays) => parts.push(arrays),
                    ChunkState::Missing => {
                        return Err(AbsFitError::dataset(
                            &self.dir,
                            format!("chunk {chunk:?} is missing: run generate again"),
                        ));
                    }
                    ChunkState::Bad(reason) => {
                        self.chunks.remove(&chunk)?;
                        return Err(AbsFitError::dataset(
                            &self.dir,
                            format!(
                                "chunk {chunk:?} was bad ({reason}) and has been removed: run \
                                 generate again to regenerate it"
                            ),
                        ));
                    }
                }
            }
            let all = SampleArrays::concatenate(&parts)?;
            all.check(&self.manifest, self.manifest.len(), &self.dir)?;
            all.write(&self.dir)?;
        }
        let _ = std::fs::remove_dir_all(self.dir.join(CHUNK_DIR));
        Dataset::open(&self.dir)
    }
}

fn describe_difference(a: &Manifest, b: &Manifest) -> String {
    let mut diffs = Vec::new();
    if a.settings != b.settings {
        diffs.push("generation settings differ".to_string());
    }
    if a.model != b.model {
        diffs.push(format!("model {} vs {}", a.model.name, b.model.name));
    }
    if a.seed != b.seed {
        diffs.push(format!("seed {} vs {}", a.seed, b.seed));
    }
    if (a.n_samples, a.range) != (b.n_samples, b.range) {
        diffs.push(format!(
            "samples {} {:?} vs {} {:?}",
            a.n_samples, a.range, b.n_samples, b.range
        ));
    }
    if diffs.is_empty() {
        diffs.push("layout, split or image geometry differ".into());
    }
    diffs.join(", ")
}

/// A finished dataset (or shard), loaded into memory.
#[derive(Debug, Clone)]
pub struct Dataset {
    dir: PathBuf,
    manifest: Manifest,
    arrays: SampleArrays,
}

impl Dataset {
    /// Opens and checks a finished dataset directory: the manifest parses and its arrays have
    /// the shapes it declares, and every parameter is finite.
    pub fn open(dir: &Path) -> Result<Self> {
        let manifest = Manifest::read(dir)?;
        if !dir.join(PARAMS_FILE).exists() {
            return Err(AbsFitError::dataset(
                dir,
                "generation has not finished (no params.npy); run generate again to resume"
                    .to_string(),
            ));
        }
        let arrays = SampleArrays::read(dir)?;
        let (start, end) = manifest.range;
        arrays.validate(&manifest, &(start..end), dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            arrays,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// The arrays.
    pub fn arrays(&self) -> &SampleArrays {
        &self.arrays
    }
    /// Samples held.
    pub fn len(&self) -> usize {
        self.manifest.len()
    }
    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Local row indices of the training samples held here.
    pub fn train_rows(&self) -> Vec<usize> {
        let (start, end) = self.manifest.range;
        (start..end.min(self.manifest.n_train))
            .map(|i| i - start)
            .collect()
    }
    /// Local row indices of the validation samples held here.
    pub fn validation_rows(&self) -> Vec<usize> {
        let (start, end) = self.manifest.range;
        (start.max(self.manifest.n_train)..end)
            .map(|i| i - start)
            .collect()
    }

    /// Fails unless `model` is the face model the dataset was generated with (same name and
    /// fingerprint).
    pub fn check_model(&self, model: &dyn morphable::MorphableModel) -> Result<()> {
        let identity = ModelIdentity::of(model)?;
        let expected = &self.manifest.model;
        if identity == *expected {
            return Ok(());
        }
        Err(AbsFitError::dataset(
            &self.dir,
            format!(
                "was generated with model '{}' (fingerprint {}), but the model given is '{}' \
                 (fingerprint {}): pass the dataset's model",
                expected.name, expected.fingerprint, identity.name, identity.fingerprint
            ),
        ))
    }
}

/// Merges shard directories into one dataset at `out`. The shards must be slices of the same
/// dataset whose ranges tile `[0, n_samples)`; the result is byte-identical to generating the
/// whole dataset in one run.
pub fn merge_shards(shards: &[PathBuf], out: &Path) -> Result<Dataset> {
    let mut parts = shards
        .iter()
        .map(|d| Dataset::open(d))
        .collect::<Result<Vec<_>>>()?;
    let first = parts
        .first()
        .ok_or_else(|| AbsFitError::config("merge", "no shard directories given"))?;
    for p in &parts[1..] {
        if !first.manifest.same_dataset(&p.manifest) {
            return Err(AbsFitError::dataset(
                &p.dir,
                format!(
                    "is not a shard of the same dataset as {}: {}",
                    first.dir.display(),
                    describe_difference(&first.manifest, &p.manifest)
                ),
            ));
        }
    }
    parts.sort_by_key(|p| p.manifest.range.0);
    let mut next = 0;
    for p in &parts {
        if p.manifest.range.0 != next {
            return Err(AbsFitError::dataset(
                &p.dir,
                format!(
                    "shard range {:?} leaves a gap or overlap at sample {next}",
                    p.manifest.range
                ),
            ));
        }
        next = p.manifest.range.1;
    }
    let manifest = Manifest {
        range: (0, parts[0].manifest.n_samples),
        ..parts[0].manifest.clone()
    };
    if next != manifest.n_samples {
        return Err(AbsFitError::config(
            "merge",
            format!("shards cover samples [0, {next}) of {}", manifest.n_samples),
        ));
    }
    let arrays: Vec<SampleArrays> = parts.into_iter().map(|p| p.arrays).collect();
    let all = SampleArrays::concatenate(&arrays)?;
    let _lock = DirLock::acquire(out)?;
    tidy(out)?;
    if out.join(MANIFEST_FILE).exists() && Manifest::read(out)? != manifest {
        return Err(AbsFitError::dataset(
            out,
            "holds a different dataset; refusing to overwrite it".to_string(),
        ));
    }
    manifest.write(out)?;
    all.write(out)?;
    Dataset::open(out)
}

/// Samples `[start, end)` of shard `index` of `count` over `n` samples: contiguous, sizes
/// differing by at most one.
pub fn shard_range(n: usize, index: usize, count: usize) -> Result<(usize, usize)> {
    if count == 0 || index >= count {
        return Err(AbsFitError::config(
            "shard",
            format!("shard {index}/{count}: need 0 ≤ index < count"),
        ));
    }
    // u128: index · n cannot overflow.
    let bound = |i: usize| (i as u128 * n as u128 / count as u128) as usize;
    let (start, end) = (bound(index), bound(index + 1));
    if start == end {
        return Err(AbsFitError::config(
            "shard",
            format!("shard {index}/{count} of {n} samples would be empty: use at most {n} shards"),
        ));
    }
    Ok((start, end))
}
