//! Tests: dataset storage, resume, shards, corrupt input, and batches — on synthetic arrays,
//! independent of the simulator.

use std::path::Path;

use abs_fit::ParamLayout;
use abs_fit::dataset::{
    BatchConfig, Dataset, DatasetWriter, ImageInfo, InputKind, Manifest, ModelIdentity,
    RangePolicy, SampleArrays, merge_shards, shard_range,
};
use ndarray::{Array2, Array3};

/// A fresh temporary directory for one test (the `tempfile` crate's, removed on drop). It
/// dereferences to its path.
pub struct TempDir(tempfile::TempDir);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

/// A fresh temporary directory whose name starts with `name`.
pub fn temp_dir(name: &str) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("abs-fit-{name}-"))
        .tempdir()
        .expect("a temporary directory");
    TempDir(dir)
}

const H: usize = 4;
const W: usize = 5;

pub fn manifest(n: usize, range: (usize, usize), seed: u64) -> Manifest {
    let layout = ParamLayout::default();
    Manifest {
        format_version: abs_fit::dataset::FORMAT_VERSION,
        settings: serde_json::json!({ "test": true }),
        model: ModelIdentity {
            name: "test".into(),
            n_vertices: 3,
            n_triangles: 1,
            n_shape: 10,
            n_expression: 7,
            fingerprint: "0".into(),
        },
        seed,
        n_samples: n,
        range,
        n_train: n * 85 / 100,
        layout,
        param_names: layout.names(),
        image: ImageInfo {
            height: H,
            width: W,
            z_near_m: 0.2,
            z_far_m: 0.36,
        },
    }
}

/// Sample i's arrays, a pure function of i (as generation is).
pub fn sample_arrays(range: std::ops::Range<usize>) -> SampleArrays {
    let n = range.len();
    let p = ParamLayout::default().len();
    let start = range.start;
    SampleArrays {
        params: Array2::from_shape_fn((n, p), |(i, j)| ((start + i) * 100 + j) as f32 * 1e-5),
        level_db: Array3::from_shape_fn((n, H, W), |(i, r, c)| {
            -((((start + i) + r * W + c) % 40) as f32)
        }),
        depth_m: Array3::from_shape_fn((n, H, W), |(i, r, c)| {
            0.2 + 0.001 * ((start + i + r + c) % 100) as f32
        }),
    }
}

pub fn generate(
    dir: &Path,
    m: Manifest,
    chunk: usize,
    stop_after: Option<usize>,
) -> Option<Dataset> {
    let writer = DatasetWriter::open(dir, m, chunk).unwrap();
    for (k, c) in writer.pending_chunks().into_iter().enumerate() {
        if stop_after == Some(k) {
            return None; // "interrupted"
        }
        writer.write_chunk(&c, &sample_arrays(c.clone())).unwrap();
    }
    Some(writer.finish().unwrap())
}

pub fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn resume_after_interruption_gives_the_same_files() {
    let once = temp_dir("once");
    generate(&once, manifest(23, (0, 23), 1), 4, None).unwrap();
    let resumed = temp_dir("resumed");
    assert!(generate(&resumed, manifest(23, (0, 23), 1), 4, Some(3)).is_none());
    let writer = DatasetWriter::open(&resumed, manifest(23, (0, 23), 1), 4).unwrap();
    assert_eq!(
        writer.pending_chunks().len(),
        6 - 3,
        "finished chunks are kept"
    );
    drop(writer); // one writer per directory at a time
    generate(&resumed, manifest(23, (0, 23), 1), 4, None).unwrap();
    assert_eq!(files(&once), files(&resumed));
    assert!(!resumed.join("chunks").exists());
    // numpy's layout: (N, P) parameters.
    let ds = Dataset::open(&once).unwrap();
    assert_eq!(ds.arrays().params.dim(), (23, ParamLayout::default().len()));
}

#[test]
fn merged_shards_equal_one_run() {
    let n = 17;
    let whole = temp_dir("whole");
    generate(&whole, manifest(n, (0, n), 2), 3, None).unwrap();
    let (mut shards, mut dirs) = (Vec::new(), Vec::new());
    for i in 0..3 {
        let range = shard_range(n, i, 3).unwrap();
        let dir = temp_dir(&format!("shard{i}"));
        generate(&dir, manifest(n, range, 2), 3, None).unwrap();
        shards.push(dir.to_path_buf());
        dirs.push(dir);
    }
    shards.reverse(); // order of the arguments does not matter
    let merged = temp_dir("merged");
    merge_shards(&shards, &merged).unwrap();
    assert_eq!(files(&whole), files(&merged));
    // Missing a shard is an error that names the gap.
    let err = merge_shards(&shards[..2], &temp_dir("partial")).unwrap_err();
    assert!(err.to_string().contains("gap"), "{err}");
    // A shard of another dataset is refused.
    let other = temp_dir("other-seed");
    generate(
        &other,
        manifest(n, shard_range(n, 0, 3).unwrap(), 99),
        3,
        None,
    )
    .unwrap();
    let mixed = vec![shards[0].clone(), shards[1].clone(), other.to_path_buf()];
    let err = merge_shards(&mixed, &temp_dir("mixed")).unwrap_err();
    assert!(
        err.to_string().contains("seed 2 vs 99") || err.to_string().contains("seed 99 vs 2"),
        "{err}"
    );
}

#[test]
fn shard_ranges_tile_the_dataset() {
    for n in [1, 7, 100] {
        for count in (1..6).filter(|&c| c <= n) {
            let mut next = 0;
            for i in 0..count {
                let (a, b) = shard_range(n, i, count).unwrap();
                assert_eq!(a, next);
                assert!(b - a <= n / count + 1);
                next = b;
            }
            assert_eq!(next, n);
        }
    }
    // More shards than samples would leave some empty: refused.
    assert!(shard_range(1, 1, 3).is_err());
    assert!(shard_range(0, 0, 1).is_err());
    assert!(shard_range(10, 3, 3).is_err());
    assert!(shard_range(10, 0, 0).is_err());
}

#[test]
fn another_configs_directory_is_refused() {
    let dir = temp_dir("mismatch");
    generate(&dir, manifest(8, (0, 8), 1), 4, None).unwrap();
    let err = DatasetWriter::open(&dir, manifest(8, (0, 8), 2), 4).unwrap_err();
    assert!(err.to_string().contains("different dataset"), "{err}");
    let mut other = manifest(8, (0, 8), 1);
    other.settings = serde_json::json!({ "test": false });
    let err = DatasetWriter::open(&dir, other, 4).unwrap_err();
    assert!(err.to_string().contains("settings"), "{err}");
}

#[test]
fn corrupt_files_are_clear_errors() {
    let dir = temp_dir("corrupt");
    generate(&dir, manifest(8, (0, 8), 1), 4, None).unwrap();
    // A truncated array.
    let params = dir.join("params.npy");
    let bytes = std::fs::read(&params).unwrap();
    std::fs::write(&params, &bytes[..bytes.len() - 7]).unwrap();
    let err = Dataset::open(&dir).unwrap_err().to_string();
    assert!(err.contains("params.npy"), "{err}");
    // An array of the wrong shape.
    radar_sim::npy::write_npy(&params, &Array2::<f32>::zeros((8, 3))).unwrap();
    let err = Dataset::open(&dir).unwrap_err().to_string();
    let expected = format!(
        "params.npy has shape (8, 3, 1), expected (8, {}, 1)",
        ParamLayout::default().len()
    );
    assert!(err.contains(&expected), "{err}");
    // A non-finite parameter.
    let mut p = sample_arrays(0..8).params;
    p[[5, 2]] = f32::NAN;
    radar_sim::npy::write_npy(&params, &p).unwrap();
    let err = Dataset::open(&dir).unwrap_err().to_string();
    assert!(err.contains("sample 5 column shape_2"), "{err}");
    // A broken manifest.
    std::fs::write(dir.join("manifest.json"), "{ not json").unwrap();
    let err = Dataset::open(&dir).unwrap_err().to_string();
    assert!(err.contains("manifest.json"), "{err}");
    // An unfinished dataset.
    let unfinished = temp_dir("unfinished");
    generate(&unfinished, manifest(8, (0, 8), 1), 4, Some(1));
    let err = Dataset::open(&unfinished).unwrap_err().to_string();
    assert!(err.contains("has not finished"), "{err}");
}

#[test]
fn splits_partition_the_samples() {
    let dir = temp_dir("split");
    let ds = generate(&dir, manifest(40, (0, 40), 1), 16, None).unwrap();
    let (train, val) = (ds.train_rows(), ds.validation_rows());
    assert_eq!(train.len(), 34); // 85 %
    assert_eq!(val.len(), 6);
    assert!(train.iter().chain(&val).copied().eq(0..40));
    // A shard holding samples [30, 40) has rows 0..4 in training and 4..10 in validation.
    let shard = temp_dir("split-shard");
    let ds = generate(&shard, manifest(40, (30, 40), 1), 16, None).unwrap();
    assert_eq!(ds.train_rows(), (0..4).collect::<Vec<_>>());
    assert_eq!(ds.validation_rows(), (4..10).collect::<Vec<_>>());
}

#[test]
fn batches_resample_the_dynamic_range_within_bounds() {
    let dir = temp_dir("batches");
    let ds = generate(&dir, manifest(30, (0, 30), 1), 8, None).unwrap();
    let rows = ds.train_rows();
    let layout = ds.manifest().layout;
    let d_column = layout.range(abs_fit::ParamGroup::Render).start + 2;
    let config = BatchConfig {
        batch_size: 4,
        input: InputKind::AmplitudeDepth,
        range: RangePolicy::TRAIN,
        shuffle: true,
        seed: 5,
    };
    let batches = ds.batches(&rows, &config, 0).unwrap();
    assert_eq!(
        batches.iter().map(|b| b.rows.len()).sum::<usize>(),
        rows.len()
    );
    let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.rows.clone()).collect();
    seen.sort();
    assert_eq!(seen, rows, "each row once per epoch");
    for b in &batches {
        assert_eq!(b.input_shape[1..], [2, H, W]);
        for (k, &row) in b.rows.iter().enumerate() {
            let p = &b.params[k * b.n_params..(k + 1) * b.n_params];
            // The applied D, recovered from its scaled column, lies in [15, 30] dB.
            let d = 15.0 + 0.5 * (p[d_column] + 1.0) * 15.0;
            assert!((15.0..=30.0).contains(&d), "{d}");
            // The amplitude channel follows A = clip((L + D)/D, 0, 1) for that D.
            let image = &b.inputs[k * 2 * H * W..(k * 2 + 1) * H * W];
            let level = ds.arrays().level_db.index_axis(ndarray::Axis(0), row);
            for (a, l) in image.iter().zip(level.iter()) {
                let expect = ((l + d) / d).clamp(0.0, 1.0);
                assert!((a - expect).abs() < 1e-4, "{a} vs {expect}");
            }
            // Depth: valid pixels (L ≥ −D) hold (z_far − z)/(z_far − z_near), others 0.
            let depth = &b.inputs[(k * 2 + 1) * H * W..(k * 2 + 2) * H * W];
            let z = ds.arrays().depth_m.index_axis(ndarray::Axis(0), row);
            for ((v, l), z) in depth.iter().zip(level.iter()).zip(z.iter()) {
                let expect = if *l >= -d { (0.36 - z) / 0.16 } else { 0.0 };
                assert!((v - expect).abs() < 1e-3, "{v} vs {expect}");
            }
            // The other columns are the stored ones.
            let stored = ds.arrays().params.row(row);
            assert_eq!(p[..d_column], stored.as_slice().unwrap()[..d_column]);
        }
    }
    // Deterministic per (seed, epoch), different across epochs.
    assert_eq!(batches, ds.batches(&rows, &config, 0).unwrap());
    assert_ne!(batches, ds.batches(&rows, &config, 1).unwrap());
    // Evaluation: D fixed at 20 dB.
    let eval = BatchConfig {
        range: RangePolicy::EVALUATE,
        shuffle: false,
        ..config
    };
    for b in ds.batches(&ds.validation_rows(), &eval, 0).unwrap() {
        for k in 0..b.rows.len() {
            let d = 15.0 + 0.5 * (b.params[k * b.n_params + d_column] + 1.0) * 15.0;
            assert!((d - 20.0).abs() < 1e-4);
        }
    }
    assert!(
        ds.batches(
            &rows,
            &BatchConfig {
                batch_size: 0,
                ..config
            },
            0
        )
        .is_err()
    );
    let bad = BatchConfig {
        range: RangePolicy::Uniform(30.0, 15.0),
        ..config
    };
    assert!(ds.batches(&rows, &bad, 0).is_err());
}
