//! The chunks of a dataset being generated, in `DIR/chunks/`: per sample range the three
//! `.npy` files and, written last, a record (`chunk-RANGE.json`) of their provenance: the
//! dataset they belong to (a fingerprint of its manifest), the range, and a checksum of each
//! file's bytes. A chunk is reused or assembled only when its record is there and every file
//! matches it and holds finite parameters; anything else is a bad chunk, to be regenerated.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use ndarray::Array3;
use radar_sim::npy::{from_npy_bytes, to_npy_bytes};
use serde::{Deserialize, Serialize};

use super::store::{DEPTH_FILE, Fnv1a, LEVEL_FILE, Manifest, PARAMS_FILE, SampleArrays};
use crate::{AbsFitError, Result};

/// The folder of the chunks inside a dataset directory.
pub(super) const CHUNK_DIR: &str = "chunks";
/// Version tag of a chunk record.
const RECORD_FORMAT: &str = "abs-fit-chunk-1";

/// What a chunk record says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ChunkRecord {
    format: String,
    /// [`fingerprint`] of the manifest of the dataset the chunk belongs to.
    dataset: String,
    /// The samples `[start, end)`.
    range: (usize, usize),
    /// FNV-1a 64 of each file's bytes, by file name.
    files: BTreeMap<String, String>,
}

/// The state of one chunk on disk.
#[derive(Debug)]
pub(super) enum ChunkState {
    /// No file of the chunk exists.
    Missing,
    /// Verified: its arrays.
    Valid(SampleArrays),
    /// Present but unusable, and why.
    Bad(String),
}

/// The chunks of one dataset directory.
#[derive(Debug, Clone)]
pub(super) struct Chunks {
    dir: PathBuf,
    dataset: String,
}

/// A fingerprint of a manifest: FNV-1a 64 of its JSON. Chunks of another dataset (other
/// settings, model, seed or range) have another.
fn fingerprint(manifest: &Manifest) -> Result<String> {
    let json = serde_json::to_vec(manifest)
        .map_err(|e| AbsFitError::config("manifest", format!("cannot serialise: {e}")))?;
    Ok(checksum(&json))
}

fn checksum(bytes: &[u8]) -> String {
    let mut h = Fnv1a::default();
    h.write(bytes);
    format!("{:016x}", h.0)
}

impl Chunks {
    /// The chunks of `dataset_dir` for the dataset `manifest` describes.
    pub(super) fn new(dataset_dir: &Path, manifest: &Manifest) -> Result<Self> {
        Ok(Self {
            dir: dataset_dir.join(CHUNK_DIR),
            dataset: fingerprint(manifest)?,
        })
    }

    /// The file names of the chunk of `range`: the three arrays (params last) and the record.
    fn files(range: &Range<usize>) -> ([String; 3], String) {
        let suffix = format!("-{:08}-{:08}", range.start, range.end);
        let npy = |name: &str| name.replace(".npy", &format!("{suffix}.npy"));
        (
            [npy(LEVEL_FILE), npy(DEPTH_FILE), npy(PARAMS_FILE)],
            format!("chunk{suffix}.json"),
        )
    }

    /// Writes the chunk of `range`: the arrays, then the record that vouches for them.
    pub(super) fn write(&self, range: &Range<usize>, arrays: &SampleArrays) -> Result<()> {
        let (names, record_name) = Self::files(range);
        // A record left from an earlier attempt must not vouch for files being replaced.
        remove_file(&self.dir.join(&record_name))?;
        let bytes = [
            to_npy_bytes(&arrays.level_db),
            to_npy_bytes(&arrays.depth_m),
            to_npy_bytes(&arrays.params),
        ];
        let mut files = BTreeMap::new();
        for (name, bytes) in names.iter().zip(&bytes) {
            morphable::export::atomic_write(&self.dir.join(name), bytes)?;
            files.insert(name.clone(), checksum(bytes));
        }
        let record = ChunkRecord {
            format: RECORD_FORMAT.into(),
            dataset: self.dataset.clone(),
            range: (range.start, range.end),
            files,
        };
        let text = serde_json::to_string_pretty(&record)
            .map_err(|e| AbsFitError::config("chunk record", format!("cannot serialise: {e}")))?;
        morphable::export::atomic_write(&self.dir.join(record_name), text.as_bytes())?;
        Ok(())
    }

    /// Verifies the chunk of `range` against its record and reads it.
    pub(super) fn check(&self, range: &Range<usize>, manifest: &Manifest) -> ChunkState {
        let (names, record_name) = Self::files(range);
        let record_path = self.dir.join(&record_name);
        if !record_path.exists() && names.iter().all(|n| !self.dir.join(n).exists()) {
            return ChunkState::Missing;
        }
        match self.verify(range, manifest, &names, &record_path) {
            Ok(arrays) => ChunkState::Valid(arrays),
            Err(reason) => ChunkState::Bad(reason),
        }
    }

    fn verify(
        &self,
        range: &Range<usize>,
        manifest: &Manifest,
        names: &[String; 3],
        record_path: &Path,
    ) -> std::result::Result<SampleArrays, String> {
        let text = std::fs::read_to_string(record_path)
            .map_err(|e| format!("no readable provenance record: {e}"))?;
        let record: ChunkRecord =
            serde_json::from_str(&text).map_err(|e| format!("unreadable record: {e}"))?;
        if record.format != RECORD_FORMAT {
            return Err(format!("record format '{}'", record.format));
        }
        if record.dataset != self.dataset {
            return Err("it belongs to another dataset (settings, model, seed or range)".into());
        }
        if record.range != (range.start, range.end) {
            return Err(format!("it holds samples {:?}", record.range));
        }
        let mut bytes = Vec::new();
        for name in names {
            let data = std::fs::read(self.dir.join(name)).map_err(|e| format!("{name}: {e}"))?;
            if record.files.get(name) != Some(&checksum(&data)) {
                return Err(format!("{name} does not match its checksum"));
            }
            bytes.push(data);
        }
        let arrays = SampleArrays {
            level_db: read3(&bytes[0], &names[0])?,
            depth_m: read3(&bytes[1], &names[1])?,
            params: from_npy_bytes::<f32, _>(&bytes[2])
                .map_err(|e| format!("{}: {e}", names[2]))?,
        };
        arrays
            .validate(manifest, range, &self.dir)
            .map_err(|e| e.to_string())?;
        Ok(arrays)
    }

    /// Removes every file of the chunk of `range`.
    pub(super) fn remove(&self, range: &Range<usize>) -> Result<()> {
        let (names, record_name) = Self::files(range);
        // The record first: without it the rest is never trusted.
        remove_file(&self.dir.join(record_name))?;
        for name in names {
            remove_file(&self.dir.join(name))?;
        }
        Ok(())
    }
}

fn read3(bytes: &[u8], name: &str) -> std::result::Result<Array3<f32>, String> {
    from_npy_bytes::<f32, _>(bytes).map_err(|e| format!("{name}: {e}"))
}

/// Removes a file; one that is not there is fine.
fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(AbsFitError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}
