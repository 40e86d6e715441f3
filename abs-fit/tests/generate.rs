//! Tests: dataset generation with the physics renderer, end to end on the `tiny` preset and the
//! built-in face model.

use abs_fit::dataset::{DatasetConfig, InputKind, merge_shards};
use abs_fit::generation::{GenerateOptions, generate};
use abs_fit::{NoProgress, ParamGroup, PhysicsRenderer, Preset, Renderer};
use candle_core::{Device, Tensor};
use morphable::builtin::builtin;

use crate::store::temp_dir;

/// The tiny preset with fewer samples, to keep the suite fast.
fn tiny(n: usize) -> DatasetConfig {
    DatasetConfig {
        n_samples: n,
        ..Preset::Tiny.dataset().unwrap()
    }
}

fn bytes(dir: &std::path::Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap()
}

#[test]
fn tiny_preset_end_to_end() {
    let config = Preset::Tiny.dataset().unwrap();
    let dir = temp_dir("tiny-preset");
    let ds = generate(
        builtin(),
        &config,
        &dir,
        &GenerateOptions::default(),
        &mut NoProgress,
    )
    .unwrap();
    let m = ds.manifest();
    assert_eq!(ds.len(), 24);
    assert_eq!((m.image.height, m.image.width), (16, 16));
    assert_eq!(ds.train_rows().len() + ds.validation_rows().len(), 24);
    // Images are radar images of the face: 0 dB at the brightest pixel, which lies within the
    // placed mesh's depth span (up to one depth step, 10 mm, of refinement error). (Dimmer
    // bright pixels may not: the decimated array's grating lobes, see the next test.)
    let renderer = PhysicsRenderer::new(builtin(), config.layout, config.imaging.clone()).unwrap();
    for k in 0..ds.len() {
        let level = ds.arrays().level_db.index_axis(ndarray::Axis(0), k);
        let depth = ds.arrays().depth_m.index_axis(ndarray::Axis(0), k);
        let (brightest, max) = level.iter().enumerate().fold(
            (0, f32::NEG_INFINITY),
            |b, (i, &l)| if l > b.1 { (i, l) } else { b },
        );
        assert_eq!(max, 0.0, "sample {k}");
        let face = face_depths(&renderer, &config, k);
        let z = depth.iter().nth(brightest).unwrap();
        assert!(face(*z), "sample {k}: brightest pixel at z = {z}");
        // Some of the image is dark: the face does not fill the field of view.
        assert!(level.iter().any(|l| *l < -20.0), "sample {k}");
    }
    // The stored parameters are the drawn ones.
    let (face, _) = config.draw(3);
    let stored = ds.arrays().params.row(3).to_vec();
    assert_eq!(stored, config.layout.to_vector(&face));
    // Reopening gives the same dataset; generating again reuses it.
    let again = generate(
        builtin(),
        &config,
        &dir,
        &GenerateOptions::default(),
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(again.arrays(), ds.arrays());
}

/// Whether a depth (m) lies in sample k's placed face, give or take one tiny-preset depth step.
fn face_depths<M: morphable::MorphableModel>(
    renderer: &PhysicsRenderer<M>,
    config: &DatasetConfig,
    k: usize,
) -> impl Fn(f32) -> bool {
    let mesh = renderer.placed_mesh(&config.draw(k).0).unwrap();
    let (lo, hi) = mesh.bounding_box().unwrap();
    move |z: f32| (lo.z - 0.01..hi.z + 0.01).contains(&(z as f64))
}

/// With the full QAR50 (1.5 mm virtual pitch, no grating lobes) every pixel within 6 dB of the
/// brightest lies on the face. The tiny preset's decimated array (3 mm virtual pitch) puts
/// grating lobes about 40° off a bright scatterer; on sample 1 they light 6 of 16 such pixels
/// at the edge of the field of view, which this test would catch.
#[test]
fn full_array_images_light_only_the_face() {
    let mut config = tiny(3);
    config.imaging.array = abs_fit::ArraySpec::Qar50;
    let renderer = PhysicsRenderer::new(builtin(), config.layout, config.imaging.clone()).unwrap();
    for k in 0..3 {
        let (face, seed) = config.draw(k);
        let products = renderer.image_products(&face, seed).unwrap();
        let on_face = face_depths(&renderer, &config, k);
        let level = products.level_db().db();
        let depth = products.depth_m().depth_m();
        let off: Vec<(f32, f32)> = level
            .iter()
            .zip(depth.iter())
            .filter(|(l, z)| **l > -6.0 && !on_face(**z))
            .map(|(l, z)| (*l, *z))
            .collect();
        assert!(
            off.is_empty(),
            "sample {k}: bright pixels off the face: {off:?}"
        );
    }
}

#[test]
fn same_seed_same_bytes_and_shards_merge_to_one_run() {
    let config = tiny(6);
    let options = GenerateOptions {
        chunk_size: 2,
        ..GenerateOptions::default()
    };
    let one = temp_dir("gen-one");
    generate(builtin(), &config, &one, &options, &mut NoProgress).unwrap();
    let (mut shards, mut dirs) = (Vec::new(), Vec::new());
    for i in 0..2 {
        let dir = temp_dir(&format!("gen-shard{i}"));
        let opts = GenerateOptions {
            shard: Some((i, 2)),
            ..options
        };
        generate(builtin(), &config, &dir, &opts, &mut NoProgress).unwrap();
        shards.push(dir.to_path_buf());
        dirs.push(dir);
    }
    let merged = temp_dir("gen-merged");
    merge_shards(&shards, &merged).unwrap();
    for name in ["manifest.json", "params.npy", "level_db.npy", "depth_m.npy"] {
        assert!(bytes(&one, name) == bytes(&merged, name), "{name} differs");
    }
    // A different seed is a different dataset, refused in the same directory.
    let other = DatasetConfig { seed: 7, ..config };
    let err = generate(builtin(), &other, &one, &options, &mut NoProgress).unwrap_err();
    assert!(err.to_string().contains("different dataset"), "{err}");
}

#[test]
fn bad_configs_are_refused() {
    let mut config = tiny(4);
    config.sampling.n_shape = 12;
    let err = config.validate(builtin()).unwrap_err().to_string();
    assert!(err.contains("layout stores 10"), "{err}");
    let mut config = tiny(4);
    config.validation_fraction = 1.0;
    assert!(config.validate(builtin()).is_err());
    let mut config = tiny(4);
    config.imaging.distance_m = -1.0;
    assert!(config.validate(builtin()).is_err());
}

#[test]
fn physics_renderer_is_a_renderer() {
    let config = tiny(1);
    let renderer = PhysicsRenderer::new(builtin(), config.layout, config.imaging.clone())
        .unwrap()
        .with_output(InputKind::AmplitudeDepth);
    assert!(!renderer.is_differentiable());
    assert_eq!(renderer.image_shape(), (2, 16, 16));
    let (face, _) = config.draw(0);
    let mut v = config.layout.to_vector(&face);
    // D = 20 dB, scaled.
    v[config.layout.range(ParamGroup::Render).start + 2] =
        (2.0 * (20.0 - 15.0) / 15.0 - 1.0) as f32;
    let params = Tensor::from_vec(v.clone(), (1, v.len()), &Device::Cpu).unwrap();
    let images = renderer.render(&params).unwrap();
    assert_eq!(images.dims(), &[1, 2, 16, 16]);
    let values: Vec<f32> = images.flatten_all().unwrap().to_vec1().unwrap();
    assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
    // The amplitude channel reaches 1 at the brightest pixel; some depth pixels are valid.
    assert!(values[..256].contains(&1.0));
    assert!(values[256..].iter().any(|&d| d > 0.0));
    // A wrong-length parameter vector is a clear error.
    let short = Tensor::zeros((1, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(renderer.render(&short).is_err());
}

/// Any array plugs into the physics renderer; a broken one is refused.
#[test]
fn physics_renderer_takes_any_array() {
    struct Cross(Vec<nalgebra::Point3<f64>>, Vec<nalgebra::Point3<f64>>);
    impl radar_sim::ArrayGeometry for Cross {
        fn tx(&self) -> &[nalgebra::Point3<f64>] {
            &self.0
        }
        fn rx(&self) -> &[nalgebra::Point3<f64>] {
            &self.1
        }
    }
    let line = |axis: usize| -> Vec<nalgebra::Point3<f64>> {
        (0..32)
            .map(|i| {
                let mut p = nalgebra::Point3::origin();
                p[axis] = (i as f64 - 15.5) * 0.003;
                p
            })
            .collect()
    };
    let config = tiny(1);
    let renderer = PhysicsRenderer::new(builtin(), config.layout, config.imaging.clone())
        .unwrap()
        .with_array(Box::new(Cross(line(0), line(1))))
        .unwrap();
    let (face, seed) = config.draw(0);
    let rendering = renderer.render_face(&face, seed).unwrap();
    assert_eq!(rendering.report.cube.n_tx(), 32);
    assert_eq!(rendering.products.level_db().shape(), (16, 16));
    let mut broken = line(0);
    broken[3].x = f64::NAN;
    let refused = PhysicsRenderer::new(builtin(), config.layout, config.imaging.clone())
        .unwrap()
        .with_array(Box::new(Cross(broken, line(1))));
    assert!(refused.is_err());
}
