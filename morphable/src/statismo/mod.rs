//! The statismo / Basel Face Model 2019 HDF5 layout: [`load`] a model from it and [`save`] one
//! into it (docs/physics.md §5).
//!
//! # Layout
//!
//! Under a model root (the file root, or a catalog prefix such as `/face12`), each block is
//! its own statismo model:
//!
//! ```text
//! <root>/shape/model/mean              f32 (3N)      x0 y0 z0 x1 …, mm
//! <root>/shape/model/pcaBasis          f32 (3N, K)   row-major; column k is component k
//! <root>/shape/model/pcaVariance       f32 (K)       λ_k, mm²
//! <root>/shape/model/noiseVariance     f32 (1) or () σ², mm²
//! <root>/shape/representer/points      f32 (3, N)    reference vertices, row c = coordinate c
//! <root>/shape/representer/cells       int (3, T)    0-based triangle corners, column t = triangle t
//! <root>/shape/version/{majorVersion, minorVersion}
//! <root>/expression/…                  the same, optional
//! <root>/color/…                       ignored
//! <root>/version/{majorVersion, minorVersion}
//! ```
//!
//! Format 0.9 stores an orthonormal basis U and the variances separately; 0.8 (and files that
//! carry no version at all) store the scaled basis U·diag(√λ). Either way the loaded
//! [`PcaBlock`](crate::PcaBlock) holds the scaled basis, column-major.
//!
//! Vertices come from `model/mean`, never from `representer/points`: the two need not agree
//! (in some published files the representer is in another frame). The expression mean is
//! added to the shape mean by [`PcaModel`]. Triangles come from `/shape/representer/cells`.
//!
//! # Robustness
//!
//! Every dataset is checked for presence, rank, extent and element type before it is read, and
//! its values afterwards; each failure is a [`MorphableError`] naming the file and the dataset.
//! A dataset whose declared size could not be backed by the file (a few hundred bytes claiming
//! gigabytes) is refused before anything is allocated. Loading never panics: see
//! [`load_with`] for how a panic inside the HDF5 parser itself is contained.
//!
//! ```
//! use morphable::statismo::{self, LoadOptions, SaveOptions};
//! use morphable::{MorphableModel, PcaBlock, PcaModel};
//!
//! // One triangle, one shape component that lifts the first vertex by 2 mm per σ.
//! let mean = vec![0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 10.0, 0.0];
//! let mut basis = vec![0.0f32; 9];
//! basis[2] = 2.0;
//! let shape = PcaBlock::new(mean, basis, vec![4.0], 0.0)?;
//! let model = PcaModel::new("tri", shape, PcaBlock::empty(3), vec![[0, 1, 2]])?;
//!
//! let bytes = statismo::to_bytes(&model, &SaveOptions::default())?;
//! let loaded = statismo::from_bytes(bytes, "tri.h5", &LoadOptions::default())?;
//! let face = loaded.instance(&[1.5], &[])?;
//! assert!((face.vertices[0].z - 3.0).abs() < 1e-6);
//! # Ok::<(), morphable::MorphableError>(())
//! ```

mod read;
mod write;

use std::path::Path;

use crate::{MorphableError, PcaModel, Result};

/// A statismo file-format version, as stored in `version/{majorVersion, minorVersion}`.
///
/// It decides what `model/pcaBasis` holds: the orthonormal basis U (0.9) or the scaled basis
/// U·diag(√λ) (0.8, and files without a version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum FormatVersion {
    /// Statismo 0.8: `pcaBasis` is U·diag(√λ).
    V0_8,
    /// Statismo 0.9 (BFM 2017 / 2019): `pcaBasis` is the orthonormal U.
    #[default]
    V0_9,
}

impl FormatVersion {
    /// The version numbered `major.minor`, if this module knows it.
    pub fn from_parts(major: i64, minor: i64) -> Option<Self> {
        match (major, minor) {
            (0, 8) => Some(Self::V0_8),
            (0, 9) => Some(Self::V0_9),
            _ => None,
        }
    }
    /// The major version number (0).
    pub fn major(self) -> i32 {
        0
    }
    /// The minor version number (8 or 9).
    pub fn minor(self) -> i32 {
        match self {
            Self::V0_8 => 8,
            Self::V0_9 => 9,
        }
    }
    /// Whether `pcaBasis` holds the unscaled, orthonormal U.
    pub fn basis_is_unscaled(self) -> bool {
        matches!(self, Self::V0_9)
    }
}

impl std::fmt::Display for FormatVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major(), self.minor())
    }
}

/// A model root inside a file, such as `/face12/model` (a statismo catalog entry). Stored
/// without leading or trailing `/`; the empty path is the file root.
fn normalize_prefix(name: &'static str, prefix: &str) -> Result<String> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    for component in trimmed.split('/') {
        let reason = if component.is_empty() {
            Some("has an empty component ('//')")
        } else if component == "." || component == ".." {
            Some("has a '.' or '..' component, which HDF5 paths do not resolve")
        } else if component.contains('\0') {
            Some("contains a NUL character")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(MorphableError::Config {
                name,
                reason: format!("group path '{prefix}' {reason}"),
            });
        }
    }
    Ok(trimmed.to_owned())
}

/// How to load a statismo file. Construct with [`LoadOptions::default`] and the `with_*`
/// methods; [`load_with`] validates the options before it opens the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    prefix: Option<String>,
    max_shape: Option<usize>,
    max_expression: Option<usize>,
}

impl LoadOptions {
    /// The default: find the model root automatically, keep every component.
    pub fn new() -> Self {
        Self::default()
    }

    /// The group under which the model lives (`"/"` for the file root, `"/face12"` for a
    /// model stored under a catalog prefix). Without it the model root is found
    /// automatically: the file root if it holds `shape/model/mean`, otherwise the one group
    /// that does.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Keep only the first `k` shape components (all of them if the file has fewer). The
    /// columns beyond are never copied, so a large file loads faster.
    pub fn with_max_shape_components(mut self, k: usize) -> Self {
        self.max_shape = Some(k);
        self
    }

    /// Keep only the first `k` expression components (all of them if the file has fewer).
    pub fn with_max_expression_components(mut self, k: usize) -> Self {
        self.max_expression = Some(k);
        self
    }

    /// The model root, if one was given.
    pub fn prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }
    /// The shape-component limit, if any.
    pub fn max_shape_components(&self) -> Option<usize> {
        self.max_shape
    }
    /// The expression-component limit, if any.
    pub fn max_expression_components(&self) -> Option<usize> {
        self.max_expression
    }

    /// Checks the options: the prefix must be a plain HDF5 group path (no empty, `.` or `..`
    /// components). Returns the normalized prefix (`None` = find it automatically).
    pub fn validate(&self) -> Result<Option<String>> {
        self.prefix
            .as_deref()
            .map(|p| normalize_prefix("LoadOptions::prefix", p))
            .transpose()
    }
}

/// How `model/pcaBasis` and friends are stored on disk by [`save`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Storage {
    /// One contiguous run of bytes per dataset: the fastest to load.
    #[default]
    Contiguous,
    /// Chunked (about 1 MiB per chunk) and deflate-compressed at zlib `level` 0–9.
    Deflate {
        /// zlib effort, 0 (store) to 9 (smallest).
        level: u8,
    },
}

/// The integer type of `representer/cells` written by [`save`]. Statismo writes `I32`; the
/// reader accepts any integer type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CellIndexType {
    /// Signed 32-bit (statismo's own choice).
    #[default]
    I32,
    /// Unsigned 32-bit.
    U32,
    /// Signed 64-bit.
    I64,
    /// Unsigned 16-bit: only for models of at most 65 536 vertices.
    U16,
}

/// The dataspace of `model/noiseVariance` written by [`save`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum NoiseVarianceShape {
    /// A one-element array, shape (1,), as statismo writes it.
    #[default]
    OneElement,
    /// A scalar dataspace, shape ().
    Scalar,
}

/// How to save a model in the statismo layout. [`SaveOptions::default`] writes what statismo
/// and BFM 2019 write: format 0.9, contiguous storage, `i32` cells, `noiseVariance` of shape
/// (1,), at the file root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaveOptions {
    /// Format version: decides whether `pcaBasis` is U (0.9) or U·diag(√λ) (0.8).
    pub version: FormatVersion,
    /// Storage of the large datasets.
    pub storage: Storage,
    /// Integer type of `representer/cells`.
    pub cell_type: CellIndexType,
    /// Dataspace of `model/noiseVariance`.
    pub noise_shape: NoiseVarianceShape,
    /// Group under which the model is written (empty or `"/"` = the file root). A
    /// `/catalog` group naming the model root is written as well, as scalismo expects.
    pub prefix: String,
}

impl SaveOptions {
    /// Checks the options: deflate level at most 9; the prefix a plain group path that does
    /// not start with the `catalog` group. Returns the normalized prefix.
    pub fn validate(&self) -> Result<String> {
        if let Storage::Deflate { level } = self.storage
            && level > 9
        {
            return Err(MorphableError::Config {
                name: "SaveOptions::storage",
                reason: format!("deflate level {level} is not in 0..=9"),
            });
        }
        let prefix = normalize_prefix("SaveOptions::prefix", &self.prefix)?;
        if prefix.split('/').next() == Some(write::CATALOG) {
            return Err(MorphableError::Config {
                name: "SaveOptions::prefix",
                reason: format!(
                    "'{}' would collide with the /{} group",
                    self.prefix,
                    write::CATALOG
                ),
            });
        }
        Ok(prefix)
    }
}

/// Loads a statismo / BFM 2019 file with the default [`LoadOptions`]. See [`load_with`].
pub fn load(path: &Path) -> Result<PcaModel> {
    load_with(path, &LoadOptions::default())
}

/// Loads a statismo / BFM 2019 file: the shape block, the expression block (an empty one if
/// the file has none) and the triangles. The model is named after the file stem, followed by
/// `:/prefix` when it lives under a prefix.
///
/// The file is read on demand (positional reads on Unix, a whole read elsewhere): only the
/// model's datasets are fetched, so the colour model of a BFM file is never read, and the
/// basis is read in parallel row windows and transposed straight into column-major order.
///
/// Errors: [`MorphableError::Io`] if the file cannot be read, [`MorphableError::NotHdf5`] if
/// it is not HDF5 or its structures are damaged, [`MorphableError::Missing`] /
/// [`MorphableError::Shape`] / [`MorphableError::Value`] naming the offending dataset,
/// [`MorphableError::Inconsistent`] if shape and expression disagree on the vertex count, and
/// [`MorphableError::Config`] for invalid options or an ambiguous model root.
///
/// The HDF5 parser is given untrusted bytes. It is written to refuse malformed input with an
/// error, but a parser bug must not take the caller down with it, so the parse runs under
/// [`std::panic::catch_unwind`] and a panic becomes [`MorphableError::NotHdf5`]. (Allocation
/// failure aborts rather than panics, which is why declared sizes are checked against the file
/// length before anything is read.)
pub fn load_with(path: &Path, options: &LoadOptions) -> Result<PcaModel> {
    let prefix = options.validate()?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    read::read_model(read::Input::File, path, &stem, prefix, options)
}

/// Loads a statismo model from the bytes of a file. `source` names the bytes in error
/// messages and becomes the model name (with `:/prefix` appended under a prefix). Same checks
/// and guarantees as [`load_with`].
pub fn from_bytes(bytes: Vec<u8>, source: &str, options: &LoadOptions) -> Result<PcaModel> {
    let prefix = options.validate()?;
    read::read_model(
        read::Input::Bytes(bytes),
        Path::new(source),
        source,
        prefix,
        options,
    )
}

/// Saves a model in the statismo / BFM 2019 layout (see the [module documentation](self)).
/// The file is written to a temporary file in the same directory and renamed over `path`, so
/// a reader never sees a half-written file and a failed save leaves `path` as it was.
///
/// `representer/points` of both blocks holds the model mean μ_s + μ_e. With format 0.9 the
/// basis is divided by √λ on the way out; a component of zero variance is written as a zero
/// column.
pub fn save(model: &PcaModel, path: &Path, options: &SaveOptions) -> Result<()> {
    let builder = write::build_file(model, options)?;
    write::write_atomically(builder, path)
}

/// The bytes [`save`] would write, without touching the filesystem.
pub fn to_bytes(model: &PcaModel, options: &SaveOptions) -> Result<Vec<u8>> {
    let builder = write::build_file(model, options)?;
    builder
        .finish()
        .map_err(|e| write::writer_error(Path::new("<memory>"), e))
}
