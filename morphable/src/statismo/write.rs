//! Writing the statismo layout.

use std::io;
use std::path::Path;

use hdf5_pure::{
    AttrValue, DatasetBuilder, Datatype, Error as H5Error, FileBuilder, FinishedGroup,
    GroupBuilder, H5Element, make_f32_type, make_i32_type, make_i64_type, make_u16_type,
    make_u32_type,
};
use rayon::prelude::*;

use super::{CellIndexType, FormatVersion, NoiseVarianceShape, SaveOptions, Storage};
use crate::{MorphableError, MorphableModel, PcaBlock, PcaModel, Result};

/// The group naming the models of a file (scalismo's catalog).
pub(super) const CATALOG: &str = "catalog";
/// Target size of one chunk of a deflated dataset.
const CHUNK_BYTES: u64 = 1 << 20;
/// Rows per tile of the basis transposition (see the reader's `TILE_ROWS`).
const TILE_ROWS: usize = 64;

/// Builds the whole file in memory, ready to serialise.
pub(super) fn build_file(model: &PcaModel, options: &SaveOptions) -> Result<FileBuilder> {
    let prefix = options.validate()?;
    let cells = CellData::encode(model, options.cell_type)?;
    let points = representer_points(model.mean_coords());
    let mut file = FileBuilder::new();

    let with_expression = model.expression().n_components() > 0
        || model.expression().mean().iter().any(|&v| v != 0.0);
    let mut children = vec![block_group(
        file.create_group("shape"),
        model.shape(),
        &points,
        &cells,
        options,
    )?];
    if with_expression {
        children.push(block_group(
            file.create_group("expression"),
            model.expression(),
            &points,
            &cells,
            options,
        )?);
    }
    children.push(version_group(file.create_group("version"), options.version));

    if prefix.is_empty() {
        children.into_iter().for_each(|g| file.add_group(g));
    } else {
        // Wrap the model root in its prefix groups, innermost first.
        for name in prefix.rsplit('/') {
            let mut group = file.create_group(name);
            children.into_iter().for_each(|g| group.add_group(g));
            children = vec![group.finish()];
        }
        children.into_iter().for_each(|g| file.add_group(g));
    }
    let catalog = catalog_group(file.create_group(CATALOG), &prefix, with_expression)?;
    file.add_group(catalog);
    Ok(file)
}

/// Maps an error of the HDF5 writer for the file at `path`.
pub(super) fn writer_error(path: &Path, error: H5Error) -> MorphableError {
    match error {
        H5Error::Io(source) => MorphableError::io(path, source),
        other => MorphableError::io(path, io::Error::other(format!("HDF5 writer: {other}"))),
    }
}

/// Serialises `builder` into `path` atomically ([`crate::export::atomic_write_with`]): on
/// failure `path` is untouched.
pub(super) fn write_atomically(builder: FileBuilder, path: &Path) -> Result<()> {
    crate::export::atomic_write_with(path, |file| {
        builder.finish_to(file).map_err(|e| writer_error(path, e))
    })
}

/// `representer/points`, (3, N) row-major: row c holds coordinate c of every vertex.
fn representer_points(mean: &[f32]) -> Vec<f32> {
    (0..3)
        .flat_map(|c| mean.iter().skip(c).step_by(3).copied())
        .collect()
}

/// `representer/cells` in the requested integer type, (3, T) row-major.
enum CellData {
    I32(Vec<i32>),
    U32(Vec<u32>),
    I64(Vec<i64>),
    U16(Vec<u16>),
}

impl CellData {
    fn encode(model: &PcaModel, cell_type: CellIndexType) -> Result<Self> {
        // Every index is below the vertex count (PcaModel::new checks it), so the largest
        // index that must fit is n_vertices − 1.
        let largest = model.n_vertices().saturating_sub(1) as u64;
        let capacity = match cell_type {
            CellIndexType::I32 => i32::MAX as u64,
            CellIndexType::U32 => u32::MAX as u64,
            CellIndexType::I64 => i64::MAX as u64,
            CellIndexType::U16 => u16::MAX as u64,
        };
        if largest > capacity {
            return Err(MorphableError::Config {
                name: "SaveOptions::cell_type",
                reason: format!(
                    "{cell_type:?} cannot index {} vertices (largest index {capacity})",
                    model.n_vertices()
                ),
            });
        }
        let rows = || {
            let triangles = model.triangles();
            (0..3).flat_map(move |corner| triangles.iter().map(move |t| t[corner]))
        };
        // The casts cannot truncate: every index is at most `largest` ≤ `capacity`.
        Ok(match cell_type {
            CellIndexType::I32 => Self::I32(rows().map(|i| i as i32).collect()),
            CellIndexType::U32 => Self::U32(rows().collect()),
            CellIndexType::I64 => Self::I64(rows().map(i64::from).collect()),
            CellIndexType::U16 => Self::U16(rows().map(|i| i as u16).collect()),
        })
    }

    fn write(&self, dataset: &mut DatasetBuilder, storage: Storage) {
        match self {
            Self::I32(v) => store(
                dataset,
                v,
                make_i32_type(),
                &[3, v.len() as u64 / 3],
                storage,
            ),
            Self::U32(v) => store(
                dataset,
                v,
                make_u32_type(),
                &[3, v.len() as u64 / 3],
                storage,
            ),
            Self::I64(v) => store(
                dataset,
                v,
                make_i64_type(),
                &[3, v.len() as u64 / 3],
                storage,
            ),
            Self::U16(v) => store(
                dataset,
                v,
                make_u16_type(),
                &[3, v.len() as u64 / 3],
                storage,
            ),
        }
    }
}

/// Chunk dimensions of about [`CHUNK_BYTES`], whole rows at a time.
fn chunk_dims(shape: &[u64], element_size: u64) -> Vec<u64> {
    let row_elements: u64 = shape.iter().skip(1).product::<u64>().max(1);
    let rows = (CHUNK_BYTES / (element_size * row_elements)).clamp(1, shape[0].max(1));
    std::iter::once(rows)
        .chain(shape.iter().skip(1).copied())
        .collect()
}

/// Stages `data` with `shape` under the requested storage. An empty dataset is written
/// contiguous with its datatype alone (HDF5 has nothing to chunk).
fn store<T: H5Element>(
    dataset: &mut DatasetBuilder,
    data: &[T],
    datatype: Datatype,
    shape: &[u64],
    storage: Storage,
) {
    if data.is_empty() {
        dataset.with_dtype(datatype).with_shape(shape);
        return;
    }
    dataset.with_data(data).with_shape(shape);
    apply_storage(dataset, shape, std::mem::size_of::<T>() as u64, storage);
}

fn apply_storage(dataset: &mut DatasetBuilder, shape: &[u64], element_size: u64, storage: Storage) {
    if let Storage::Deflate { level } = storage
        && !shape.is_empty()
    {
        dataset
            .with_chunks(&chunk_dims(shape, element_size))
            .with_deflate(u32::from(level));
    }
}

/// One statismo model group (`shape` or `expression`).
fn block_group(
    mut group: GroupBuilder,
    block: &PcaBlock,
    points: &[f32],
    cells: &CellData,
    options: &SaveOptions,
) -> Result<FinishedGroup> {
    let n_coords = block.n_coords() as u64;
    let n_components = block.n_components();

    let mut model = group.create_group("model");
    store(
        model.create_dataset("mean"),
        block.mean(),
        make_f32_type(),
        &[n_coords],
        options.storage,
    );
    let basis = model.create_dataset("pcaBasis");
    if n_components == 0 {
        basis.with_dtype(make_f32_type()).with_shape(&[n_coords, 0]);
    } else {
        let shape = [n_coords, n_components as u64];
        basis
            .with_raw_data(
                make_f32_type(),
                row_major_basis(block, options.version),
                n_coords * n_components as u64,
            )
            .with_shape(&shape);
        apply_storage(basis, &shape, 4, options.storage);
    }
    // Statismo stores variances in single precision.
    let variance: Vec<f32> = block.variance().iter().map(|&v| v as f32).collect();
    store(
        model.create_dataset("pcaVariance"),
        &variance,
        make_f32_type(),
        &[n_components as u64],
        Storage::Contiguous,
    );
    let noise_shape: &[u64] = match options.noise_shape {
        NoiseVarianceShape::OneElement => &[1],
        NoiseVarianceShape::Scalar => &[],
    };
    model
        .create_dataset("noiseVariance")
        .with_f32_data(&[block.noise_variance() as f32])
        .with_shape(noise_shape);
    group.add_group(model.finish());

    let mut representer = group.create_group("representer");
    representer.set_attr("datasetType", AttrValue::AsciiString("POLYGON_MESH".into()));
    representer.set_attr(
        "name",
        AttrValue::AsciiString("radar-face::morphable".into()),
    );
    store(
        representer.create_dataset("points"),
        points,
        make_f32_type(),
        &[3, points.len() as u64 / 3],
        options.storage,
    );
    cells.write(representer.create_dataset("cells"), options.storage);
    group.add_group(representer.finish());

    let version = version_group(group.create_group("version"), options.version);
    group.add_group(version);
    Ok(group.finish())
}

/// `version/{majorVersion, minorVersion}`, scalar i32 as statismo writes them.
fn version_group(mut group: GroupBuilder, version: FormatVersion) -> FinishedGroup {
    group
        .create_dataset("majorVersion")
        .with_i32_data(&[version.major()])
        .with_shape(&[]);
    group
        .create_dataset("minorVersion")
        .with_i32_data(&[version.minor()])
        .with_shape(&[]);
    group.finish()
}

/// The scalismo catalog: which groups hold the model and its blocks.
fn catalog_group(
    mut catalog: GroupBuilder,
    prefix: &str,
    with_expression: bool,
) -> Result<FinishedGroup> {
    let root = format!("/{prefix}");
    let block = |name: &str| {
        if prefix.is_empty() {
            format!("/{name}")
        } else {
            format!("/{prefix}/{name}")
        }
    };
    let mut entries = vec![
        ("MorphableModel", root, "CUSTOM_MODEL"),
        ("MorphableModel.shape", block("shape"), "POLYGON_MESH_MODEL"),
    ];
    if with_expression {
        entries.push((
            "MorphableModel.expression",
            block("expression"),
            "CUSTOM_MODEL",
        ));
    }
    for (name, path, kind) in entries {
        let mut entry = catalog.create_group(name);
        for (dataset, value) in [("modelPath", path.as_str()), ("modelType", kind)] {
            entry
                .create_dataset(dataset)
                .with_ascii_strings(&[value])
                .map_err(|e| writer_error(Path::new(CATALOG), e.into()))?
                .with_shape(&[]);
        }
        catalog.add_group(entry.finish());
    }
    Ok(catalog.finish())
}

/// The block's basis as statismo stores it: (3N, K) row-major little-endian f32, either the
/// scaled columns (0.8) or the columns divided by √λ (0.9; a zero-variance column stays
/// zero). Row tiles are transposed in parallel.
fn row_major_basis(block: &PcaBlock, version: FormatVersion) -> Vec<u8> {
    let rows = block.n_coords();
    let cols = block.n_components();
    let scale: Vec<f64> = block
        .variance()
        .iter()
        .map(|&v| {
            if !version.basis_is_unscaled() {
                1.0
            } else if v > 0.0 {
                1.0 / v.sqrt()
            } else {
                0.0
            }
        })
        .collect();
    let columns: Vec<&[f32]> = (0..cols).map(|k| block.component(k)).collect();
    let row_bytes = 4 * cols;
    let mut bytes = vec![0u8; rows * row_bytes];
    bytes
        .par_chunks_mut(TILE_ROWS * row_bytes)
        .enumerate()
        .for_each(|(tile, out)| {
            let r0 = tile * TILE_ROWS;
            for (c, (column, &s)) in columns.iter().zip(&scale).enumerate() {
                for (row, &value) in out.chunks_exact_mut(row_bytes).zip(&column[r0..]) {
                    let v = (f64::from(value) * s) as f32;
                    row[4 * c..4 * c + 4].copy_from_slice(&v.to_le_bytes());
                }
            }
        });
    bytes
}
