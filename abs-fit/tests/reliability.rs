//! Reliability: what a killed, concurrent or tampered-with run leaves in an output directory
//! is never adopted silently. Missing manifests, locks, and chunks that are swapped, foreign,
//! bit-flipped, truncated or unreadable.

use std::ops::Range;
use std::path::Path;

use abs_fit::dataset::{DatasetWriter, Manifest};

use crate::store::{files, generate, manifest, sample_arrays, temp_dir};

/// Data that no manifest describes is refused, never adopted: a finished dataset whose
/// manifest was deleted, stray chunks, or unrelated files. An empty directory, or one left by
/// a run killed before its manifest was written, is accepted.
#[test]
fn a_directory_without_its_manifest_is_refused() {
    let dir = temp_dir("orphaned");
    generate(&dir, manifest(9, (0, 9), 1), 4, None).unwrap();
    std::fs::remove_file(dir.join("manifest.json")).unwrap();
    let err = DatasetWriter::open(&dir, manifest(9, (0, 9), 5), 4)
        .expect_err("orphaned arrays are refused");
    let text = err.to_string();
    assert!(
        text.contains("no manifest.json") && text.contains("params.npy"),
        "{text}"
    );

    let chunks_only = temp_dir("orphaned-chunks");
    assert!(generate(&chunks_only, manifest(9, (0, 9), 1), 4, Some(1)).is_none());
    std::fs::remove_file(chunks_only.join("manifest.json")).unwrap();
    assert!(DatasetWriter::open(&chunks_only, manifest(9, (0, 9), 1), 4).is_err());

    let stranger = temp_dir("stranger");
    std::fs::write(stranger.join("notes.txt"), "mine").unwrap();
    assert!(DatasetWriter::open(&stranger, manifest(9, (0, 9), 1), 4).is_err());
    assert!(stranger.join("notes.txt").is_file(), "nothing is touched");

    let killed = temp_dir("killed-before-manifest");
    std::fs::create_dir(killed.join("chunks")).unwrap();
    std::fs::write(killed.join(".manifest.json.a1B2c3.tmp"), "{").unwrap();
    DatasetWriter::open(&killed, manifest(9, (0, 9), 1), 4).expect("nothing to adopt");
    assert!(DatasetWriter::open(&temp_dir("empty"), manifest(9, (0, 9), 1), 4).is_ok());
}

/// Two writers of one directory: the second is refused, naming the holder, until the first is
/// gone; the finished directory holds no lock file.
#[test]
fn a_directory_has_one_writer_at_a_time() {
    let dir = temp_dir("locked");
    let first = DatasetWriter::open(&dir, manifest(9, (0, 9), 1), 4).unwrap();
    let err = DatasetWriter::open(&dir, manifest(9, (0, 9), 1), 4)
        .expect_err("a second writer is refused");
    assert!(
        err.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    drop(first);
    generate(&dir, manifest(9, (0, 9), 1), 4, None).unwrap();
    assert!(!dir.join(abs_fit::lock::LOCK_FILE).exists());
}

/// The files of the chunk of `range` in a dataset directory: level, depth, params, record.
fn chunk_files(dir: &Path, range: Range<usize>) -> [std::path::PathBuf; 4] {
    let suffix = format!("-{:08}-{:08}", range.start, range.end);
    let chunks = dir.join("chunks");
    [
        chunks.join(format!("level_db{suffix}.npy")),
        chunks.join(format!("depth_m{suffix}.npy")),
        chunks.join(format!("params{suffix}.npy")),
        chunks.join(format!("chunk{suffix}.json")),
    ]
}

/// An interrupted 23-sample run (chunks of 4, the first three written) and the same dataset
/// generated cleanly, for comparison.
fn interrupted(name: &str) -> (crate::store::TempDir, crate::store::TempDir, Manifest) {
    let m = manifest(23, (0, 23), 1);
    let clean = temp_dir(&format!("{name}-clean"));
    generate(&clean, m.clone(), 4, None).unwrap();
    let dir = temp_dir(name);
    assert!(generate(&dir, m.clone(), 4, Some(3)).is_none());
    (dir, clean, m)
}

/// Tampers with the interrupted run, then checks that exactly `bad` chunks are reported and
/// regenerated and that the result equals the clean run byte for byte.
fn repaired(name: &str, bad: &[(usize, usize)], tamper: impl FnOnce(&Path)) {
    let (dir, clean, m) = interrupted(name);
    tamper(&dir);
    let writer = DatasetWriter::open(&dir, m.clone(), 4).unwrap();
    let audit = writer.audit();
    let reported: Vec<(usize, usize)> = audit.bad.iter().map(|(r, _)| (r.start, r.end)).collect();
    assert_eq!(reported, bad, "bad chunks: {:?}", audit.bad);
    for &(start, end) in bad {
        assert!(audit.pending.contains(&(start..end)));
    }
    drop(writer);
    generate(&dir, m, 4, None).unwrap();
    assert_eq!(files(&dir), files(&clean));
}

#[test]
fn swapped_chunks_are_regenerated() {
    repaired("swapped", &[(0, 4), (4, 8)], |dir| {
        for (a, b) in chunk_files(dir, 0..4).iter().zip(chunk_files(dir, 4..8)) {
            let tmp = a.with_extension("swap");
            std::fs::rename(a, &tmp).unwrap();
            std::fs::rename(&b, a).unwrap();
            std::fs::rename(&tmp, &b).unwrap();
        }
    });
}

#[test]
fn a_chunk_of_another_dataset_is_regenerated() {
    repaired("foreign", &[(4, 8)], |dir| {
        let other = temp_dir("foreign-seed");
        assert!(generate(&other, manifest(23, (0, 23), 99), 4, Some(3)).is_none());
        for (theirs, ours) in chunk_files(&other, 4..8).iter().zip(chunk_files(dir, 4..8)) {
            std::fs::copy(theirs, ours).unwrap();
        }
    });
}

#[test]
fn a_bit_flip_or_a_truncation_is_regenerated() {
    repaired("bit-flip", &[(0, 4), (8, 12)], |dir| {
        let level = &chunk_files(dir, 0..4)[0];
        let mut bytes = std::fs::read(level).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        std::fs::write(level, bytes).unwrap();
        let params = &chunk_files(dir, 8..12)[2];
        let bytes = std::fs::read(params).unwrap();
        std::fs::write(params, &bytes[..bytes.len() / 2]).unwrap();
    });
}

#[test]
fn chunk_files_without_a_record_are_regenerated() {
    repaired("no-record", &[(4, 8)], |dir| {
        std::fs::remove_file(&chunk_files(dir, 4..8)[3]).unwrap();
    });
}

/// Non-finite parameters are refused when a chunk is written; a bad chunk found when
/// assembling is removed before anything is assembled or deleted, and the next run repairs it.
#[test]
fn bad_chunks_never_reach_the_dataset() {
    let m = manifest(9, (0, 9), 1);
    let dir = temp_dir("nan-chunk");
    let writer = DatasetWriter::open(&dir, m.clone(), 4).unwrap();
    let mut arrays = sample_arrays(0..4);
    arrays.params[[2, 1]] = f32::NAN;
    let err = writer.write_chunk(&(0..4), &arrays).unwrap_err();
    assert!(err.to_string().contains("is NaN"), "{err}");
    assert!(!chunk_files(&dir, 0..4)[2].exists(), "nothing was written");

    for range in writer.chunks() {
        writer
            .write_chunk(&range, &sample_arrays(range.clone()))
            .unwrap();
    }
    let flipped = &chunk_files(&dir, 4..8)[1];
    let mut bytes = std::fs::read(flipped).unwrap();
    bytes[200] ^= 1;
    std::fs::write(flipped, bytes).unwrap();
    let err = writer.finish().unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    assert!(!dir.join("params.npy").exists(), "nothing was assembled");
    assert!(chunk_files(&dir, 0..4)[2].exists(), "good chunks are kept");
    assert!(!flipped.exists(), "the bad chunk is removed");

    let clean = temp_dir("nan-chunk-clean");
    generate(&clean, m.clone(), 4, None).unwrap();
    generate(&dir, m, 4, None).unwrap();
    assert_eq!(files(&dir), files(&clean));
}

/// What killed atomic writes leave (temporary files of the manifest and of arrays, old and new
/// names) is removed by the next writer, which holds the directory's lock; other files stay.
#[test]
fn leftovers_of_killed_writes_are_removed() {
    let (dir, clean, m) = interrupted("leftovers");
    let leftovers = [
        dir.join(".manifest.json.x7Yq2a.tmp"),
        dir.join(".manifest.json.tmp4242"),
        dir.join("chunks").join(".tmpAb12Cd.npy.tmp"),
        dir.join("chunks")
            .join("level_db-00000012-00000016.npy.tmp-4242-3"),
    ];
    for path in &leftovers {
        std::fs::write(path, "partial").unwrap();
    }
    let writer = DatasetWriter::open(&dir, m.clone(), 4).unwrap();
    for path in &leftovers {
        assert!(!path.exists(), "{} is left", path.display());
    }
    assert!(writer.audit().bad.is_empty());
    drop(writer);
    generate(&dir, m, 4, None).unwrap();
    assert_eq!(files(&dir), files(&clean));
}

/// Sizes beyond any real run are refused with a sentence instead of overflowing or aborting.
#[test]
fn absurd_sizes_are_typed_errors() {
    use abs_fit::dataset::{DatasetConfig, shard_range};
    use abs_fit::evaluate::cosine_study_faces;
    use abs_fit::train::{LearningRate, TrainSchedule};

    let err = shard_range(18, 30, 100).unwrap_err();
    assert!(err.to_string().contains("would be empty"), "{err}");
    let n = usize::MAX;
    assert_eq!(shard_range(n, 1, 2).unwrap(), (n / 2, n), "no overflow");

    let config = DatasetConfig {
        n_samples: usize::MAX,
        ..abs_fit::Preset::Tiny.dataset().unwrap()
    };
    let err = config.validate(morphable::builtin::builtin()).unwrap_err();
    assert!(err.to_string().contains("more than"), "{err}");

    let schedule = TrainSchedule::new(usize::MAX, 8, LearningRate::constant(1e-3));
    assert!(schedule.validate().is_err());

    let err =
        cosine_study_faces(&config.layout, &config.sampling, usize::MAX, 5, false, 0).unwrap_err();
    assert!(err.to_string().contains("at most"), "{err}");
}

/// A finished dataset whose arrays were altered to NaN or impossible levels is refused by
/// every reader, naming the file, the sample and the value.
#[test]
fn garbage_in_a_finished_dataset_is_refused() {
    use abs_fit::dataset::Dataset;
    use radar_sim::npy::{read_npy, write_npy};

    let dir = temp_dir("garbage");
    generate(&dir, manifest(9, (0, 9), 1), 4, None).unwrap();
    let original = |name: &str| read_npy::<f32, ndarray::Ix3>(dir.join(name)).unwrap();
    let (level, depth) = (original("level_db.npy"), original("depth_m.npy"));
    for (file, value, expected) in [
        (
            "level_db.npy",
            f32::NAN,
            "level_db.npy: sample 3 pixel (1, 2) is NaN dB",
        ),
        (
            "level_db.npy",
            6.0,
            "level_db.npy: sample 3 pixel (1, 2) is 6 dB",
        ),
        (
            "depth_m.npy",
            f32::INFINITY,
            "depth_m.npy: sample 3 pixel (1, 2) is inf m",
        ),
    ] {
        let mut altered = if file == "level_db.npy" {
            level.clone()
        } else {
            depth.clone()
        };
        altered[[3, 1, 2]] = value;
        write_npy(dir.join(file), &altered).unwrap();
        let err = Dataset::open(&dir).unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
        write_npy(dir.join("level_db.npy"), &level).unwrap();
        write_npy(dir.join("depth_m.npy"), &depth).unwrap();
    }
    // Parameters beyond what a physically valid face can hold (a coefficient of 1e30, a yaw
    // column of 1e30) are refused with their column.
    let params = read_npy::<f32, ndarray::Ix2>(dir.join("params.npy")).unwrap();
    let yaw = manifest(9, (0, 9), 1)
        .layout
        .range(abs_fit::ParamGroup::Rotation)
        .start;
    for (column, name) in [(0, "shape_0"), (yaw, "yaw_scaled")] {
        let mut altered = params.clone();
        altered[[4, column]] = 1e30;
        write_npy(dir.join("params.npy"), &altered).unwrap();
        let err = Dataset::open(&dir).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "params.npy: sample 4 column {name} is 1000000000000000000000000000000"
            )),
            "{err}"
        );
    }
    write_npy(dir.join("params.npy"), &params).unwrap();
    Dataset::open(&dir).expect("restored");
}

/// Every physical parameter has a documented range, checked by the library: each nonsense value
/// is a typed error naming it, while every face the paper's distribution draws passes.
#[test]
fn physical_ranges_are_checked_in_the_library() {
    use abs_fit::{FaceDistribution, FaceParams, ParamLayout, PhysicsRenderer, Preset};
    use morphable::{Pose, SamplingConfig};
    use nalgebra::Vector3;

    let good = FaceParams {
        shape: vec![1.0, -2.0],
        expression: vec![0.5],
        pose: Pose {
            yaw: 30f64.to_radians(),
            ..Pose::identity()
        },
        render: abs_fit::RenderParams {
            material: 0.3,
            antenna_cm: 0.25,
            dynamic_range_db: 20.0,
        },
    };
    good.validate().expect("a yaw of 30° is legal");
    type Spoil = fn(&mut FaceParams);
    let cases: [(&str, Spoil); 10] = [
        ("material", |f| f.render.material = 2.0),
        ("material", |f| f.render.material = -1.0),
        ("antenna", |f| f.render.antenna_cm = 0.0),
        ("antenna", |f| f.render.antenna_cm = 1e9),
        ("dynamic range", |f| f.render.dynamic_range_db = f64::NAN),
        ("yaw", |f| f.pose.yaw = 1e10),
        ("pitch", |f| f.pose.pitch = std::f64::consts::PI),
        ("t_x", |f| f.pose.translation.x = 5.0),
        ("shape coefficient 1", |f| f.shape[1] = 100.0),
        ("expression coefficient 0", |f| {
            f.expression[0] = f64::INFINITY
        }),
    ];
    for (name, spoil) in cases {
        let mut face = good.clone();
        spoil(&mut face);
        let err = face.validate().expect_err(name).to_string();
        assert!(err.contains(name), "{name}: {err}");
    }
    // The paper's distribution stays inside every range.
    let layout = ParamLayout::default();
    let distribution = FaceDistribution {
        sampling: SamplingConfig::default(),
        layout,
        seed: 3,
    };
    for i in 0..500 {
        let face = distribution.draw(i).0;
        face.validate().unwrap_or_else(|e| panic!("face {i}: {e}"));
    }
    // A face moved into the array is refused when it is placed, before any simulation.
    let config = Preset::Tiny.dataset().unwrap();
    let renderer =
        PhysicsRenderer::new(morphable::builtin::builtin(), layout, config.imaging).unwrap();
    let mut inside = good.clone();
    inside.pose.translation = Vector3::new(0.0, 0.0, -0.249);
    let err = renderer.placed_mesh(&inside).unwrap_err().to_string();
    assert!(err.contains("from the array plane"), "{err}");
    renderer
        .placed_mesh(&good)
        .expect("the default placement is valid");
}
