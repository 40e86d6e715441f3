//! Tests: the built-in face model. Expected values come from face anatomy, from the
//! construction (symmetry, rigid projection, orthonormality) or from properties that must
//! hold for any coefficients.

use std::collections::HashMap;

use morphable::builtin::{
    BUILTIN_MODEL_NAME, BuiltinConfig, BuiltinModel, FaceLandmarks, KernelTerm, N_FACIAL_ACTIONS,
    ValidBuiltinConfig, builtin,
};
use morphable::{Mesh, MorphableError, MorphableModel, PcaBlock};
use nalgebra::{Point3, Vector3};
use proptest::prelude::*;

fn mean_face() -> Mesh {
    builtin().mean_mesh().unwrap()
}

/// Column k of a block as f64 displacement vectors (mm).
fn field(block: &PcaBlock, k: usize) -> Vec<Vector3<f64>> {
    block
        .component(k)
        .chunks_exact(3)
        .map(|c| Vector3::new(c[0] as f64, c[1] as f64, c[2] as f64))
        .collect()
}

/// Root-mean-square vertex displacement of a field (mm).
fn rms(f: &[Vector3<f64>]) -> f64 {
    (f.iter().map(|d| d.norm_squared()).sum::<f64>() / f.len() as f64).sqrt()
}

/// The mirror image of a displacement field: (S u)(v) = M u(mirror(v)), M = diag(−1, 1, 1).
fn mirrored_field(f: &[Vector3<f64>], mirror: &[u32]) -> Vec<Vector3<f64>> {
    mirror
        .iter()
        .map(|&m| {
            let d = f[m as usize];
            Vector3::new(-d.x, d.y, d.z)
        })
        .collect()
}

fn distance(a: &[Vector3<f64>], b: &[Vector3<f64>]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(u, v)| (u - v).norm_squared())
        .sum::<f64>()
        .sqrt()
}

fn norm(a: &[Vector3<f64>]) -> f64 {
    a.iter().map(|u| u.norm_squared()).sum::<f64>().sqrt()
}

/// +1 for a mirror-symmetric component, −1 for an antisymmetric one, 0 for neither
/// (relative tolerance 1e-4: the fields are stored in f32).
fn parity(f: &[Vector3<f64>], mirror: &[u32]) -> i32 {
    let s = mirrored_field(f, mirror);
    let n = norm(f);
    let minus: Vec<Vector3<f64>> = f.iter().map(|d| -d).collect();
    if distance(&s, f) <= 1e-4 * n {
        1
    } else if distance(&s, &minus) <= 1e-4 * n {
        -1
    } else {
        0
    }
}

/// Undirected edges with the number of triangles using each.
fn edge_counts(triangles: &[[u32; 3]]) -> HashMap<(u32, u32), u32> {
    let mut edges = HashMap::new();
    for t in triangles {
        for e in 0..3 {
            let (a, b) = (t[e], t[(e + 1) % 3]);
            *edges.entry((a.min(b), a.max(b))).or_insert(0) += 1;
        }
    }
    edges
}

/// Vertices on no boundary edge, with their neighbours.
fn interior_neighbourhoods(n: usize, triangles: &[[u32; 3]]) -> Vec<(usize, Vec<usize>)> {
    let edges = edge_counts(triangles);
    let mut neighbours = vec![Vec::new(); n];
    let mut on_rim = vec![false; n];
    for (&(a, b), &count) in &edges {
        neighbours[a as usize].push(b as usize);
        neighbours[b as usize].push(a as usize);
        if count == 1 {
            on_rim[a as usize] = true;
            on_rim[b as usize] = true;
        }
    }
    neighbours
        .into_iter()
        .enumerate()
        .filter(|(v, _)| !on_rim[*v])
        .collect()
}

#[test]
fn template_is_a_real_sized_face() {
    let face = mean_face();
    assert!(face.n_vertices() >= 5000, "{} vertices", face.n_vertices());
    let (lo, hi) = face.bounding_box().unwrap();
    let size = hi - lo;
    // An adult face from ear to ear and from under the chin to the hairline.
    assert!((140.0..=160.0).contains(&size.x), "width {} mm", size.x);
    assert!((185.0..=215.0).contains(&size.y), "height {} mm", size.y);
    // From the nose tip back to where the cheeks turn toward the ears.
    assert!((60.0..=110.0).contains(&size.z), "depth {} mm", size.z);
    assert_eq!(builtin().name(), BUILTIN_MODEL_NAME);
}

#[test]
fn nose_tip_is_the_most_forward_point_on_the_midline() {
    let face = mean_face();
    let (tip, p) = face
        .vertices
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.z.total_cmp(&b.1.z))
        .unwrap();
    assert_eq!(p.x, 0.0);
    assert!((-10.0..=15.0).contains(&p.y), "nose tip at y = {}", p.y);
    assert_eq!(builtin().landmarks().nose_tip as usize, tip);
    // 20-35 mm in front of the cheeks at eye level (anthropometric nasal protrusion).
    let cheek = face
        .vertices
        .iter()
        .min_by(|a, b| {
            let d = |q: &&Point3<f64>| (q.x - 45.0).powi(2) + (q.y - 25.0).powi(2);
            d(a).total_cmp(&d(b))
        })
        .unwrap();
    let protrusion = p.z - cheek.z;
    assert!(
        (20.0..=40.0).contains(&protrusion),
        "nose protrudes {protrusion} mm"
    );
}

#[test]
fn landmarks_sit_where_anatomy_puts_them() {
    let face = mean_face();
    let FaceLandmarks {
        nose_tip,
        left_eye,
        right_eye,
        left_mouth_corner,
        right_mouth_corner,
        chin,
    } = *builtin().landmarks();
    let at = |v: u32| face.vertices[v as usize];
    let mirror = builtin().mirror_map();
    assert_eq!(mirror[left_eye as usize], right_eye);
    assert_eq!(mirror[left_mouth_corner as usize], right_mouth_corner);
    assert_eq!(mirror[nose_tip as usize], nose_tip);
    assert_eq!(mirror[chin as usize], chin);
    // Interpupillary distance of adults: 55-72 mm; +x is the subject's left.
    let eyes = at(left_eye).x - at(right_eye).x;
    assert!((55.0..=72.0).contains(&eyes), "eyes {eyes} mm apart");
    // Mouth width 40-60 mm; top to bottom: eyes, nose tip, mouth, chin.
    let mouth = at(left_mouth_corner).x - at(right_mouth_corner).x;
    assert!((40.0..=60.0).contains(&mouth), "mouth {mouth} mm wide");
    assert!(at(left_eye).y > at(nose_tip).y);
    assert!(at(nose_tip).y > at(left_mouth_corner).y);
    assert!(at(left_mouth_corner).y > at(chin).y);
    // Eyes sit in sockets behind the brow ridge above them.
    let brow = face
        .vertices
        .iter()
        .filter(|q| (q.x - at(left_eye).x).abs() < 1.5 && (q.y - at(left_eye).y - 15.0).abs() < 1.5)
        .map(|q| q.z)
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(
        brow - at(left_eye).z > 3.0,
        "brow {brow}, eye {}",
        at(left_eye).z
    );
}

#[test]
fn mean_face_and_triangulation_are_mirror_symmetric() {
    let face = mean_face();
    let mirror = builtin().mirror_map();
    assert_eq!(mirror.len(), face.n_vertices());
    for (v, &m) in mirror.iter().enumerate() {
        assert_eq!(
            mirror[m as usize] as usize, v,
            "mirror map is an involution"
        );
        let (p, q) = (face.vertices[v], face.vertices[m as usize]);
        assert!(
            (p.x + q.x).abs() <= 1e-6 && (p.y - q.y).abs() <= 1e-6 && (p.z - q.z).abs() <= 1e-6
        );
    }
    // The mirror of a counter-clockwise triangle, read backwards, is a triangle of the mesh.
    let canonical = |t: [u32; 3]| {
        let r = (0..3).min_by_key(|&i| t[i]).unwrap();
        [t[r], t[(r + 1) % 3], t[(r + 2) % 3]]
    };
    let set: std::collections::HashSet<[u32; 3]> =
        face.triangles.iter().map(|&t| canonical(t)).collect();
    for t in &face.triangles {
        let m = t.map(|v| mirror[v as usize]);
        assert!(
            set.contains(&canonical([m[0], m[2], m[1]])),
            "mirror of {t:?}"
        );
    }
}

#[test]
fn mesh_is_a_valid_oriented_manifold() {
    let face = mean_face();
    let n = face.n_vertices();
    let checked = Mesh::new(face.vertices.clone(), face.triangles.clone()).unwrap();
    assert_eq!(checked, face);
    // Every vertex is used; every edge has one or two triangles, consistently oriented (each
    // directed edge at most once).
    let mut used = vec![false; n];
    face.triangles
        .iter()
        .flatten()
        .for_each(|&v| used[v as usize] = true);
    assert!(used.iter().all(|&u| u));
    assert!(
        edge_counts(&face.triangles)
            .values()
            .all(|&c| c == 1 || c == 2)
    );
    let mut directed = std::collections::HashSet::new();
    for t in &face.triangles {
        for e in 0..3 {
            assert!(
                directed.insert((t[e], t[(e + 1) % 3])),
                "edge of {t:?} twice"
            );
        }
    }
    // No degenerate triangle: the rim rule keeps every xy area ≥ 0.05 h² = 0.2 mm².
    let areas = face.triangle_areas();
    let smallest = areas.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(smallest >= 0.2, "smallest triangle {smallest} mm²");
}

#[test]
fn mean_face_is_smooth_and_faces_forward() {
    let face = mean_face();
    // A height field over counter-clockwise triangles: every normal points to +z.
    let normals = face.triangle_normals();
    assert!(normals.iter().all(|n| n.z > 0.0));
    // Adjacent triangles: the angle between normals is about curvature × edge length. For
    // reference, the ICT-FaceKit mean face (2.8 mm edges, a real scan) has a median of 3.2°,
    // a 99th percentile of 41° and creases up to 170° (eyes, nostrils, mouth). The built-in
    // face must be at least as smooth, and nowhere folded back on itself.
    let mut by_edge: HashMap<(u32, u32), Vec<usize>> = HashMap::new();
    for (t, tri) in face.triangles.iter().enumerate() {
        for e in 0..3 {
            let (a, b) = (tri[e], tri[(e + 1) % 3]);
            by_edge.entry((a.min(b), a.max(b))).or_default().push(t);
        }
    }
    let mut angles: Vec<f64> = by_edge
        .values()
        .filter(|ts| ts.len() == 2)
        .map(|ts| normals[ts[0]].angle(&normals[ts[1]]).to_degrees())
        .collect();
    angles.sort_by(f64::total_cmp);
    let median = angles[angles.len() / 2];
    let p99 = angles[angles.len() * 99 / 100];
    let max = angles[angles.len() - 1];
    assert!(median < 3.2, "median {median}°");
    assert!(p99 < 41.0, "99th percentile {p99}°");
    assert!(max < 90.0, "largest {max}°");
}

#[test]
fn variance_profile_matches_real_face_models() {
    let model = builtin().model();
    let (shape, expression) = (model.shape(), model.expression());
    assert!(shape.n_components() >= 40);
    assert_eq!(expression.n_components(), N_FACIAL_ACTIONS);
    for block in [shape, expression] {
        let v = block.variance();
        assert!(v.windows(2).all(|w| w[0] >= w[1]), "variances sorted");
        assert!(v.iter().all(|&l| l > 0.0));
    }
    // BFM 2019 and ICT-FaceKit: the first shape component moves a vertex ~3 mm RMS, the first
    // expression component ~5 mm.
    let first_shape = rms(&field(shape, 0));
    let first_expression = rms(&field(expression, 0));
    assert!((2.0..=5.0).contains(&first_shape), "{first_shape} mm");
    assert!(
        (3.0..=8.0).contains(&first_expression),
        "{first_expression} mm"
    );
    // The paper samples 10 shape and 7 expression coefficients: those must carry most of
    // the variance (ICT-FaceKit: 89 % and 90 %).
    let share = |v: &[f64], k: usize| v[..k].iter().sum::<f64>() / v.iter().sum::<f64>();
    assert!(
        share(shape.variance(), 10) >= 0.8,
        "{}",
        share(shape.variance(), 10)
    );
    assert!(share(expression.variance(), 7) >= 0.8);
    // Zero-mean expressions: the mean face is the template.
    assert!(expression.mean().iter().all(|&m| m == 0.0));
    assert!(shape.noise_variance() >= 0.0 && shape.noise_variance() < shape.variance()[0]);
}

#[test]
fn components_are_orthonormal_once_unscaled() {
    let model = builtin().model();
    for block in [model.shape(), model.expression()] {
        let k = block.n_components();
        let unit: Vec<Vec<f64>> = (0..k)
            .map(|c| {
                let s = block.variance()[c].sqrt();
                block.component(c).iter().map(|&x| x as f64 / s).collect()
            })
            .collect();
        for i in 0..k {
            for j in 0..=i {
                let dot: f64 = unit[i].iter().zip(&unit[j]).map(|(a, b)| a * b).sum();
                let expected = if i == j { 1.0 } else { 0.0 };
                assert!((dot - expected).abs() < 1e-4, "<u{i}, u{j}> = {dot}");
            }
        }
    }
}

#[test]
fn rigid_motion_is_projected_out_of_shape() {
    let model = builtin().model();
    let face = mean_face();
    let n = face.n_vertices() as f64;
    let centre = face
        .vertices
        .iter()
        .fold(Vector3::zeros(), |a, p| a + p.coords)
        / n;
    for k in 0..model.n_shape() {
        let f = field(model.shape(), k);
        // By Cauchy–Schwarz |Σ u| ≤ √N‖u‖ and |Σ (p − c) × u| ≤ √N‖u‖·max|p − c| (≈ 100 mm);
        // a projected component stays below 1e-4 of them (f32 storage); a large-scale field
        // with its rigid part left in reaches order 1.
        let scale = norm(&f) * n.sqrt();
        // Orthogonal to the translations: zero mean displacement.
        let translation: Vector3<f64> = f.iter().sum();
        // Orthogonal to the infinitesimal rotations ω × (p − c): Σ (p − c) × u = 0.
        let rotation: Vector3<f64> = face
            .vertices
            .iter()
            .zip(&f)
            .map(|(p, u)| (p.coords - centre).cross(u))
            .sum();
        assert!(
            translation.norm() < 1e-4 * scale,
            "component {k}: {translation:?}"
        );
        assert!(
            rotation.norm() < 1e-4 * scale * 100.0,
            "component {k}: {rotation:?}"
        );
    }
}

#[test]
fn every_component_is_symmetric_or_antisymmetric_and_symmetry_dominates() {
    let model = builtin().model();
    let mirror = builtin().mirror_map();
    for block in [model.shape(), model.expression()] {
        let parities: Vec<i32> = (0..block.n_components())
            .map(|k| parity(&field(block, k), mirror))
            .collect();
        assert!(!parities.contains(&0), "{parities:?}");
        // Symmetric variation carries (1 + ρ)/(1 − ρ) = 9 times the antisymmetric variance
        // per mode (ρ = 0.8); people's expressions are mostly symmetric too.
        let v = block.variance();
        let symmetric: f64 = v
            .iter()
            .zip(&parities)
            .filter(|(_, p)| **p == 1)
            .map(|(l, _)| l)
            .sum();
        let share = symmetric / v.iter().sum::<f64>();
        assert!(share > 0.75, "symmetric share {share}");
    }
    // The leading shape component is symmetric.
    assert_eq!(parity(&field(model.shape(), 0), mirror), 1);
}

fn parities(block: &PcaBlock, mirror: &[u32]) -> Vec<f64> {
    (0..block.n_components())
        .map(|k| parity(&field(block, k), mirror) as f64)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// The mirror image of any face of the model is in the model: mirroring flips the sign of
    /// the antisymmetric coefficients and keeps the rest.
    #[test]
    fn mirror_image_of_any_face_is_in_the_model(
        shape in prop::collection::vec(-3.0..3.0f64, 50),
        expression in prop::collection::vec(-3.0..3.0f64, N_FACIAL_ACTIONS),
    ) {
        let face = builtin();
        let mirror = face.mirror_map();
        let model = face.model();
        let signed = |c: &[f64], p: Vec<f64>| -> Vec<f64> {
            c.iter().zip(p).map(|(a, s)| a * s).collect()
        };
        let original = face.instance(&shape, &expression).unwrap();
        let flipped = face
            .instance(
                &signed(&shape, parities(model.shape(), mirror)),
                &signed(&expression, parities(model.expression(), mirror)),
            )
            .unwrap();
        for (v, &m) in mirror.iter().enumerate() {
            let p = original.vertices[m as usize];
            let q = flipped.vertices[v];
            prop_assert!((Point3::new(-p.x, p.y, p.z) - q).norm() < 2e-3);
        }
    }
}

#[test]
fn components_are_smooth_fields() {
    // On this grid the umbrella Laplacian u_v − mean(u_neighbours) is ≈ (h²/3)(∇²u + u_xy),
    // so its RMS over the field's RMS is ≈ (h²/3)·√E|ω|⁴ over the field's spectrum. A
    // Gaussian-kernel field of length ℓ has E|ω|⁴ = 32/ℓ⁴: 0.05 for the finest shape term
    // (ℓ = 12 mm, h = 2 mm). The narrowest facial action, the eyelid bump (σ = 11 × 4.5 mm),
    // has E|ω|⁴ = 3/σx⁴ + 3/σy⁴ + 2/(σx σy)²: 0.12. Bounds with headroom: 0.1 and 0.2.
    let model = builtin().model();
    let interior = interior_neighbourhoods(model.n_vertices(), builtin().triangles());
    let blocks = [
        ("shape", model.shape(), 0.1),
        ("expression", model.expression(), 0.2),
    ];
    for (name, block, bound) in blocks {
        for k in 0..block.n_components() {
            let f = field(block, k);
            let laplacian: f64 = interior
                .iter()
                .map(|(v, nb)| {
                    let mean = nb.iter().map(|&u| f[u]).sum::<Vector3<f64>>() / nb.len() as f64;
                    (f[*v] - mean).norm_squared()
                })
                .sum::<f64>();
            let ratio = (laplacian / interior.len() as f64).sqrt() / rms(&f);
            assert!(
                ratio < bound,
                "{name} component {k}: Laplacian / field = {ratio}"
            );
        }
    }
}

#[test]
fn jaw_opening_is_the_leading_expression() {
    // The first expression component moves the chin more than anything above the mouth.
    let face = builtin();
    let f = field(face.model().expression(), 0);
    let mean = mean_face();
    let lm = face.landmarks();
    let chin = f[lm.chin as usize].norm();
    let forehead = mean
        .vertices
        .iter()
        .zip(&f)
        .filter(|(p, _)| p.y > 40.0)
        .map(|(_, d)| d.norm())
        .fold(0.0, f64::max);
    assert!(chin > 5.0, "chin moves {chin} mm");
    assert!(forehead < 0.2 * chin, "forehead moves {forehead} mm");
}

#[test]
fn builds_are_deterministic_and_cached() {
    let again = BuiltinModel::build(&ValidBuiltinConfig::default()).unwrap();
    let cached = builtin().model();
    assert_eq!(again.model().shape(), cached.shape());
    assert_eq!(again.model().expression(), cached.expression());
    assert_eq!(again.triangles(), cached.triangles());
    assert!(std::ptr::eq(builtin(), builtin()));
}

#[test]
fn custom_configurations_build_with_their_own_name() {
    let config = BuiltinConfig {
        grid_spacing_mm: 4.0,
        inducing_spacing_mm: 8.0,
        n_shape: 20,
        n_expression: 5,
        ..Default::default()
    };
    let name = config.model_name();
    assert_ne!(name, BUILTIN_MODEL_NAME);
    assert!(name.starts_with(BUILTIN_MODEL_NAME));
    let model = BuiltinModel::build(&config.clone().check().unwrap()).unwrap();
    assert_eq!(model.name(), name);
    assert_eq!((model.n_shape(), model.n_expression()), (20, 5));
    // A quarter of the vertices of the 2 mm grid, give or take the rim.
    let ratio = builtin().n_vertices() as f64 / model.n_vertices() as f64;
    assert!((3.6..=4.4).contains(&ratio), "{ratio}");
    assert_eq!(model.config(), &config);
}

#[test]
fn full_symmetry_weight_gives_only_symmetric_shapes() {
    // ρ = 1: the antisymmetric part of the process has zero variance.
    let config = BuiltinConfig {
        grid_spacing_mm: 4.0,
        inducing_spacing_mm: 8.0,
        symmetry: 1.0,
        n_shape: 20,
        n_expression: 3,
        ..Default::default()
    };
    let model = BuiltinModel::build(&config.check().unwrap()).unwrap();
    let shape = model.model().shape();
    assert_eq!(shape.n_components(), 20);
    for k in 0..20 {
        assert_eq!(
            parity(&field(shape, k), model.mirror_map()),
            1,
            "component {k}"
        );
    }
}

#[test]
fn asking_for_more_components_than_the_kernel_has_is_an_error() {
    let config = BuiltinConfig {
        grid_spacing_mm: 10.0,
        inducing_spacing_mm: 50.0,
        n_shape: 400,
        ..Default::default()
    };
    let err = BuiltinModel::build(&config.check().unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            MorphableError::Config {
                name: "n_shape",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn invalid_configurations_are_rejected_by_name() {
    let base = BuiltinConfig::default;
    let cases: Vec<(BuiltinConfig, &str)> = vec![
        (
            BuiltinConfig {
                grid_spacing_mm: 0.0,
                ..base()
            },
            "grid_spacing_mm",
        ),
        (
            BuiltinConfig {
                grid_spacing_mm: f64::NAN,
                ..base()
            },
            "grid_spacing_mm",
        ),
        (
            BuiltinConfig {
                inducing_spacing_mm: 1.0,
                ..base()
            },
            "inducing_spacing_mm",
        ),
        (
            BuiltinConfig {
                symmetry: 1.5,
                ..base()
            },
            "symmetry",
        ),
        (
            BuiltinConfig {
                affine_std: -0.1,
                ..base()
            },
            "affine_std",
        ),
        (
            BuiltinConfig {
                kernel: vec![],
                ..base()
            },
            "kernel",
        ),
        (
            BuiltinConfig {
                kernel: vec![KernelTerm {
                    variance_mm2: -1.0,
                    length_mm: 50.0,
                }],
                ..base()
            },
            "kernel",
        ),
        (
            BuiltinConfig {
                kernel: vec![KernelTerm {
                    variance_mm2: 0.0,
                    length_mm: 50.0,
                }],
                affine_std: 0.0,
                ..base()
            },
            "kernel",
        ),
        (
            BuiltinConfig {
                n_shape: 0,
                ..base()
            },
            "n_shape",
        ),
        (
            BuiltinConfig {
                n_expression: N_FACIAL_ACTIONS + 1,
                ..base()
            },
            "n_expression",
        ),
    ];
    for (config, expected) in cases {
        match config.clone().check() {
            Err(MorphableError::Config { name, .. }) => assert_eq!(name, expected, "{config:?}"),
            other => panic!("{config:?} gave {other:?}"),
        }
    }
}

proptest! {
    #[test]
    fn symmetry_outside_the_unit_interval_is_rejected(rho in prop_oneof![-1e3..-1e-9f64, 1.0 + 1e-9..1e3f64]) {
        let config = BuiltinConfig { symmetry: rho, ..Default::default() };
        let rejected = matches!(config.check(), Err(MorphableError::Config { name: "symmetry", .. }));
        prop_assert!(rejected);
    }
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<BuiltinModel>();
    check::<BuiltinConfig>();
    check::<ValidBuiltinConfig>();
    check::<FaceLandmarks>();
}
