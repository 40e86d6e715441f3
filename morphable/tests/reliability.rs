//! Reliability: no input may panic the statismo reader, and whatever it loads from a damaged
//! file has instances within the stated bound (a fuzz of byte edits and truncations of files it
//! wrote itself, of a hand-written file, and of the real model).

use morphable::statismo::{self, LoadOptions, NoiseVarianceShape, SaveOptions, Storage};
use morphable::{MorphableModel, PcaBlock, PcaModel};
use proptest::prelude::*;

use crate::statismo::{RawFile, TempDir, grid_model, real_model_bytes};

fn fuzz_seeds() -> &'static [Vec<u8>] {
    static SEEDS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(|| {
        let model = grid_model(3, 2, 1, 9);
        let deflate = SaveOptions {
            storage: Storage::Deflate { level: 6 },
            noise_shape: NoiseVarianceShape::Scalar,
            ..SaveOptions::default()
        };
        vec![
            RawFile::valid().bytes(),
            statismo::to_bytes(&model, &SaveOptions::default()).expect("bytes"),
            statismo::to_bytes(&model, &deflate).expect("bytes"),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Random byte edits and truncations of valid files: load answers a typed error or a model
    /// whose instances within ±10 σ are finite and within the stated bound; it never panics.
    #[test]
    fn damaged_files_never_panic(
        seed in 0usize..3,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
        cut in prop::option::weighted(0.25, any::<prop::sample::Index>()),
        coefficients in prop::collection::vec(-10.0f64..10.0, 8),
    ) {
        let mut bytes = fuzz_seeds()[seed].clone();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        // From memory, and from disk, where the file is read on demand.
        let dir = TempDir::new();
        let path = dir.path("fuzz.h5");
        std::fs::write(&path, &bytes).expect("write");
        let outcome = std::panic::catch_unwind(|| {
            let in_memory = statismo::from_bytes(bytes, "fuzz", &LoadOptions::new());
            (in_memory, statismo::load(&path))
        });
        let Ok((in_memory, on_disk)) = outcome else {
            return Err(TestCaseError::fail("load panicked"));
        };
        for model in [in_memory, on_disk].into_iter().flatten() {
            let n_shape = model.n_shape().min(4);
            let n_expression = model.n_expression().min(4);
            let mesh = model
                .instance(&coefficients[..n_shape], &coefficients[4..4 + n_expression])
                .expect("an instance of a loaded model");
            let bound = instance_bound_mm(&model);
            for c in mesh.vertices.iter().flat_map(|v| v.iter()) {
                prop_assert!(c.is_finite() && c.abs() <= bound, "{c} beyond {bound} mm");
            }
        }
    }
}

/// The bound every loaded model's instances obey for coefficients within ±10 σ: the two
/// blocks' means within `PcaBlock::MAX_COORDINATE_MM` each, and each of the K components
/// moving a coordinate by at most 10 · `PcaBlock::MAX_DISPLACEMENT_MM`.
fn instance_bound_mm(model: &PcaModel) -> f64 {
    let k = (model.n_shape() + model.n_expression()) as f64;
    2.0 * f64::from(PcaBlock::MAX_COORDINATE_MM)
        + k * 10.0 * f64::from(PcaBlock::MAX_DISPLACEMENT_MM)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The real model's file is in the C library's older format (version 0 superblock,
    /// version 1 object headers without checksums), so edits to its metadata reach deeper
    /// into the parser than edits to checksummed files do. Its metadata sits in the first and
    /// last few kilobytes; edits land there.
    #[test]
    fn damaged_real_model_never_panics(
        edits in prop::collection::vec((any::<bool>(), 0usize..16_384, any::<u8>()), 1..6),
        cut in prop::option::weighted(0.1, any::<prop::sample::Index>()),
    ) {
        let Some(original) = real_model_bytes() else {
            return Ok(());
        };
        let mut bytes = original.to_vec();
        let len = bytes.len();
        for (from_end, offset, value) in edits {
            let at = if from_end { len - 1 - offset % len } else { offset % len };
            bytes[at] = value;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        let outcome = std::panic::catch_unwind(|| {
            let options = LoadOptions::new()
                .with_max_shape_components(2)
                .with_max_expression_components(2);
            statismo::from_bytes(bytes, "fuzz", &options).map(|m| m.n_vertices())
        });
        prop_assert!(outcome.is_ok(), "load panicked");
    }
}
