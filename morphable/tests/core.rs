//! Tests: the model, meshes, poses, placement, sampling, metrics, export and rasterisation.

use approx::assert_relative_eq;
use morphable::export::{obj_string, ply_bytes, scalar_colours};
use morphable::metrics::{per_vertex_distance, point_distance};
use morphable::raster::{DepthOrder, OrthoView, rasterize};
use morphable::{
    Mesh, MorphableError, MorphableModel, PcaBlock, PcaModel, Placement, Pose, SamplingConfig,
    Truncated,
};
use nalgebra::{Matrix3, Point3, Vector3};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// The look of a [`sheet_model`]: grid pitch and height of the sheet's centre (mm), the first
/// component's variance, the shape block's noise variance, and the model's name.
pub struct Sheet {
    pub pitch: f32,
    pub height: f32,
    pub variance: f64,
    pub shape_noise: f64,
    pub name: &'static str,
}

/// A random linear model on a `side × side` grid surface: a curved sheet centred on the origin,
/// Gaussian basis columns, variances falling as 1/(1 + i), an expression mean of 0.5 mm.
/// Independent of the built-in model.
pub fn sheet_model(
    sheet: &Sheet,
    side: usize,
    n_shape: usize,
    n_expression: usize,
    seed: u64,
) -> PcaModel {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = side * side;
    let mut mean = Vec::with_capacity(3 * n);
    for i in 0..side {
        for j in 0..side {
            let (x, y) = (
                (i as f32 - 5.0) * sheet.pitch,
                (j as f32 - 5.0) * sheet.pitch,
            );
            mean.extend_from_slice(&[x, y, sheet.height - 0.01 * (x * x + y * y)]);
        }
    }
    let mut triangles = Vec::new();
    for i in 0..side - 1 {
        for j in 0..side - 1 {
            let v = |a: usize, b: usize| (a * side + b) as u32;
            triangles.push([v(i, j), v(i + 1, j), v(i + 1, j + 1)]);
            triangles.push([v(i, j), v(i + 1, j + 1), v(i, j + 1)]);
        }
    }
    let mut block = |k: usize, mean: Vec<f32>, noise: f64| {
        let basis: Vec<f32> = (0..3 * n * k)
            .map(|_| {
                let g: f64 = StandardNormal.sample(&mut rng);
                g as f32
            })
            .collect();
        let variance: Vec<f64> = (0..k).map(|i| sheet.variance / (1.0 + i as f64)).collect();
        PcaBlock::new(mean, basis, variance, noise).expect("valid block")
    };
    let shape = block(n_shape, mean, sheet.shape_noise);
    let expression = block(n_expression, vec![0.5; 3 * n], 0.0);
    PcaModel::new(sheet.name, shape, expression, triangles).expect("valid model")
}

/// The sheet model of this file's tests: 10 mm pitch, no noise.
pub fn random_model(side: usize, n_shape: usize, n_expression: usize, seed: u64) -> PcaModel {
    let sheet = Sheet {
        pitch: 10.0,
        height: 30.0,
        variance: 4.0,
        shape_noise: 0.0,
        name: "random",
    };
    sheet_model(&sheet, side, n_shape, n_expression, seed)
}

fn coefficients(n: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(-3.0f64..3.0, n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn rotations_are_proper(yaw in -3.2f64..3.2, pitch in -3.2f64..3.2, roll in -3.2f64..3.2) {
        let r = Pose { yaw, pitch, roll, ..Pose::default() }.rotation().into_inner();
        let gram = r.transpose() * r;
        prop_assert!((gram - Matrix3::identity()).abs().max() < 1e-12);
        prop_assert!((r.determinant() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn placement_inverts(
        yaw in -0.5f64..0.5, pitch in -0.5f64..0.5, roll in -0.5f64..0.5,
        t in prop::array::uniform3(-0.05f64..0.05),
        p in prop::array::uniform3(-100.0f64..100.0),
    ) {
        let model = random_model(6, 2, 2, 1);
        let placement = Placement::for_model(&model).unwrap();
        let pose = Pose { yaw, pitch, roll, translation: Vector3::from(t) };
        let p = Point3::from(p);
        let q = placement.to_model(&placement.to_radar(&p, &pose), &pose);
        prop_assert!((q - p).norm() < 1e-9);
    }

    #[test]
    fn instance_is_affine(
        a in coefficients(4), b in coefficients(4), e in coefficients(3), f in coefficients(3),
        w in -2.0f64..2.0,
    ) {
        let model = random_model(5, 4, 3, 2);
        let mix = |x: &[f64], y: &[f64]| -> Vec<f64> {
            x.iter().zip(y).map(|(x, y)| w * x + (1.0 - w) * y).collect()
        };
        let lhs = model.instance(&mix(&a, &b), &mix(&e, &f)).unwrap();
        let ia = model.instance(&a, &e).unwrap();
        let ib = model.instance(&b, &f).unwrap();
        for ((l, p), q) in lhs.vertices.iter().zip(&ia.vertices).zip(&ib.vertices) {
            let rhs = p.coords * w + q.coords * (1.0 - w);
            // f32 arithmetic inside; coordinates are O(100) mm.
            prop_assert!((l.coords - rhs).norm() < 2e-3, "{l} vs {rhs}");
        }
    }

    #[test]
    fn projection_recovers_coefficients(a in coefficients(6), e in coefficients(4)) {
        let model = random_model(8, 6, 4, 3);
        let mesh = model.instance(&a, &e).unwrap();
        let (pa, pe) = model.project(&mesh).unwrap();
        for (x, y) in a.iter().chain(&e).zip(pa.iter().chain(&pe)) {
            prop_assert!((x - y).abs() < 1e-3, "{x} vs {y}");
        }
    }
}

#[test]
fn short_coefficients_are_zero_padded() {
    let model = random_model(5, 4, 3, 4);
    let short = model.instance(&[1.5], &[]).unwrap();
    let padded = model
        .instance(&[1.5, 0.0, 0.0, 0.0], &[0.0, 0.0, 0.0])
        .unwrap();
    assert_eq!(short, padded);
    assert_eq!(
        model.mean_mesh().unwrap(),
        model.instance(&[], &[]).unwrap()
    );
}

#[test]
fn mean_adds_the_expression_mean() {
    let model = random_model(4, 1, 1, 5);
    let mean = model.mean_mesh().unwrap();
    let shape_mean = model.shape().mean();
    for (v, s) in mean.vertices.iter().zip(shape_mean.chunks(3)) {
        // The expression mean of random_model is 0.5 mm on every coordinate.
        assert_relative_eq!(v.x, s[0] as f64 + 0.5, epsilon = 1e-5);
        assert_relative_eq!(v.z, s[2] as f64 + 0.5, epsilon = 1e-5);
    }
}

#[test]
fn bad_coefficients_are_typed_errors() {
    let model = random_model(4, 2, 2, 6);
    assert!(matches!(
        model.instance(&[0.0; 3], &[]),
        Err(MorphableError::Coefficients { kind: "shape", .. })
    ));
    assert!(matches!(
        model.instance(&[], &[f64::NAN]),
        Err(MorphableError::Coefficients {
            kind: "expression",
            ..
        })
    ));
}

#[test]
fn truncation_keeps_the_leading_components() {
    let model = random_model(5, 4, 3, 7);
    let small = model.truncated(2, 1);
    assert_eq!((small.n_shape(), small.n_expression()), (2, 1));
    assert_eq!(
        small.instance(&[0.3, -1.0], &[2.0]).unwrap(),
        model.instance(&[0.3, -1.0], &[2.0]).unwrap()
    );
    // The generic wrapper agrees, and refuses what it hides.
    let wrapped = Truncated::new(&model, 2, 1);
    assert_eq!(
        wrapped.instance(&[0.3, -1.0], &[2.0]).unwrap(),
        small.instance(&[0.3, -1.0], &[2.0]).unwrap()
    );
    assert!(wrapped.instance(&[0.0; 3], &[]).is_err());
}

#[test]
fn block_validation_names_the_problem() {
    let err = PcaBlock::new(vec![0.0; 6], vec![0.0; 5], vec![1.0], 0.0).unwrap_err();
    assert!(
        err.to_string()
            .contains("expected 6 coordinates × 1 components"),
        "{err}"
    );
    let err = PcaBlock::new(vec![0.0; 6], vec![0.0; 6], vec![-1.0], 0.0).unwrap_err();
    assert!(err.to_string().contains("variance 0"), "{err}");
    // Absurd magnitudes (a flipped exponent bit) are refused, at the bounds' edge accepted.
    let mut basis = vec![0.5; 6];
    basis[4] = 2.8e36;
    let err = PcaBlock::new(vec![0.0; 6], basis, vec![1.0], 0.0).unwrap_err();
    assert!(
        err.to_string().contains("coordinate 4, component 0"),
        "{err}"
    );
    let mut mean = vec![1.0; 6];
    mean[2] = -2e5;
    let err = PcaBlock::new(mean, vec![0.0; 6], vec![1.0], 0.0).unwrap_err();
    assert!(err.to_string().contains("mean entry 2"), "{err}");
    let edge = vec![PcaBlock::MAX_DISPLACEMENT_MM; 6];
    let mean = vec![-PcaBlock::MAX_COORDINATE_MM; 6];
    assert!(PcaBlock::new(mean, edge, vec![1.0], 0.0).is_ok());
    let tri = vec![[0, 1, 2]];
    let err = PcaModel::new("x", PcaBlock::empty(2), PcaBlock::empty(2), tri).unwrap_err();
    assert!(
        err.to_string().contains("indexes past the 2 vertices"),
        "{err}"
    );
}

#[test]
fn unscaled_basis_is_scaled_by_the_standard_deviation() {
    let block = PcaBlock::from_unscaled(vec![0.0; 3], vec![1.0, 0.0, 0.0], vec![9.0], 0.0).unwrap();
    assert_eq!(block.component(0), &[3.0, 0.0, 0.0]);
}

fn unit_triangle() -> Mesh {
    Mesh::new(
        vec![
            Point3::new(0.0, 0.0, 0.0),
            Point3::new(2.0, 0.0, 0.0),
            Point3::new(0.0, 3.0, 0.0),
        ],
        vec![[0, 1, 2]],
    )
    .unwrap()
}

#[test]
fn mesh_geometry() {
    let m = unit_triangle();
    assert_relative_eq!(m.area(), 3.0);
    assert_eq!(m.triangle_normals()[0], Vector3::z());
    assert!(m.vertex_normals().iter().all(|n| *n == Vector3::z()));
    assert!(Mesh::new(m.vertices.clone(), vec![[0, 1, 3]]).is_err());
    assert!(Mesh::new(vec![Point3::new(f64::NAN, 0.0, 0.0)], vec![]).is_err());
}

#[test]
fn placement_puts_the_closest_point_at_the_distance_facing_the_array() {
    let model = random_model(7, 2, 2, 8);
    let placement = Placement::for_model(&model).unwrap();
    let mean = model.mean_mesh().unwrap();
    let placed = placement.place(&mean, &Pose::identity());
    let min_z = placed
        .vertices
        .iter()
        .map(|p| p.z)
        .fold(f64::INFINITY, f64::min);
    assert_relative_eq!(min_z, morphable::DEFAULT_DISTANCE_M, epsilon = 1e-12);
    // The sheet bulges toward +z in model space (its "nose"); placed, the bulge is nearest.
    let apex = mean
        .vertices
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.z.total_cmp(&b.1.z))
        .unwrap()
        .0;
    assert_relative_eq!(placed.vertices[apex].z, min_z, epsilon = 1e-12);
    // Outward normals (+z in model space) face the array (−z) after placement.
    let n = placed.vertex_normals()[apex];
    assert!(n.z < -0.99, "{n}");
    // Millimetres become metres: bounding box sizes shrink by 1000.
    let (lo, hi) = mean.bounding_box().unwrap();
    let (plo, phi) = placed.bounding_box().unwrap();
    assert_relative_eq!((phi.x - plo.x) * 1000.0, hi.x - lo.x, epsilon = 1e-9);
}

#[test]
fn sampling_follows_the_paper() {
    let cfg = SamplingConfig::default();
    cfg.validate().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let draws: Vec<_> = (0..4000).map(|_| cfg.sample(&mut rng)).collect();
    assert!(
        draws
            .iter()
            .all(|d| d.shape.len() == 10 && d.expression.len() == 7)
    );
    assert!(draws.iter().all(|d| {
        let p = d.pose;
        p.translation.x.abs() <= 0.05
            && p.translation.y.abs() <= 0.05
            && p.translation.z == 0.0
            && p.yaw.abs() <= 5f64.to_radians()
            && p.pitch.abs() <= 10f64.to_radians()
            && p.roll.abs() <= 10f64.to_radians()
    }));
    // Moments: N(0, 1) coefficients; U(−a, a) has variance a²/3. 4000 draws: tolerances are
    // about 5 standard errors.
    let n = draws.len() as f64;
    let mean: f64 = draws.iter().map(|d| d.shape[3]).sum::<f64>() / n;
    let var: f64 = draws.iter().map(|d| d.shape[3].powi(2)).sum::<f64>() / n;
    assert!(
        mean.abs() < 0.08 && (var - 1.0).abs() < 0.12,
        "{mean} {var}"
    );
    let yaw_var: f64 = draws.iter().map(|d| d.pose.yaw.powi(2)).sum::<f64>() / n;
    let expect = 5f64.to_radians().powi(2) / 3.0;
    assert!(
        (yaw_var / expect - 1.0).abs() < 0.1,
        "{yaw_var} vs {expect}"
    );
    // Same seed, same faces.
    let again: Vec<_> = {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        (0..4000).map(|_| cfg.sample(&mut rng)).collect()
    };
    assert_eq!(draws, again);
    let bad = SamplingConfig {
        max_yaw_rad: f64::NAN,
        ..cfg
    };
    assert!(bad.validate().is_err());
}

#[test]
fn point_distance_of_a_translation_is_its_length() {
    let m = unit_triangle();
    let shift = Vector3::new(3.0, 4.0, 12.0);
    let moved = m.map_vertices(|p| p + shift);
    assert_relative_eq!(point_distance(&m, &moved).unwrap(), 13.0);
    assert_eq!(point_distance(&m, &m).unwrap(), 0.0);
    let other = Mesh::new(vec![Point3::origin()], vec![]).unwrap();
    assert!(per_vertex_distance(&m, &other).is_err());
}

#[test]
fn ply_layout_follows_the_format() {
    let m = unit_triangle();
    let colours = scalar_colours(&[0.0, 0.5, 1.0], None);
    assert_eq!(colours[0], [0, 0, 255]);
    assert_eq!(colours[2], [255, 0, 0]);
    let bytes = ply_bytes(&m, Some(&colours)).unwrap();
    let end = b"end_header\n";
    let body_at = bytes.windows(end.len()).position(|w| w == end).unwrap() + end.len();
    let header = std::str::from_utf8(&bytes[..body_at]).unwrap();
    assert!(header.contains("element vertex 3\n") && header.contains("element face 1\n"));
    // 3 vertices × (3 floats + 3 colour bytes), then 1 face × (count byte + 3 ints).
    assert_eq!(bytes.len() - body_at, 3 * 15 + 13);
    let y1 = f32::from_le_bytes(
        bytes[body_at + 15 + 4..body_at + 15 + 8]
            .try_into()
            .unwrap(),
    );
    assert_eq!(y1, 0.0);
    let z2_at = body_at + 30 + 8;
    let y2 = f32::from_le_bytes(bytes[z2_at - 4..z2_at].try_into().unwrap());
    assert_eq!(y2, 3.0);
    assert!(ply_bytes(&m, Some(&colours[..2])).is_err());
    let obj = obj_string(&m);
    assert_eq!(obj.lines().filter(|l| l.starts_with("v ")).count(), 3);
    assert!(obj.contains("f 1//1 2//2 3//3"));
}

#[test]
fn written_files_appear_whole() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let path = dir.join("tri.ply");
    morphable::export::write_ply(&path, &unit_triangle(), None).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        ply_bytes(&unit_triangle(), None).unwrap()
    );
    let leftovers = std::fs::read_dir(dir).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary file is left behind");
    let missing = dir.join("no-such-dir").join("x.obj");
    assert!(matches!(
        morphable::export::write_obj(&missing, &unit_triangle()),
        Err(MorphableError::Io { .. })
    ));
}

/// A square [−1, 1]² as two triangles on the plane z = a·x + b·y + c.
fn plane(a: f64, b: f64, c: f64) -> Mesh {
    let v = |x: f64, y: f64| Point3::new(x, y, a * x + b * y + c);
    Mesh::new(
        vec![v(-1.0, -1.0), v(1.0, -1.0), v(1.0, 1.0), v(-1.0, 1.0)],
        vec![[0, 1, 2], [0, 2, 3]],
    )
    .unwrap()
}

#[test]
fn raster_depth_is_the_plane() {
    let view = OrthoView {
        x_min: -0.9,
        x_max: 0.9,
        y_min: -0.9,
        y_max: 0.9,
        width: 17,
        height: 13,
        order: DepthOrder::LargestZ,
    };
    let frags = rasterize(&plane(0.3, -0.2, 5.0), &view).unwrap();
    for row in 0..view.height {
        for col in 0..view.width {
            let f = frags[row * view.width + col].expect("the square covers the view");
            let (x, y) = view.pixel_centre(row, col);
            assert_relative_eq!(f.depth, 0.3 * x - 0.2 * y + 5.0, epsilon = 1e-12);
            assert_relative_eq!(f.barycentric.iter().sum::<f64>(), 1.0, epsilon = 1e-12);
        }
    }
    // Row 0 is the top of the picture (+y).
    assert!(view.pixel_centre(0, 0).1 > view.pixel_centre(1, 0).1);
}

#[test]
fn raster_keeps_the_nearest_surface() {
    let mut both = plane(0.0, 0.0, 1.0);
    let far = plane(0.0, 0.0, 2.0);
    let offset = both.vertices.len() as u32;
    both.vertices.extend(far.vertices);
    both.triangles
        .extend(far.triangles.iter().map(|t| t.map(|i| i + offset)));
    let mut view = OrthoView {
        x_min: -0.5,
        x_max: 0.5,
        y_min: -0.5,
        y_max: 0.5,
        width: 4,
        height: 4,
        order: DepthOrder::LargestZ,
    };
    let depths = |v: &OrthoView| -> Vec<f64> {
        rasterize(&both, v)
            .unwrap()
            .iter()
            .map(|f| f.unwrap().depth)
            .collect()
    };
    assert!(depths(&view).iter().all(|&d| d == 2.0));
    view.order = DepthOrder::SmallestZ;
    assert!(depths(&view).iter().all(|&d| d == 1.0));
    // Outside the square: nothing.
    view.x_min = 5.0;
    view.x_max = 6.0;
    assert!(rasterize(&both, &view).unwrap().iter().all(Option::is_none));
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Mesh>();
    check::<PcaModel>();
    check::<PcaBlock>();
    check::<Truncated<PcaModel>>();
    check::<Pose>();
    check::<Placement>();
    check::<SamplingConfig>();
    check::<morphable::FaceSample>();
    check::<MorphableError>();
    check::<OrthoView>();
    check::<Box<dyn MorphableModel>>();
}
