//! Tests: the statismo / BFM 2019 reader and writer.
//!
//! Files are written two ways: through `statismo::save` (round trips) and directly through
//! hdf5-pure's writer (`RawFile`), so the reader is also tested against files this crate did
//! not produce, including deliberately broken ones.

use std::path::{Path, PathBuf};

use crate::core::{Sheet, sheet_model};
use hdf5_pure::{AttrValue, DatasetBuilder, FileBuilder, GroupBuilder};
use morphable::statismo::{
    self, CellIndexType, FormatVersion, LoadOptions, NoiseVarianceShape, SaveOptions, Storage,
};
use morphable::{MorphableError, MorphableModel, PcaBlock, PcaModel};

// ---- helpers ---------------------------------------------------------------------------------

/// A fresh temporary directory (the `tempfile` crate's, removed on drop).
pub(crate) struct TempDir(tempfile::TempDir);

impl TempDir {
    pub(crate) fn new() -> Self {
        Self(tempfile::tempdir().expect("create temp dir"))
    }
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// A random model on a `side × side` grid: a gently curved sheet, Gaussian basis columns,
/// decreasing variances, a non-zero expression mean and shape noise.
pub(crate) fn grid_model(side: usize, n_shape: usize, n_expression: usize, seed: u64) -> PcaModel {
    let sheet = Sheet {
        pitch: 8.0,
        height: 60.0,
        variance: 9.0,
        shape_noise: 0.25,
        name: "grid",
    };
    sheet_model(&sheet, side, n_shape, n_expression, seed)
}

/// Coefficient vectors spanning zero, the unit vectors' neighbourhood and 3σ.
fn probe_coefficients(n_shape: usize, n_expression: usize) -> Vec<(Vec<f64>, Vec<f64>)> {
    let ramp = |n: usize, s: f64| (0..n).map(|i| s * (1.0 - 0.4 * i as f64)).collect();
    vec![
        (vec![], vec![]),
        (ramp(n_shape, 1.0), vec![]),
        (vec![], ramp(n_expression, -1.5)),
        (ramp(n_shape, -3.0), ramp(n_expression, 3.0)),
    ]
}

/// Both models produce the same faces to f32 precision, and agree on everything else.
fn assert_same_model(a: &PcaModel, b: &PcaModel) {
    assert_eq!(a.n_vertices(), b.n_vertices());
    assert_eq!(a.n_shape(), b.n_shape());
    assert_eq!(a.n_expression(), b.n_expression());
    assert_eq!(a.triangles(), b.triangles());
    for (x, y) in [(a.shape(), b.shape()), (a.expression(), b.expression())] {
        for (u, v) in x.variance().iter().zip(y.variance()) {
            assert!((u - v).abs() <= 1e-6 * u.abs(), "variance {u} vs {v}");
        }
        let (u, v) = (x.noise_variance(), y.noise_variance());
        assert!((u - v).abs() <= 1e-6 * u.abs(), "noise variance {u} vs {v}");
    }
    for (alpha, gamma) in probe_coefficients(a.n_shape(), a.n_expression()) {
        let fa = a.instance_flat(&alpha, &gamma).expect("instance");
        let fb = b.instance_flat(&alpha, &gamma).expect("instance");
        let scale = fa.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in fa.iter().zip(&fb).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * scale,
                "coordinate {i}: {x} vs {y} for α = {alpha:?}, γ = {gamma:?}"
            );
        }
    }
}

// ---- files written directly with hdf5-pure ---------------------------------------------------

/// Values of a hand-written dataset.
#[derive(Debug, Clone)]
enum Values {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U8(Vec<u8>),
}

#[derive(Debug, Clone)]
struct RawDataset {
    values: Values,
    shape: Vec<u64>,
    /// Chunk shape; chunked datasets are deflated.
    chunks: Option<Vec<u64>>,
}

impl RawDataset {
    fn new(values: Values, shape: &[u64]) -> Self {
        Self {
            values,
            shape: shape.to_vec(),
            chunks: None,
        }
    }
    fn f32(values: Vec<f32>, shape: &[u64]) -> Self {
        Self::new(Values::F32(values), shape)
    }
    fn stage(&self, dataset: &mut DatasetBuilder) {
        match &self.values {
            Values::F32(v) => dataset.with_f32_data(v),
            Values::F64(v) => dataset.with_f64_data(v),
            Values::I32(v) => dataset.with_i32_data(v),
            Values::I64(v) => dataset.with_i64_data(v),
            Values::U16(v) => dataset.with_u16_data(v),
            Values::U32(v) => dataset.with_u32_data(v),
            Values::U8(v) => dataset.with_u8_data(v),
        };
        dataset.with_shape(&self.shape);
        if let Some(chunks) = &self.chunks {
            dataset.with_chunks(chunks).with_deflate(4);
        }
    }
}

/// One hand-written statismo block; `None` leaves the dataset out.
#[derive(Debug, Clone)]
struct RawBlock {
    mean: Option<RawDataset>,
    basis: Option<RawDataset>,
    variance: Option<RawDataset>,
    noise: Option<RawDataset>,
    points: Option<RawDataset>,
    cells: Option<RawDataset>,
}

/// Where and how the hand-written file states its version.
#[derive(Debug, Clone, PartialEq)]
enum VersionForm {
    /// No version anywhere.
    Absent,
    /// statismo: `version/{majorVersion, minorVersion}` in each block and at the model root.
    Datasets(i32, i32),
    /// Only at the model root.
    RootDatasets(i32, i32),
    /// A string attribute `version` on the model root.
    AttrText(&'static str),
    /// Integer attributes `majorVersion` / `minorVersion` on the model root.
    AttrPair(i64, i64),
}

#[derive(Debug, Clone)]
pub(crate) struct RawFile {
    shape: RawBlock,
    expression: Option<RawBlock>,
    version: VersionForm,
    /// Groups the model lives under.
    prefix: Vec<&'static str>,
    /// Adds a `/color` group of junk that the reader must ignore.
    color: bool,
}

/// Tetrahedron, mm. Vertex 0 at the origin, vertex k on axis k − 1 at 10 mm.
const TETRA_MEAN: [f32; 12] = [0., 0., 0., 10., 0., 0., 0., 10., 0., 0., 0., 10.];
/// Triangles, one per row (T × 3).
const TETRA_CELLS: [i32; 12] = [0, 1, 2, 0, 1, 3, 0, 2, 3, 1, 2, 3];
/// Shape variances λ: component 0 moves vertex 0 along z, component 1 vertex 1 along x.
const SHAPE_VARIANCE: [f32; 2] = [4.0, 9.0];
const EXPRESSION_MEAN: f32 = 0.1;

impl RawFile {
    /// A valid tiny model: orthonormal unit-vector bases, version 0.9, one expression
    /// component moving vertex 3 along z with λ = 1.
    pub(crate) fn valid() -> Self {
        // (12 × 2) row-major: u0 = e_2 (vertex 0, z), u1 = e_3 (vertex 1, x).
        let mut basis = vec![0.0f32; 24];
        basis[2 * 2] = 1.0;
        basis[3 * 2 + 1] = 1.0;
        let points: Vec<f32> = (0..3)
            .flat_map(|c| TETRA_MEAN.iter().skip(c).step_by(3).map(|v| v + 1000.0))
            .collect();
        let cells = RawDataset::new(Values::I32(transpose_cells(&TETRA_CELLS)), &[3, 4]);
        let shape = RawBlock {
            mean: Some(RawDataset::f32(TETRA_MEAN.to_vec(), &[12])),
            basis: Some(RawDataset::f32(basis, &[12, 2])),
            variance: Some(RawDataset::f32(SHAPE_VARIANCE.to_vec(), &[2])),
            noise: Some(RawDataset::f32(vec![0.5], &[1])),
            // Deliberately far from the mean: vertices must come from the mean.
            points: Some(RawDataset::f32(points, &[3, 4])),
            cells: Some(cells),
        };
        let mut e_basis = vec![0.0f32; 12];
        e_basis[11] = 1.0;
        let expression = RawBlock {
            mean: Some(RawDataset::f32(vec![EXPRESSION_MEAN; 12], &[12])),
            basis: Some(RawDataset::f32(e_basis, &[12, 1])),
            variance: Some(RawDataset::f32(vec![1.0], &[1])),
            noise: Some(RawDataset::new(Values::F64(vec![0.0]), &[])),
            points: None,
            cells: None,
        };
        Self {
            shape,
            expression: Some(expression),
            version: VersionForm::Datasets(0, 9),
            prefix: Vec::new(),
            color: false,
        }
    }

    pub(crate) fn bytes(&self) -> Vec<u8> {
        let mut file = FileBuilder::new();
        let mut children = vec![self.block_group(file.create_group("shape"), &self.shape)];
        if let Some(expression) = &self.expression {
            children.push(self.block_group(file.create_group("expression"), expression));
        }
        if self.color {
            let mut color = file.create_group("color");
            color
                .create_dataset("junk")
                .with_u8_data(&[1, 2, 3])
                .with_shape(&[3]);
            children.push(color.finish());
        }
        let mut root_attrs = Vec::new();
        match self.version {
            VersionForm::Datasets(a, b) | VersionForm::RootDatasets(a, b) => {
                children.push(version_group(file.create_group("version"), a, b));
            }
            VersionForm::AttrText(text) => {
                root_attrs.push(("version", AttrValue::AsciiString(text.into())));
            }
            VersionForm::AttrPair(a, b) => {
                root_attrs.push(("majorVersion", AttrValue::I64(a)));
                root_attrs.push(("minorVersion", AttrValue::I64(b)));
            }
            VersionForm::Absent => {}
        }
        if self.prefix.is_empty() {
            for (name, value) in root_attrs {
                file.set_attr(name, value);
            }
        } else {
            let mut first = true;
            for name in self.prefix.iter().rev() {
                let mut group = file.create_group(name);
                if first {
                    for (attr, value) in root_attrs.drain(..) {
                        group.set_attr(attr, value);
                    }
                    first = false;
                }
                children.into_iter().for_each(|g| group.add_group(g));
                children = vec![group.finish()];
            }
        }
        children.into_iter().for_each(|g| file.add_group(g));
        file.finish().expect("serialise a hand-written file")
    }

    fn block_group(&self, mut group: GroupBuilder, block: &RawBlock) -> hdf5_pure::FinishedGroup {
        let mut model = group.create_group("model");
        for (name, dataset) in [
            ("mean", &block.mean),
            ("pcaBasis", &block.basis),
            ("pcaVariance", &block.variance),
            ("noiseVariance", &block.noise),
        ] {
            if let Some(dataset) = dataset {
                dataset.stage(model.create_dataset(name));
            }
        }
        group.add_group(model.finish());
        let mut representer = group.create_group("representer");
        representer.set_attr("datasetType", AttrValue::AsciiString("POLYGON_MESH".into()));
        for (name, dataset) in [("points", &block.points), ("cells", &block.cells)] {
            if let Some(dataset) = dataset {
                dataset.stage(representer.create_dataset(name));
            }
        }
        group.add_group(representer.finish());
        if let VersionForm::Datasets(a, b) = self.version {
            let version = version_group(group.create_group("version"), a, b);
            group.add_group(version);
        }
        group.finish()
    }

    fn load(&self) -> morphable::Result<PcaModel> {
        statismo::from_bytes(self.bytes(), "raw.h5", &LoadOptions::default())
    }
}

fn version_group(mut group: GroupBuilder, major: i32, minor: i32) -> hdf5_pure::FinishedGroup {
    group
        .create_dataset("majorVersion")
        .with_i32_data(&[major])
        .with_shape(&[]);
    group
        .create_dataset("minorVersion")
        .with_i32_data(&[minor])
        .with_shape(&[]);
    group.finish()
}

/// Triangles (T × 3, one per row) to statismo's (3 × T).
fn transpose_cells(triangles: &[i32]) -> Vec<i32> {
    let t = triangles.len() / 3;
    (0..3)
        .flat_map(|c| (0..t).map(move |i| triangles[3 * i + c]))
        .collect()
}

fn coordinate(model: &PcaModel, alpha: &[f64], gamma: &[f64], vertex: usize, axis: usize) -> f64 {
    model.instance(alpha, gamma).expect("instance").vertices[vertex][axis]
}

// ---- round trips -----------------------------------------------------------------------------

#[test]
fn round_trip_through_every_option_combination() {
    let dir = TempDir::new();
    let model = grid_model(6, 5, 3, 1);
    let mut combinations = 0;
    for version in [FormatVersion::V0_8, FormatVersion::V0_9] {
        for storage in [Storage::Contiguous, Storage::Deflate { level: 6 }] {
            for cell_type in [
                CellIndexType::I32,
                CellIndexType::U32,
                CellIndexType::I64,
                CellIndexType::U16,
            ] {
                for noise_shape in [NoiseVarianceShape::OneElement, NoiseVarianceShape::Scalar] {
                    let options = SaveOptions {
                        version,
                        storage,
                        cell_type,
                        noise_shape,
                        prefix: String::new(),
                    };
                    let path = dir.path(&format!("model-{combinations}.h5"));
                    statismo::save(&model, &path, &options).expect("save");
                    let loaded = statismo::load(&path).expect("load");
                    assert_same_model(&model, &loaded);
                    assert_eq!(loaded.name(), format!("model-{combinations}"));
                    combinations += 1;
                }
            }
        }
    }
    assert_eq!(combinations, 32);
    // Atomic writes leave no temporary files behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
        .expect("list")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn save_overwrites_atomically_and_fails_cleanly() {
    let dir = TempDir::new();
    let path = dir.path("face.h5");
    statismo::save(&grid_model(4, 2, 1, 2), &path, &SaveOptions::default()).expect("save");
    let second = grid_model(5, 3, 2, 3);
    statismo::save(&second, &path, &SaveOptions::default()).expect("overwrite");
    assert_same_model(&second, &statismo::load(&path).expect("load"));

    let missing_dir = dir.path("no/such/dir/face.h5");
    let err = statismo::save(&second, &missing_dir, &SaveOptions::default()).unwrap_err();
    assert!(matches!(err, MorphableError::Io { .. }), "{err}");
    assert!(!missing_dir.exists());
}

#[test]
fn large_basis_round_trips_through_many_windows_and_truncates() {
    // 9 000 coordinates × 150 components: several parallel row windows, and with deflate
    // chunks that windows must not split.
    let model = grid_model(55, 150, 20, 4);
    for storage in [Storage::Contiguous, Storage::Deflate { level: 1 }] {
        let options = SaveOptions {
            storage,
            ..SaveOptions::default()
        };
        let bytes = statismo::to_bytes(&model, &options).expect("to_bytes");
        let full = statismo::from_bytes(bytes.clone(), "big", &LoadOptions::new()).expect("load");
        assert_same_model(&model, &full);
        let truncated = statismo::from_bytes(
            bytes,
            "big",
            &LoadOptions::new()
                .with_max_shape_components(7)
                .with_max_expression_components(0),
        )
        .expect("load truncated");
        assert_eq!((truncated.n_shape(), truncated.n_expression()), (7, 0));
        assert_same_model(&model.truncated(7, 0), &truncated);
    }
}

#[test]
fn model_without_expression_round_trips_to_an_empty_block() {
    let full = grid_model(4, 3, 0, 5);
    // Zero expression components but a non-zero expression mean: the block must be written.
    let bytes = statismo::to_bytes(&full, &SaveOptions::default()).expect("to_bytes");
    let loaded = statismo::from_bytes(bytes, "m", &LoadOptions::new()).expect("load");
    assert_same_model(&full, &loaded);

    let shape_only = PcaModel::new(
        "shape-only",
        full.shape().clone(),
        PcaBlock::empty(full.n_vertices()),
        full.triangles().to_vec(),
    )
    .expect("model");
    let bytes = statismo::to_bytes(&shape_only, &SaveOptions::default()).expect("to_bytes");
    let file = hdf5_pure::File::from_bytes(bytes.clone()).expect("parse");
    assert!(file.group("expression").is_err(), "no /expression group");
    let loaded = statismo::from_bytes(bytes, "m", &LoadOptions::new()).expect("load");
    assert_eq!(loaded.n_expression(), 0);
    assert_same_model(&shape_only, &loaded);
}

#[test]
fn written_layout_is_statismo() {
    let model = grid_model(3, 2, 1, 6);
    let bytes = statismo::to_bytes(&model, &SaveOptions::default()).expect("to_bytes");
    let file = hdf5_pure::File::from_bytes(bytes).expect("parse");
    let shape_of = |p: &str| file.dataset(p).expect(p).shape().expect("shape");
    assert_eq!(shape_of("shape/model/mean"), vec![27]);
    assert_eq!(shape_of("shape/model/pcaBasis"), vec![27, 2]);
    assert_eq!(shape_of("shape/model/pcaVariance"), vec![2]);
    assert_eq!(shape_of("shape/model/noiseVariance"), vec![1]);
    assert_eq!(shape_of("shape/representer/points"), vec![3, 9]);
    assert_eq!(shape_of("shape/representer/cells"), vec![3, 8]);
    let int = |p: &str| file.dataset(p).expect(p).read_i64().expect("read")[0];
    assert_eq!(
        (int("version/majorVersion"), int("version/minorVersion")),
        (0, 9)
    );
    // Format 0.9 stores the orthonormal direction: column k is the scaled column / √λ_k.
    let basis = file
        .dataset("shape/model/pcaBasis")
        .expect("basis")
        .read_f32()
        .expect("read");
    let sd = model.shape().variance()[1].sqrt();
    for (i, scaled) in model.shape().component(1).iter().enumerate() {
        let stored = basis[i * 2 + 1] as f64;
        assert!((stored * sd - *scaled as f64).abs() < 1e-5, "row {i}");
    }
    // Points are the mean face, coordinate-major.
    let points = file
        .dataset("shape/representer/points")
        .expect("points")
        .read_f32()
        .expect("read");
    let mean = model.mean_coords();
    assert_eq!(points[4], mean[3 * 4]);
    assert_eq!(points[9 + 4], mean[3 * 4 + 1]);
    assert_eq!(points[18 + 4], mean[3 * 4 + 2]);
    let catalog = file
        .dataset("catalog/MorphableModel.shape/modelPath")
        .expect("catalog")
        .read_string()
        .expect("read");
    assert_eq!(catalog, vec!["/shape".to_owned()]);
}

// ---- the format, checked against hand-written files ------------------------------------------

#[test]
fn version_decides_whether_the_basis_is_scaled() {
    // α = (1, −1), γ = (2). With an orthonormal basis (0.9) a coefficient moves its vertex by
    // √λ per unit; with a scaled basis (0.8, or no version) by the stored value, 1.
    let alpha = [1.0, -1.0];
    let gamma = [2.0];
    let e = f64::from(EXPRESSION_MEAN);
    let unscaled = [2.0 + e, 10.0 - 3.0 + e, 10.0 + 2.0 + e];
    let scaled = [1.0 + e, 10.0 - 1.0 + e, 10.0 + 2.0 + e];
    let cases = [
        (VersionForm::Datasets(0, 9), unscaled),
        (VersionForm::RootDatasets(0, 9), unscaled),
        (VersionForm::AttrText("0.9"), unscaled),
        (VersionForm::AttrPair(0, 9), unscaled),
        (VersionForm::Datasets(0, 8), scaled),
        (VersionForm::AttrText("0.8"), scaled),
        (VersionForm::Absent, scaled),
    ];
    for (version, expected) in cases {
        let raw = RawFile {
            version: version.clone(),
            ..RawFile::valid()
        };
        let model = raw.load().unwrap_or_else(|e| panic!("{version:?}: {e}"));
        let got = [
            coordinate(&model, &alpha, &gamma, 0, 2),
            coordinate(&model, &alpha, &gamma, 1, 0),
            coordinate(&model, &alpha, &gamma, 3, 2),
        ];
        for (g, x) in got.iter().zip(expected) {
            assert!((g - x).abs() < 1e-5, "{version:?}: {got:?} vs {expected:?}");
        }
    }
}

#[test]
fn vertices_come_from_the_mean_and_other_encodings_are_accepted() {
    let base = RawFile::valid().load().expect("load");
    // Mean plus the expression mean; the representer points (+1000 mm) are ignored.
    let mean = base.mean_mesh().expect("mean");
    for (v, p) in mean.vertices.iter().enumerate() {
        for axis in 0..3 {
            let expected = f64::from(TETRA_MEAN[3 * v + axis] + EXPRESSION_MEAN);
            assert!((p[axis] - expected).abs() < 1e-6);
        }
    }
    assert_eq!(
        base.triangles(),
        &[[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]]
    );

    // f64 datasets, chunked and deflated with chunks that split the basis by column, a
    // scalar noise variance, unsigned and 64-bit cells, a /color group and no points.
    let mut raw = RawFile::valid();
    let to_f64 = |d: &RawDataset| match &d.values {
        Values::F32(v) => RawDataset {
            values: Values::F64(v.iter().map(|&x| f64::from(x)).collect()),
            ..d.clone()
        },
        _ => d.clone(),
    };
    raw.shape.mean = raw.shape.mean.as_ref().map(to_f64);
    raw.shape.basis = raw.shape.basis.as_ref().map(|d| RawDataset {
        chunks: Some(vec![5, 1]),
        ..to_f64(d)
    });
    raw.shape.noise = Some(RawDataset::f32(vec![0.5], &[]));
    raw.shape.points = None;
    raw.color = true;
    let t = transpose_cells(&TETRA_CELLS);
    for values in [
        Values::U32(t.iter().map(|&i| i as u32).collect()),
        Values::I64(t.iter().map(|&i| i64::from(i)).collect()),
        Values::U16(t.iter().map(|&i| i as u16).collect()),
        Values::U8(t.iter().map(|&i| i as u8).collect()),
    ] {
        raw.shape.cells = Some(RawDataset {
            chunks: Some(vec![3, 2]),
            ..RawDataset::new(values, &[3, 4])
        });
        let model = raw.load().expect("load");
        assert_same_model(&base, &model);
    }
}

#[test]
fn model_under_a_catalog_prefix_is_found() {
    let model = grid_model(4, 3, 2, 7);
    let options = SaveOptions {
        prefix: "/bfm/face12/".into(),
        ..SaveOptions::default()
    };
    let bytes = statismo::to_bytes(&model, &options).expect("to_bytes");
    // Found automatically…
    let auto =
        statismo::from_bytes(bytes.clone(), "catalog.h5", &LoadOptions::new()).expect("auto");
    assert_eq!(auto.name(), "catalog.h5:/bfm/face12");
    assert_same_model(&model, &auto);
    // …or named.
    let named = statismo::from_bytes(
        bytes.clone(),
        "catalog.h5",
        &LoadOptions::new().with_prefix("bfm/face12"),
    )
    .expect("named");
    assert_same_model(&model, &named);
    let err = statismo::from_bytes(bytes, "catalog.h5", &LoadOptions::new().with_prefix("/bfm"))
        .unwrap_err();
    assert!(
        matches!(&err, MorphableError::Missing { object, .. } if object.contains("/bfm/shape/model/mean")),
        "{err}"
    );

    // Two models: automatic detection refuses to guess, a prefix picks one.
    let mut two = FileBuilder::new();
    for (name, version) in [("young", (0, 9)), ("old", (0, 8))] {
        let raw = RawFile {
            prefix: vec![name],
            version: VersionForm::Datasets(version.0, version.1),
            ..RawFile::valid()
        };
        let mut group = two.create_group(name);
        group.add_group(raw.block_group(two.create_group("shape"), &raw.shape));
        two.add_group(group.finish());
    }
    let bytes = two.finish().expect("serialise");
    let err = statismo::from_bytes(bytes.clone(), "two", &LoadOptions::new()).unwrap_err();
    assert!(matches!(err, MorphableError::Config { .. }), "{err}");
    let young = statismo::from_bytes(
        bytes.clone(),
        "two",
        &LoadOptions::new().with_prefix("young"),
    )
    .expect("young");
    let old =
        statismo::from_bytes(bytes, "two", &LoadOptions::new().with_prefix("/old/")).expect("old");
    // Same stored basis, read as U (0.9) and as U·√λ (0.8): component 0 differs by √λ₀ = 2.
    assert!((coordinate(&young, &[1.0], &[], 0, 2) - 2.0).abs() < 1e-6);
    assert!((coordinate(&old, &[1.0], &[], 0, 2) - 1.0).abs() < 1e-6);
    assert_eq!(young.n_expression(), 0);
}

// ---- every validation error is a typed error naming the dataset ------------------------------

fn expect_shape_error(raw: &RawFile, dataset: &str) {
    match raw.load() {
        Err(MorphableError::Shape { dataset: d, .. }) if d == dataset => {}
        other => panic!("expected a shape error on {dataset}, got {other:?}"),
    }
}

fn expect_value_error(raw: &RawFile, dataset: &str) {
    match raw.load() {
        Err(MorphableError::Value { dataset: d, .. }) if d == dataset => {}
        other => panic!("expected a value error on {dataset}, got {other:?}"),
    }
}

fn expect_missing(raw: &RawFile, object: &str) {
    match raw.load() {
        Err(MorphableError::Missing { object: o, .. }) if o.contains(object) => {}
        other => panic!("expected {object} to be missing, got {other:?}"),
    }
}

#[test]
fn missing_objects_are_named() {
    let mut raw = RawFile::valid();
    raw.shape.variance = None;
    expect_missing(&raw, "/shape/model/pcaVariance");

    let mut raw = RawFile::valid();
    raw.shape.cells = None;
    expect_missing(&raw, "/shape/representer/cells");

    let mut raw = RawFile::valid();
    raw.expression.as_mut().expect("expression").noise = None;
    expect_missing(&raw, "/expression/model/noiseVariance");

    // No model at all.
    let mut file = FileBuilder::new();
    file.create_dataset("unrelated").with_f32_data(&[1.0]);
    let err =
        statismo::from_bytes(file.finish().expect("bytes"), "x", &LoadOptions::new()).unwrap_err();
    assert!(matches!(err, MorphableError::Missing { .. }), "{err}");
}

#[test]
fn wrong_shapes_are_shape_errors() {
    let mut raw = RawFile::valid();
    raw.shape.mean = Some(RawDataset::f32(vec![0.0; 11], &[11]));
    expect_shape_error(&raw, "/shape/model/mean");

    let mut raw = RawFile::valid();
    raw.shape.basis = Some(RawDataset::f32(vec![0.0; 22], &[11, 2]));
    expect_shape_error(&raw, "/shape/model/pcaBasis");

    let mut raw = RawFile::valid();
    raw.shape.basis = Some(RawDataset::f32(vec![0.0; 24], &[24]));
    expect_shape_error(&raw, "/shape/model/pcaBasis");

    let mut raw = RawFile::valid();
    raw.shape.variance = Some(RawDataset::f32(vec![1.0; 3], &[3]));
    expect_shape_error(&raw, "/shape/model/pcaVariance");

    let mut raw = RawFile::valid();
    raw.shape.noise = Some(RawDataset::f32(vec![0.5, 0.5], &[2]));
    expect_shape_error(&raw, "/shape/model/noiseVariance");

    // Cells stored triangle-major (T × 3) instead of statismo's (3 × T).
    let mut raw = RawFile::valid();
    raw.shape.cells = Some(RawDataset::new(Values::I32(TETRA_CELLS.to_vec()), &[4, 3]));
    expect_shape_error(&raw, "/shape/representer/cells");
}

#[test]
fn bad_values_are_value_errors() {
    let mut raw = RawFile::valid();
    let mut mean = TETRA_MEAN.to_vec();
    mean[4] = f32::NAN;
    raw.shape.mean = Some(RawDataset::f32(mean, &[12]));
    expect_value_error(&raw, "/shape/model/mean");

    let mut raw = RawFile::valid();
    let mut basis = vec![0.0f32; 24];
    basis[17] = f32::INFINITY;
    raw.shape.basis = Some(RawDataset::f32(basis, &[12, 2]));
    expect_value_error(&raw, "/shape/model/pcaBasis");

    let mut raw = RawFile::valid();
    raw.shape.variance = Some(RawDataset::f32(vec![4.0, -1.0], &[2]));
    expect_value_error(&raw, "/shape/model/pcaVariance");

    let mut raw = RawFile::valid();
    raw.shape.noise = Some(RawDataset::f32(vec![-0.5], &[1]));
    expect_value_error(&raw, "/shape/model/noiseVariance");

    let mut raw = RawFile::valid();
    let mut cells = transpose_cells(&TETRA_CELLS);
    cells[5] = 4;
    raw.shape.cells = Some(RawDataset::new(Values::I32(cells), &[3, 4]));
    expect_value_error(&raw, "/shape/representer/cells");

    let mut raw = RawFile::valid();
    let mut cells = transpose_cells(&TETRA_CELLS);
    cells[0] = -1;
    raw.shape.cells = Some(RawDataset::new(Values::I32(cells), &[3, 4]));
    expect_value_error(&raw, "/shape/representer/cells");

    // Wrong element types: integer coordinates, floating-point indices.
    let mut raw = RawFile::valid();
    raw.shape.mean = Some(RawDataset::new(Values::I32(vec![0; 12]), &[12]));
    expect_value_error(&raw, "/shape/model/mean");

    let mut raw = RawFile::valid();
    raw.shape.cells = Some(RawDataset::f32(vec![0.0; 12], &[3, 4]));
    expect_value_error(&raw, "/shape/representer/cells");

    // A version this reader does not know.
    let raw = RawFile {
        version: VersionForm::Datasets(1, 0),
        ..RawFile::valid()
    };
    assert!(matches!(raw.load(), Err(MorphableError::Value { .. })));
}

#[test]
fn shape_and_expression_must_agree_on_vertices() {
    let mut raw = RawFile::valid();
    let expression = raw.expression.as_mut().expect("expression");
    expression.mean = Some(RawDataset::f32(vec![0.0; 9], &[9]));
    expression.basis = Some(RawDataset::f32(vec![0.0; 9], &[9, 1]));
    let err = raw.load().unwrap_err();
    assert!(matches!(err, MorphableError::Inconsistent(_)), "{err}");
}

#[test]
fn unreadable_and_non_hdf5_files() {
    let dir = TempDir::new();
    let err = statismo::load(&dir.path("absent.h5")).unwrap_err();
    assert!(matches!(err, MorphableError::Io { .. }), "{err}");
    let err = statismo::load(dir.0.path()).unwrap_err();
    assert!(matches!(err, MorphableError::Io { .. }), "{err}");

    let text = dir.path("text.h5");
    std::fs::write(&text, "solid face\nendsolid face\n").expect("write");
    let err = statismo::load(&text).unwrap_err();
    assert!(matches!(err, MorphableError::NotHdf5 { .. }), "{err}");

    let empty = dir.path("empty.h5");
    std::fs::write(&empty, b"").expect("write");
    assert!(matches!(
        statismo::load(&empty),
        Err(MorphableError::NotHdf5 { .. })
    ));

    let bytes = RawFile::valid().bytes();
    let cut_file = dir.path("cut.h5");
    std::fs::write(&cut_file, &bytes[..bytes.len() / 2]).expect("write");
    let err = statismo::load(&cut_file).unwrap_err();
    assert!(matches!(err, MorphableError::NotHdf5 { .. }), "{err}");
    for cut in [8, 64, bytes.len() / 2] {
        let err =
            statismo::from_bytes(bytes[..cut].to_vec(), "cut", &LoadOptions::new()).unwrap_err();
        assert!(
            matches!(err, MorphableError::NotHdf5 { .. }),
            "cut at {cut}: {err}"
        );
    }
}

/// Replaces every 8-byte little-endian occurrence of `from` by `to`; returns how many.
fn patch_u64(bytes: &mut [u8], from: u64, to: u64) -> usize {
    let (needle, replacement) = (from.to_le_bytes(), to.to_le_bytes());
    let mut patched = 0;
    for i in 0..bytes.len().saturating_sub(8) {
        if bytes[i..i + 8] == needle {
            bytes[i..i + 8].copy_from_slice(&replacement);
            patched += 1;
        }
    }
    patched
}

#[test]
fn giant_declared_sizes_are_refused() {
    // A model whose 3N has a distinctive 8-byte encoding; patching it makes the dataspaces of
    // the mean and the basis claim 2⁴⁰ rows. This writer's object headers are checksummed, so
    // here the parser itself refuses the edit; the real model below has no checksums and
    // reaches the reader's own size check.
    let n_vertices = 4951; // 3N = 14853 = 0x3A05
    let mean: Vec<f32> = (0..3 * n_vertices).map(|i| (i % 97) as f32).collect();
    let block = PcaBlock::new(mean, vec![0.5; 3 * n_vertices], vec![1.0], 0.0).expect("block");
    let model =
        PcaModel::new("m", block, PcaBlock::empty(n_vertices), vec![[0, 1, 2]]).expect("model");
    let mut bytes = statismo::to_bytes(&model, &SaveOptions::default()).expect("bytes");
    assert!(
        patch_u64(&mut bytes, 14_853, 1 << 40) >= 2,
        "mean and basis dataspaces"
    );
    let err = statismo::from_bytes(bytes, "giant", &LoadOptions::new()).unwrap_err();
    assert!(
        matches!(
            err,
            MorphableError::NotHdf5 { .. } | MorphableError::Value { .. }
        ),
        "{err}"
    );
}

#[test]
fn giant_declared_sizes_in_the_real_model_are_refused_before_allocation() {
    let Some(original) = real_model_bytes() else {
        return;
    };
    // 3N = 20 118 for the ICT model; its version-1 headers carry no checksum, so the patched
    // dataspaces (3 · 2⁴⁰ coordinates, 12 TiB for the mean alone) reach the declared-size
    // check.
    let mut bytes = original.to_vec();
    assert!(patch_u64(&mut bytes, 20_118, 3 << 40) >= 2);
    match statismo::from_bytes(bytes, "giant", &LoadOptions::new()) {
        Err(MorphableError::Value {
            dataset, reason, ..
        }) => {
            assert_eq!(dataset, "/shape/model/mean");
            assert!(reason.contains("can hold"), "{reason}");
        }
        other => panic!("expected the size check to refuse, got {other:?}"),
    }
}

#[test]
fn options_are_validated() {
    let model = grid_model(3, 1, 0, 8);
    for prefix in ["a//b", "a/../b", "./a"] {
        let err =
            statismo::from_bytes(vec![], "x", &LoadOptions::new().with_prefix(prefix)).unwrap_err();
        assert!(
            matches!(err, MorphableError::Config { .. }),
            "{prefix}: {err}"
        );
        let options = SaveOptions {
            prefix: prefix.into(),
            ..SaveOptions::default()
        };
        assert!(matches!(
            options.validate(),
            Err(MorphableError::Config { .. })
        ));
    }
    let deflate_10 = SaveOptions {
        storage: Storage::Deflate { level: 10 },
        ..SaveOptions::default()
    };
    assert!(matches!(
        statismo::to_bytes(&model, &deflate_10),
        Err(MorphableError::Config { .. })
    ));
    let in_catalog = SaveOptions {
        prefix: "/catalog/x".into(),
        ..SaveOptions::default()
    };
    assert!(matches!(
        statismo::to_bytes(&model, &in_catalog),
        Err(MorphableError::Config { .. })
    ));
    // u16 indices cannot address 65 537 vertices.
    let n = 65_537;
    let big = PcaModel::new(
        "big",
        PcaBlock::new(vec![0.0; 3 * n], vec![], vec![], 0.0).expect("block"),
        PcaBlock::empty(n),
        vec![[0, 1, (n - 1) as u32]],
    )
    .expect("model");
    let u16_cells = SaveOptions {
        cell_type: CellIndexType::U16,
        ..SaveOptions::default()
    };
    assert!(matches!(
        statismo::to_bytes(&big, &u16_cells),
        Err(MorphableError::Config { .. })
    ));
    assert_eq!(
        LoadOptions::new()
            .with_prefix("/")
            .validate()
            .expect("root"),
        Some(String::new())
    );
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<LoadOptions>();
    check::<SaveOptions>();
    check::<FormatVersion>();
    check::<Storage>();
    check::<CellIndexType>();
    check::<NoiseVarianceShape>();
}

// ---- the real model ------------------------------------------------------------------------------

/// The real face model (ICT-FaceKit Light, statismo layout), in the project's shared folder
/// beside the checkout: `../shared/models/` from the workspace root. It is never committed.
fn ict_model_path() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/models/ict-face-narrow.h5");
    if path.is_file() {
        return Some(path);
    }
    // CI always has the shared folder: there a missing model is a failure, never a skip.
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is absent: CI must run with the project's shared folder beside the checkout",
        path.display()
    );
    println!(
        "note: {} is absent; skipping the real-model test",
        path.display()
    );
    None
}

#[test]
fn real_ict_face_model_loads_as_a_face() {
    let Some(path) = ict_model_path() else {
        return;
    };
    let model = statismo::load(&path).expect("load the ICT model");
    assert_eq!(model.n_vertices(), 6706);
    assert_eq!(model.triangles().len(), 13_120);
    assert_eq!(model.n_shape(), 100);
    assert_eq!(model.n_expression(), 45);

    // Millimetres: a face is tens to a couple of hundred millimetres across on every axis.
    let mean = model.mean_mesh().expect("mean");
    for axis in 0..3 {
        let (lo, hi) = mean
            .vertices
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                (lo.min(p[axis]), hi.max(p[axis]))
            });
        let extent = hi - lo;
        assert!(
            (20.0..=300.0).contains(&extent),
            "axis {axis} extent {extent} mm"
        );
    }

    // One standard deviation of the first shape component moves a vertex by a few mm RMS.
    let first = model.shape().component(0);
    let rms = (first.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>()
        / model.n_vertices() as f64)
        .sqrt();
    assert!((0.5..=20.0).contains(&rms), "RMS displacement {rms} mm");

    // Independent reading of the file: format 0.9, so the loaded column is √λ₀ · u₀.
    let file = hdf5_pure::File::open(&path).expect("open");
    let stored = file
        .dataset("shape/model/pcaBasis")
        .expect("basis")
        .read_f32()
        .expect("read");
    let lambda0 = file
        .dataset("shape/model/pcaVariance")
        .expect("var")
        .read_f64()
        .expect("read")[0];
    for (i, &loaded) in first.iter().enumerate().step_by(97) {
        let expected = f64::from(stored[i * 100]) * lambda0.sqrt();
        assert!(
            (f64::from(loaded) - expected).abs() <= 1e-4 * (1.0 + expected.abs()),
            "row {i}"
        );
    }

    // instance(α, γ) is affine: x(a + b) − x(0) = (x(a) − x(0)) + (x(b) − x(0)).
    let a: Vec<f64> = (0..100)
        .map(|i| ((i * 37 % 11) as f64 - 5.0) / 5.0)
        .collect();
    let b: Vec<f64> = (0..100)
        .map(|i| ((i * 13 % 7) as f64 - 3.0) / 3.0)
        .collect();
    let g: Vec<f64> = (0..45).map(|i| ((i * 5 % 9) as f64 - 4.0) / 4.0).collect();
    let x0 = model.instance_flat(&[], &[]).expect("mean");
    let xa = model.instance_flat(&a, &g).expect("a");
    let xb = model.instance_flat(&b, &[]).expect("b");
    let ab: Vec<f64> = a.iter().zip(&b).map(|(p, q)| p + q).collect();
    let xab = model.instance_flat(&ab, &g).expect("a + b");
    for i in 0..x0.len() {
        let lhs = f64::from(xab[i] - x0[i]);
        let rhs = f64::from(xa[i] - x0[i]) + f64::from(xb[i] - x0[i]);
        assert!((lhs - rhs).abs() < 1e-2, "coordinate {i}: {lhs} vs {rhs}");
    }

    // Truncated loading keeps the leading components exactly.
    let small = statismo::load_with(
        &path,
        &LoadOptions::new()
            .with_max_shape_components(10)
            .with_max_expression_components(5),
    )
    .expect("truncated load");
    assert_eq!((small.n_shape(), small.n_expression()), (10, 5));
    assert_eq!(small.shape().component(9), model.shape().component(9));
    assert_eq!(
        small.expression().component(4),
        model.expression().component(4)
    );
}

/// The real model's bytes, read once.
pub(crate) fn real_model_bytes() -> Option<&'static [u8]> {
    static BYTES: std::sync::OnceLock<Option<Vec<u8>>> = std::sync::OnceLock::new();
    BYTES
        .get_or_init(|| ict_model_path().and_then(|p| std::fs::read(p).ok()))
        .as_deref()
}
