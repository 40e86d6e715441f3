//! The converged forward model through the whole imaging chain, on the `tiny` preset's imaging
//! (unpooled 48 × 48 images): images that depend on the face, not on how the surface integral
//! is evaluated (docs/physics.md §3.4–§3.5).

use abs_fit::{FaceParams, PhysicsRenderer, Preset, RenderParams};
use backproject::ImageProducts;
use morphable::Pose;
use morphable::builtin::builtin;
use radar_sim::{CoherentIntegral, ConvergedSurface, HitDensity, SurfaceModel};

/// A posed face with shape and expression, material `m`.
fn face(m: f64) -> FaceParams {
    let mut shape = vec![0.0; 10];
    shape[..3].copy_from_slice(&[1.5, -1.0, 0.5]);
    let mut expression = vec![0.0; 5];
    expression[..2].copy_from_slice(&[1.0, -0.5]);
    FaceParams {
        shape,
        expression,
        pose: Pose {
            yaw: 0.07,
            pitch: -0.1,
            ..Pose::identity()
        },
        render: RenderParams {
            material: m,
            antenna_cm: 0.25,
            dynamic_range_db: 20.0,
        },
    }
}

/// The unpooled images of `face` under `surface`, hits at `spacing_m`, and the two seeds.
fn images(
    face: &FaceParams,
    surface: SurfaceModel,
    spacing_m: f64,
    sampling_seed: u64,
    surface_seed: u64,
) -> ImageProducts {
    let mut config = Preset::Tiny.dataset().unwrap();
    config.imaging.pool = 1;
    config.imaging.simulation.surface = surface;
    config.imaging.simulation.hits = HitDensity::Spacing(spacing_m);
    let renderer = PhysicsRenderer::new(builtin(), config.layout, config.imaging).unwrap();
    renderer
        .render_face_seeded(face, sampling_seed, surface_seed)
        .unwrap()
        .products
}

/// Pearson correlation of the dB level images over the pixels where either is above −20 dB.
fn correlation(a: &ImageProducts, b: &ImageProducts) -> f64 {
    (a.level_db().correlation(b.level_db(), -20.0))
        .unwrap()
        .expect("bright pixels to correlate")
}

#[test]
fn converged_images_do_not_depend_on_the_sampling() {
    let converged = SurfaceModel::default();
    let dense = SurfaceModel::Converged(ConvergedSurface {
        coherent: CoherentIntegral::Hits,
        ..ConvergedSurface::default()
    });
    for m in [0.0, 0.5, 1.0] {
        let face = face(m);
        let a = images(&face, converged, 0.003, 1, 9);
        // Another sampling seed: only the 30 dB noise changes.
        let b = images(&face, converged, 0.003, 2, 9);
        let seeds = correlation(&a, &b);
        assert!(
            seeds >= 0.98,
            "m = {m}: two sampling seeds correlate {seeds}"
        );
        // The same surface integrated by 0.5 mm random hits instead of facets.
        let reference = images(&face, dense, 0.0005, 3, 9);
        let against = correlation(&a, &reference);
        assert!(
            against >= 0.97,
            "m = {m}: facets vs dense hits correlate {against}"
        );
        let depth =
            (a.median_depth_difference(&reference, -20.0).unwrap()).expect("pixels bright in both");
        assert!(
            depth <= 0.5e-3,
            "m = {m}: depths differ by {depth} m (median)"
        );
        // The surface seed is the physical speckle: it changes a diffuse image.
        if m < 1.0 {
            let other = images(&face, converged, 0.003, 1, 10);
            assert!(
                correlation(&a, &other) < 0.95,
                "m = {m}: surface seed had no effect"
            );
        }
    }
}

#[test]
fn the_paper_like_sampled_model_depends_on_the_sampling() {
    // The control: the same comparison in the sampled model at the presets' 3 mm.
    let face = face(0.5);
    let a = images(&face, SurfaceModel::Sampled, 0.003, 1, 9);
    let b = images(&face, SurfaceModel::Sampled, 0.003, 2, 9);
    let seeds = correlation(&a, &b);
    assert!(seeds < 0.9, "sampled model: two seeds correlate {seeds}");
}

#[test]
fn the_material_factor_still_matters() {
    // More specular, fewer bright pixels: the diffuse field lights the whole face, the coherent
    // part only its glints (docs/physics.md §3.4). Averaged over 3 surface seeds.
    let fractions: Vec<f64> = [0.0, 0.5, 0.9, 1.0]
        .iter()
        .map(|&m| {
            (0..3)
                .map(|seed| {
                    images(&face(m), SurfaceModel::default(), 0.003, 1, seed)
                        .level_db()
                        .fraction_above(-20.0)
                })
                .sum::<f64>()
                / 3.0
        })
        .collect();
    for pair in fractions.windows(2) {
        assert!(
            pair[1] <= pair[0] + 0.01,
            "not monotone in m: {fractions:?}"
        );
    }
    assert!(
        fractions[0] > 2.0 * fractions[3],
        "m = 0 and m = 1 look alike: {fractions:?}"
    );
}

#[test]
fn the_expected_image_over_surface_seeds_converges() {
    let mut config = Preset::Tiny.dataset().unwrap();
    config.imaging.pool = 1;
    let renderer = PhysicsRenderer::new(builtin(), config.layout, config.imaging).unwrap();
    let face = face(0.3);
    // One seed is that rendering.
    let one = renderer.expected_products(&face, 1, 4..5).unwrap();
    let single = renderer.render_face_seeded(&face, 1, 4).unwrap().products;
    assert!(correlation(&one, &single) > 0.9999);
    // Two disjoint sets of seeds agree better the more seeds each holds: the speckle averages
    // out toward E|V|².
    let agreement = |k: u64| {
        let a = renderer.expected_products(&face, 1, 0..k).unwrap();
        let b = renderer.expected_products(&face, 1, 100..100 + k).unwrap();
        correlation(&a, &b)
    };
    let (few, many) = (agreement(1), agreement(6));
    assert!(many > few + 0.05, "1 seed: {few}, 6 seeds: {many}");
    assert!(renderer.expected_products(&face, 1, 3..3).is_err());
}
