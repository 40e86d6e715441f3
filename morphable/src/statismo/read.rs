//! Reading the statismo layout: locate the model root, check every dataset's shape and type
//! before reading it, read the basis in parallel row windows straight into column-major order,
//! and check the values.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use hdf5_pure::{AttrValue, DType, Dataset, Error as H5Error, File, FormatError, Group};
use rayon::prelude::*;

use super::{FormatVersion, LoadOptions};
use crate::{MorphableError, PcaBlock, PcaModel, Result};

/// The largest expansion a filtered (compressed) dataset is credited with when its declared
/// size is checked against the file length. DEFLATE cannot expand more than about 1032:1.
const MAX_FILTER_RATIO: u64 = 1100;
/// Stored basis bytes decoded per parallel work item.
const WINDOW_BYTES: usize = 1 << 20;
/// Rows per tile of the transposition: a tile of `TILE_ROWS × K` floats stays in cache while
/// its K columns are written out, each as a contiguous run.
const TILE_ROWS: usize = 64;
/// How deep the automatic search for a model root descends.
const SEARCH_DEPTH: usize = 4;
/// How many groups the automatic search visits at most (HDF5 links may form cycles, and a
/// hostile file may hold millions of groups).
const SEARCH_GROUPS: usize = 4096;

/// Where the HDF5 bytes come from.
pub(super) enum Input {
    /// The file at the path given beside it, read on demand: only the datasets of the model
    /// are fetched (a BFM file's colour model, a third of it, is never read).
    File,
    /// The bytes of a file, already in memory.
    Bytes(Vec<u8>),
}

/// Reads a whole model. `path` is the file (or names the bytes in messages), `prefix` the
/// validated model root (`None`: find it). Runs the parse under `catch_unwind` (see
/// [`super::load_with`]).
pub(super) fn read_model(
    input: Input,
    path: &Path,
    stem: &str,
    prefix: Option<String>,
    options: &LoadOptions,
) -> Result<PcaModel> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let reader = Reader::open(input, path)?;
        reader.model(stem, prefix, options)
    }));
    outcome.unwrap_or_else(|panic| {
        Err(MorphableError::NotHdf5 {
            path: path.to_path_buf(),
            reason: format!(
                "the HDF5 parser panicked on malformed data: {}",
                panic_message(panic.as_ref())
            ),
        })
    })
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".to_owned()
    }
}

/// `parent/child` in HDF5 path syntax without a leading `/` (the empty parent is the root).
fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}/{child}")
    }
}

/// How an object is named in error messages: its absolute path.
fn display(object: &str) -> String {
    format!("/{object}")
}

/// A dataset whose shape has been read.
struct Found {
    dataset: Dataset,
    /// Absolute path, for messages.
    name: String,
    shape: Vec<u64>,
}

/// One block (`shape` or `expression`) whose datasets have been located and whose shapes,
/// types and declared sizes have been checked, before any bulk data is read.
struct BlockLayout {
    mean: Found,
    basis: Found,
    variance: Found,
    noise: Found,
    /// 3N.
    n_coords: usize,
    /// Components in the file.
    n_components: usize,
    /// Components to keep.
    keep: usize,
    version: FormatVersion,
}

struct Reader<'a> {
    file: File,
    path: &'a Path,
    /// File length in bytes: the bound on what a dataset may declare.
    len: u64,
}

impl<'a> Reader<'a> {
    fn open(input: Input, path: &'a Path) -> Result<Self> {
        let (opened, len) = match input {
            Input::Bytes(bytes) => {
                let len = bytes.len() as u64;
                (File::from_bytes(bytes), len)
            }
            Input::File => open_file(path)?,
        };
        let file = opened.map_err(|e| match e {
            H5Error::Io(source) => MorphableError::io(path, source),
            other => MorphableError::NotHdf5 {
                path: path.to_path_buf(),
                reason: other.to_string(),
            },
        })?;
        Ok(Self { file, path, len })
    }

    fn model(&self, stem: &str, prefix: Option<String>, options: &LoadOptions) -> Result<PcaModel> {
        let root = self.model_root(prefix)?;
        let shape = self.inspect_block(&root, "shape", options.max_shape_components())?;
        let n_vertices = shape.n_coords / 3;
        let expression_group = join(&root, "expression");
        let expression = if self.group(&expression_group)?.is_some() {
            let layout =
                self.inspect_block(&root, "expression", options.max_expression_components())?;
            if layout.n_coords != shape.n_coords {
                return Err(MorphableError::Inconsistent(format!(
                    "{}: {} has {} vertices, {} has {}",
                    self.path.display(),
                    shape.mean.name,
                    n_vertices,
                    layout.mean.name,
                    layout.n_coords / 3
                )));
            }
            Some(layout)
        } else {
            None
        };
        let triangles = self.triangles(&root, n_vertices)?;
        let shape = self.read_block(shape)?;
        let expression = match expression {
            Some(layout) => self.read_block(layout)?,
            None => PcaBlock::empty(n_vertices),
        };
        let name = if root.is_empty() {
            stem.to_owned()
        } else {
            format!("{stem}:/{root}")
        };
        PcaModel::new(name, shape, expression, triangles)
    }

    // ---- HDF5 access with errors that name the object --------------------------------------

    /// Maps an HDF5 error met while reaching `object` to this crate's error.
    fn h5_error(&self, object: &str, error: H5Error) -> MorphableError {
        match error {
            H5Error::Io(source) => MorphableError::io(self.path, source),
            H5Error::Format(FormatError::PathNotFound(_)) => MorphableError::Missing {
                path: self.path.to_path_buf(),
                object: display(object),
            },
            H5Error::NotADataset(at) => MorphableError::Missing {
                path: self.path.to_path_buf(),
                object: format!("{} (/{at} is not a dataset)", display(object)),
            },
            H5Error::NotAGroup(at) => MorphableError::Missing {
                path: self.path.to_path_buf(),
                object: format!("{} (/{at} is not a group)", display(object)),
            },
            other => MorphableError::NotHdf5 {
                path: self.path.to_path_buf(),
                reason: format!("reading {}: {other}", display(object)),
            },
        }
    }

    fn value_error(&self, dataset: &str, reason: String) -> MorphableError {
        MorphableError::Value {
            path: self.path.to_path_buf(),
            dataset: dataset.to_owned(),
            reason,
        }
    }

    fn shape_error(&self, found: &Found, expected: String) -> MorphableError {
        MorphableError::Shape {
            path: self.path.to_path_buf(),
            dataset: found.name.clone(),
            expected,
            actual: found.shape.clone(),
        }
    }

    /// The group at `object`, `None` if nothing (or not a group) is there.
    fn group(&self, object: &str) -> Result<Option<Group>> {
        if object.is_empty() {
            return Ok(Some(self.file.root()));
        }
        self.absent_as_none(object, self.file.group(object))
    }

    /// The dataset at `object`, `None` if nothing (or not a dataset) is there.
    fn optional_dataset(&self, object: &str) -> Result<Option<Dataset>> {
        self.absent_as_none(object, self.file.dataset(object))
    }

    /// A lookup of `object` with "nothing of that kind there" as `None`; other HDF5 errors are
    /// reported against `object`.
    fn absent_as_none<T>(
        &self,
        object: &str,
        found: std::result::Result<T, H5Error>,
    ) -> Result<Option<T>> {
        match found {
            Ok(value) => Ok(Some(value)),
            Err(
                H5Error::Format(FormatError::PathNotFound(_))
                | H5Error::NotAGroup(_)
                | H5Error::NotADataset(_),
            ) => Ok(None),
            Err(e) => Err(self.h5_error(object, e)),
        }
    }

    /// The dataset at `object` with its shape; [`MorphableError::Missing`] if absent.
    fn require(&self, object: &str) -> Result<Found> {
        let dataset = self
            .file
            .dataset(object)
            .map_err(|e| self.h5_error(object, e))?;
        self.found(object, dataset)
    }

    fn found(&self, object: &str, dataset: Dataset) -> Result<Found> {
        let shape = dataset.shape().map_err(|e| self.h5_error(object, e))?;
        Ok(Found {
            dataset,
            name: display(object),
            shape,
        })
    }

    fn dtype(&self, found: &Found) -> Result<DType> {
        found
            .dataset
            .dtype()
            .map_err(|e| self.h5_error(&found.name[1..], e))
    }

    /// Floating-point datasets only (f32, or f64 converted).
    fn check_float(&self, found: &Found) -> Result<()> {
        match self.dtype(found)? {
            DType::F32 | DType::F64 => Ok(()),
            other => Err(self.value_error(
                &found.name,
                format!("floating-point values expected, found {other}"),
            )),
        }
    }

    /// Refuses a dataset whose declared size the file could not hold, before anything is
    /// allocated for it: unfiltered data must fit in the file, filtered data must fit once
    /// expanded by at most [`MAX_FILTER_RATIO`].
    fn check_declared_size(&self, found: &Found) -> Result<()> {
        let too_big = || {
            self.value_error(
                &found.name,
                format!(
                    "declares shape {:?}, more data than a {}-byte file can hold",
                    found.shape, self.len
                ),
            )
        };
        let elements = found
            .shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(too_big)?;
        let element_size = found
            .dataset
            .element_size()
            .map_err(|e| self.h5_error(&found.name[1..], e))?;
        let bytes = elements.checked_mul(element_size).ok_or_else(too_big)?;
        let limit = if found.dataset.filters().is_empty() {
            self.len
        } else {
            self.len.saturating_mul(MAX_FILTER_RATIO)
        };
        if bytes > limit || usize::try_from(elements).is_err() {
            return Err(too_big());
        }
        Ok(())
    }

    /// Reads exactly `expected` values through `read`; a short or long answer means damaged
    /// storage.
    fn read_exact<T>(
        &self,
        found: &Found,
        expected: usize,
        read: impl FnOnce(&Dataset) -> std::result::Result<Vec<T>, H5Error>,
    ) -> Result<Vec<T>> {
        let values = read(&found.dataset).map_err(|e| self.h5_error(&found.name[1..], e))?;
        if values.len() != expected {
            return Err(MorphableError::NotHdf5 {
                path: self.path.to_path_buf(),
                reason: format!(
                    "{} yielded {} values for shape {:?}",
                    found.name,
                    values.len(),
                    found.shape
                ),
            });
        }
        Ok(values)
    }

    // ---- model root ---------------------------------------------------------------------------

    fn holds_model(&self, root: &str) -> Result<bool> {
        Ok(self
            .optional_dataset(&join(root, "shape/model/mean"))?
            .is_some())
    }

    /// The validated prefix, or else the file root if it holds `shape/model/mean`, or else the
    /// one group (searched breadth-first, a few levels deep) that does.
    fn model_root(&self, prefix: Option<String>) -> Result<String> {
        if let Some(prefix) = prefix {
            if self.group(&prefix)?.is_none() {
                return Err(MorphableError::Missing {
                    path: self.path.to_path_buf(),
                    object: format!("{} (the model prefix)", display(&prefix)),
                });
            }
            return Ok(prefix);
        }
        if self.holds_model("")? {
            return Ok(String::new());
        }
        let found = self.search_model_roots()?;
        match found.as_slice() {
            [] => Err(MorphableError::Missing {
                path: self.path.to_path_buf(),
                object: format!(
                    "/shape/model/mean (neither at the root nor in a group up to {SEARCH_DEPTH} levels deep)"
                ),
            }),
            [one] => Ok(one.clone()),
            several => Err(MorphableError::Config {
                name: "LoadOptions::prefix",
                reason: format!(
                    "{} holds models under {}; choose one",
                    self.path.display(),
                    several
                        .iter()
                        .map(|r| display(r))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }

    fn search_model_roots(&self) -> Result<Vec<String>> {
        let mut found = Vec::new();
        let mut queue = VecDeque::from([(String::new(), 0usize)]);
        let mut visited = 0usize;
        while let Some((parent, depth)) = queue.pop_front() {
            let Some(group) = self.group(&parent)? else {
                continue;
            };
            let children = group.groups().map_err(|e| self.h5_error(&parent, e))?;
            for child in children {
                visited += 1;
                if visited > SEARCH_GROUPS {
                    queue.clear();
                    break;
                }
                let path = join(&parent, &child);
                if self.holds_model(&path)? {
                    found.push(path);
                } else if depth + 1 < SEARCH_DEPTH {
                    queue.push_back((path, depth + 1));
                }
            }
        }
        found.sort();
        Ok(found)
    }

    // ---- version ------------------------------------------------------------------------------

    /// The format version that applies to block group `block`: its own `version`, else the
    /// model root's, else the file root's; 0.8 when none is stored.
    fn version(&self, block: &str, root: &str) -> Result<FormatVersion> {
        let mut places = vec![block, root];
        if !root.is_empty() {
            places.push("");
        }
        for place in places {
            if let Some(version) = self.version_at(place)? {
                return Ok(version);
            }
        }
        Ok(FormatVersion::V0_8)
    }

    /// A version stored at `group`, in any of the forms found in the wild: datasets
    /// `version/majorVersion` and `version/minorVersion` (statismo), attributes of those names
    /// on `version` or on `group`, a `version` dataset or attribute holding `"0.9"`, `0.9` or
    /// `[0, 9]`.
    fn version_at(&self, group: &str) -> Result<Option<FormatVersion>> {
        let version = join(group, "version");
        let major_path = join(&version, "majorVersion");
        let minor_path = join(&version, "minorVersion");
        let major = self.optional_dataset(&major_path)?;
        let minor = self.optional_dataset(&minor_path)?;
        match (major, minor) {
            (Some(major), Some(minor)) => {
                let major = self.integer_scalar(&major_path, major)?;
                let minor = self.integer_scalar(&minor_path, minor)?;
                return self
                    .known_version(&display(&version), major, minor)
                    .map(Some);
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(MorphableError::Missing {
                    path: self.path.to_path_buf(),
                    object: format!(
                        "{} and {} (only one of the pair is present)",
                        display(&major_path),
                        display(&minor_path)
                    ),
                });
            }
            (None, None) => {}
        }
        if let Some(version_group) = self.group(&version)? {
            let attrs = version_group
                .attrs()
                .map_err(|e| self.h5_error(&version, e))?;
            if let Some(found) = self.version_from_attrs(&display(&version), &attrs)? {
                return Ok(Some(found));
            }
        } else if let Some(dataset) = self.optional_dataset(&version)? {
            return self.version_dataset(&version, dataset).map(Some);
        }
        let Some(holder) = self.group(group)? else {
            return Ok(None);
        };
        let attrs = holder.attrs().map_err(|e| self.h5_error(group, e))?;
        self.version_from_attrs(&display(group), &attrs)
    }

    fn known_version(&self, place: &str, major: i64, minor: i64) -> Result<FormatVersion> {
        FormatVersion::from_parts(major, minor).ok_or_else(|| {
            self.value_error(
                place,
                format!(
                    "unsupported statismo format version {major}.{minor} (this reader knows 0.8 and 0.9)"
                ),
            )
        })
    }

    /// A scalar or one-element integer dataset (a float holding an integer is accepted).
    fn integer_scalar(&self, object: &str, dataset: Dataset) -> Result<i64> {
        let found = self.found(object, dataset)?;
        if found.shape.iter().product::<u64>() != 1 {
            return Err(self.shape_error(&found, "() or (1,)".into()));
        }
        self.check_declared_size(&found)?;
        let values = self.read_exact(&found, 1, |d| d.read_f64())?;
        let value = values[0];
        if value.fract() != 0.0 || !value.is_finite() || value.abs() > 1e9 {
            return Err(self.value_error(&found.name, format!("{value} is not a version number")));
        }
        Ok(value as i64)
    }

    fn version_dataset(&self, object: &str, dataset: Dataset) -> Result<FormatVersion> {
        let found = self.found(object, dataset)?;
        if found.shape.iter().product::<u64>() > 2 {
            return Err(self.shape_error(&found, "(), (1,) or (2,)".into()));
        }
        self.check_declared_size(&found)?;
        let (major, minor) = match self.dtype(&found)? {
            DType::String | DType::VariableLengthString => {
                let text = found
                    .dataset
                    .read_string()
                    .map_err(|e| self.h5_error(object, e))?;
                let text = text.first().map(String::as_str).unwrap_or("");
                self.parse_version_text(&found.name, text)?
            }
            _ => {
                let values = found
                    .dataset
                    .read_f64()
                    .map_err(|e| self.h5_error(object, e))?;
                self.parse_version_numbers(&found.name, &values)?
            }
        };
        self.known_version(&found.name, major, minor)
    }

    fn version_from_attrs(
        &self,
        place: &str,
        attrs: &HashMap<String, AttrValue>,
    ) -> Result<Option<FormatVersion>> {
        let parts = if let (Some(major), Some(minor)) =
            (attrs.get("majorVersion"), attrs.get("minorVersion"))
        {
            let number = |v: &AttrValue| {
                v.as_i64()
                    .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            };
            match (number(major), number(minor)) {
                (Some(a), Some(b)) => (a, b),
                _ => {
                    return Err(self.value_error(
                        place,
                        format!("version attributes {major:?}.{minor:?} are not integers"),
                    ));
                }
            }
        } else if let Some(value) = attrs.get("version") {
            if let Some(text) = value.as_str() {
                self.parse_version_text(place, text)?
            } else if let Some(values) = value.to_f64s().or_else(|| {
                value
                    .to_i64s()
                    .map(|v| v.into_iter().map(|x| x as f64).collect())
            }) {
                self.parse_version_numbers(place, &values)?
            } else {
                return Err(self.value_error(
                    place,
                    format!("attribute 'version' = {value:?} is not a version"),
                ));
            }
        } else {
            return Ok(None);
        };
        self.known_version(place, parts.0, parts.1).map(Some)
    }

    /// `"0.9"` → (0, 9).
    fn parse_version_text(&self, place: &str, text: &str) -> Result<(i64, i64)> {
        let bad = || self.value_error(place, format!("'{text}' is not a version 'major.minor'"));
        let (major, minor) = text.trim().split_once('.').ok_or_else(bad)?;
        Ok((
            major.parse().map_err(|_| bad())?,
            minor.parse().map_err(|_| bad())?,
        ))
    }

    /// `[0, 9]` → (0, 9); `[0.9]` → (0, 9).
    fn parse_version_numbers(&self, place: &str, values: &[f64]) -> Result<(i64, i64)> {
        let bad = || self.value_error(place, format!("{values:?} is not a version"));
        let integral =
            |v: f64| (v.is_finite() && v.fract() == 0.0 && v.abs() < 1e9).then_some(v as i64);
        match *values {
            [major, minor] => Ok((
                integral(major).ok_or_else(bad)?,
                integral(minor).ok_or_else(bad)?,
            )),
            [single] if single.is_finite() && (0.0..1e6).contains(&single) => {
                // One decimal digit of minor version: 0.8, 0.9.
                let major = single.trunc();
                let minor = ((single - major) * 10.0).round();
                if ((major + minor / 10.0) - single).abs() > 1e-6 {
                    return Err(bad());
                }
                Ok((major as i64, minor as i64))
            }
            _ => Err(bad()),
        }
    }

    // ---- blocks -------------------------------------------------------------------------------

    /// Locates and checks `root/block/model/*` without reading bulk data.
    fn inspect_block(&self, root: &str, block: &str, limit: Option<usize>) -> Result<BlockLayout> {
        let group = join(root, block);
        let model = join(&group, "model");
        let mean = self.require(&join(&model, "mean"))?;
        let basis = self.require(&join(&model, "pcaBasis"))?;
        let variance = self.require(&join(&model, "pcaVariance"))?;
        let noise = self.require(&join(&model, "noiseVariance"))?;

        let n_coords = match mean.shape.as_slice() {
            &[n] if n >= 3 && n.is_multiple_of(3) => n,
            _ => {
                return Err(self.shape_error(
                    &mean,
                    "(3N,) with N ≥ 1: x0 y0 z0 x1 … of the mean vertices".into(),
                ));
            }
        };
        let n_components = match basis.shape.as_slice() {
            &[rows, k] if rows == n_coords => k,
            _ => {
                return Err(self.shape_error(
                    &basis,
                    format!("({n_coords}, K): one row per coordinate of {}", mean.name),
                ));
            }
        };
        if variance.shape.as_slice() != [n_components] {
            return Err(self.shape_error(
                &variance,
                format!(
                    "({n_components},): one variance per column of {}",
                    basis.name
                ),
            ));
        }
        if !matches!(noise.shape.as_slice(), [] | [1]) {
            return Err(self.shape_error(&noise, "() or (1,)".into()));
        }
        for found in [&mean, &basis, &variance, &noise] {
            self.check_float(found)?;
            self.check_declared_size(found)?;
        }
        // The declared-size checks bound both numbers by the file length.
        let (Ok(n_coords), Ok(n_components)) =
            (usize::try_from(n_coords), usize::try_from(n_components))
        else {
            return Err(self.shape_error(&basis, "a size this platform can address".into()));
        };
        let keep = limit.map_or(n_components, |k| k.min(n_components));
        let version = self.version(&group, root)?;
        Ok(BlockLayout {
            mean,
            basis,
            variance,
            noise,
            n_coords,
            n_components,
            keep,
            version,
        })
    }

    /// Reads and checks a block's values and builds the [`PcaBlock`].
    fn read_block(&self, layout: BlockLayout) -> Result<PcaBlock> {
        let mean = self.read_exact(&layout.mean, layout.n_coords, |d| d.read_f32())?;
        if let Some(i) = mean.iter().position(|v| !v.is_finite()) {
            return Err(self.value_error(
                &layout.mean.name,
                format!(
                    "entry {i} (vertex {}, coordinate {}) is {}",
                    i / 3,
                    i % 3,
                    mean[i]
                ),
            ));
        }
        let mut variance =
            self.read_exact(&layout.variance, layout.n_components, |d| d.read_f64())?;
        if let Some(k) = variance.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(self.value_error(
                &layout.variance.name,
                format!(
                    "variance {k} is {}; variances must be finite and ≥ 0",
                    variance[k]
                ),
            ));
        }
        variance.truncate(layout.keep);
        let noise = self.read_exact(&layout.noise, 1, |d| d.read_f64())?[0];
        if !(noise.is_finite() && noise >= 0.0) {
            return Err(self.value_error(
                &layout.noise.name,
                format!("noise variance is {noise}; it must be finite and ≥ 0"),
            ));
        }
        let basis = self.read_basis(&layout)?;
        if layout.version.basis_is_unscaled() {
            PcaBlock::from_unscaled(mean, basis, variance, noise)
        } else {
            PcaBlock::new(mean, basis, variance, noise)
        }
    }

    /// The first `keep` columns of the (3N × K, row-major) basis, column-major. Row windows
    /// are read and transposed in parallel, each into its own slice of every output column,
    /// so the row-major matrix never exists whole in memory.
    fn read_basis(&self, layout: &BlockLayout) -> Result<Vec<f32>> {
        let (rows, cols, keep) = (layout.n_coords, layout.n_components, layout.keep);
        let found = &layout.basis;
        let mut basis = Vec::new();
        basis.try_reserve_exact(rows * keep).map_err(|e| {
            self.value_error(
                &found.name,
                format!("cannot allocate {rows} × {keep} floats: {e}"),
            )
        })?;
        basis.resize(rows * keep, 0.0f32);
        if keep == 0 {
            return Ok(basis);
        }
        let window = self.window_rows(found, rows, cols);
        // segments[w][c]: rows of window w in output column c.
        let mut segments: Vec<Vec<&mut [f32]>> = (0..rows.div_ceil(window))
            .map(|_| Vec::with_capacity(keep))
            .collect();
        for column in basis.chunks_mut(rows) {
            for (segment, slot) in column.chunks_mut(window).zip(segments.iter_mut()) {
                slot.push(segment);
            }
        }
        segments
            .into_par_iter()
            .enumerate()
            .try_for_each(|(w, mut columns)| {
                let count = columns.first().map_or(0, |c| c.len());
                let start = (w * window) as u64;
                let values = self.read_exact(found, count * cols, |d| {
                    d.read_f32_rows(start, count as u64)
                })?;
                scatter_columns(&values, cols, &mut columns);
                Ok::<(), MorphableError>(())
            })?;
        let first_bad = basis
            .par_chunks(rows)
            .enumerate()
            .find_map_first(|(c, column)| {
                column.iter().position(|v| !v.is_finite()).map(|r| (r, c))
            });
        if let Some((r, c)) = first_bad {
            return Err(self.value_error(
                &found.name,
                format!("entry (row {r}, column {c}) is {}", basis[c * rows + r]),
            ));
        }
        Ok(basis)
    }

    /// Rows per parallel work item: about [`WINDOW_BYTES`] of stored data, rounded up to whole
    /// chunks so that no chunk is decompressed twice.
    fn window_rows(&self, found: &Found, rows: usize, cols: usize) -> usize {
        let target = (WINDOW_BYTES / (4 * cols.max(1))).max(TILE_ROWS);
        let chunk_rows = found
            .dataset
            .chunk_shape()
            .ok()
            .flatten()
            .and_then(|c| c.first().copied())
            .and_then(|r| usize::try_from(r).ok())
            .unwrap_or(1)
            .clamp(1, rows.max(1));
        target
            .div_ceil(chunk_rows)
            .saturating_mul(chunk_rows)
            .clamp(1, rows.max(1))
    }

    // ---- triangles ----------------------------------------------------------------------------

    /// `root/shape/representer/cells`, (3, T) of any integer type, 0-based.
    fn triangles(&self, root: &str, n_vertices: usize) -> Result<Vec<[u32; 3]>> {
        let cells = self.require(&join(root, "shape/representer/cells"))?;
        let n_triangles = match cells.shape.as_slice() {
            &[3, t] => t,
            _ => {
                return Err(self.shape_error(
                    &cells,
                    "(3, T): row r holds corner r of every triangle".into(),
                ));
            }
        };
        self.check_declared_size(&cells)?;
        let n_triangles = usize::try_from(n_triangles)
            .map_err(|_| self.shape_error(&cells, "a size this platform can address".into()))?;
        let expected = 3 * n_triangles;
        let indices: Vec<i128> = match self.dtype(&cells)? {
            DType::I8 | DType::I16 | DType::I32 | DType::I64 => self
                .read_exact(&cells, expected, |d| d.read_i64())?
                .into_iter()
                .map(i128::from)
                .collect(),
            DType::U8 | DType::U16 | DType::U32 | DType::U64 => self
                .read_exact(&cells, expected, |d| d.read_u64())?
                .into_iter()
                .map(i128::from)
                .collect(),
            other => {
                return Err(self.value_error(
                    &cells.name,
                    format!("integer vertex indices expected, found {other}"),
                ));
            }
        };
        let mut triangles = vec![[0u32; 3]; n_triangles];
        for (corner, row) in indices.chunks_exact(n_triangles.max(1)).enumerate() {
            for (t, (&index, triangle)) in row.iter().zip(triangles.iter_mut()).enumerate() {
                if index < 0 || index >= n_vertices as i128 {
                    return Err(self.value_error(
                        &cells.name,
                        format!(
                            "cells[{corner}][{t}] = {index} is not a vertex index (the model has {n_vertices} vertices)"
                        ),
                    ));
                }
                triangle[corner] = index as u32;
            }
        }
        Ok(triangles)
    }
}

/// Copies the first `columns.len()` columns of a row-major window (`columns[0].len()` rows of
/// `cols` values) into their column segments, [`TILE_ROWS`] rows at a time.
fn scatter_columns(window: &[f32], cols: usize, columns: &mut [&mut [f32]]) {
    let count = columns.first().map_or(0, |c| c.len());
    for r0 in (0..count).step_by(TILE_ROWS) {
        let r1 = (r0 + TILE_ROWS).min(count);
        let tile = &window[r0 * cols..r1 * cols];
        for (c, column) in columns.iter_mut().enumerate() {
            for (out, row) in column[r0..r1].iter_mut().zip(tile.chunks_exact(cols)) {
                *out = row[c];
            }
        }
    }
}

/// Metadata kept between parses of a file read on demand (object headers, heaps, B-trees).
const METADATA_CACHE_BYTES: usize = 8 << 20;

/// Opens `path` for reads on demand through positional reads (`pread`), which the parallel
/// basis windows issue concurrently without a lock; only the model's datasets are fetched.
/// Returns the parse outcome and the file length.
#[cfg(unix)]
fn open_file(path: &Path) -> Result<(std::result::Result<File, H5Error>, u64)> {
    let file = std::fs::File::open(path).map_err(|e| MorphableError::io(path, e))?;
    let len = regular_file_len(path, &file)?;
    let access = hdf5_pure::FileAccessProperties::new()
        .with_metadata_cache(hdf5_pure::MetadataCacheConfig::new(METADATA_CACHE_BYTES));
    let source = PositionalSource { file, len };
    Ok((File::from_source_with_options(source, access), len))
}

/// Elsewhere the file is read into memory whole.
#[cfg(not(unix))]
fn open_file(path: &Path) -> Result<(std::result::Result<File, H5Error>, u64)> {
    let file = std::fs::File::open(path).map_err(|e| MorphableError::io(path, e))?;
    regular_file_len(path, &file)?;
    let bytes = std::fs::read(path).map_err(|e| MorphableError::io(path, e))?;
    let len = bytes.len() as u64;
    Ok((File::from_bytes(bytes), len))
}

/// The length of an opened file; a directory is an I/O error, as reading it would be.
fn regular_file_len(path: &Path, file: &std::fs::File) -> Result<u64> {
    let metadata = file.metadata().map_err(|e| MorphableError::io(path, e))?;
    if metadata.is_dir() {
        return Err(MorphableError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::IsADirectory, "a directory, not a file"),
        ));
    }
    Ok(metadata.len())
}

/// A file read at absolute offsets, shareable between threads.
#[cfg(unix)]
struct PositionalSource {
    file: std::fs::File,
    /// Length when opened; the reader bounds every request by it.
    len: u64,
}

#[cfg(unix)]
impl hdf5_pure::Source for PositionalSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::result::Result<(), FormatError> {
        use std::os::unix::fs::FileExt;
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or(FormatError::OffsetOverflow {
                offset,
                length: buf.len() as u64,
            })?;
        if end > self.len {
            return Err(FormatError::UnexpectedEof {
                expected: usize::try_from(end).unwrap_or(usize::MAX),
                available: usize::try_from(self.len).unwrap_or(usize::MAX),
            });
        }
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| FormatError::Source(e.to_string()))
    }
}
