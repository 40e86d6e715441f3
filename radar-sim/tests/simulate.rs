//! The simulator end to end: fast against direct, determinism, noise, masks, sampling,
//! visibility and bad input.

use nalgebra::{Point3, Vector3};
use radar_sim::{
    ArrayGeometry, BoundaryArray, ChannelMask, CustomArray, ElementPattern, FrequencySweep,
    HitDensity, Material, PointScatterer, Qar50, RadarError, Scene, SignalCube, SimulationConfig,
    Simulator, SumMethod, Surface,
};

use crate::common::{face_stand_in, noiseless, plate, point, sampled};

fn reduced_qar50(factor: usize) -> CustomArray {
    CustomArray::decimated(&Qar50::new(), factor).unwrap()
}

fn sweep(steps: usize) -> FrequencySweep {
    FrequencySweep::new(72e9, 82e9, steps).unwrap()
}

fn run(
    array: &dyn ArrayGeometry,
    steps: usize,
    scene: &Scene,
    config: SimulationConfig,
) -> radar_sim::SimulationReport {
    Simulator::new(array, sweep(steps), config)
        .unwrap()
        .simulate(scene)
        .unwrap()
}

#[test]
fn fast_agrees_with_direct_on_a_face_sized_scene() {
    let array = reduced_qar50(6);
    let scene = Scene::from_surface(face_stand_in())
        .with_point(PointScatterer::new(Point3::new(0.09, 0.0, 0.27), 1e-5).unwrap());
    // Lambertian, the default mix, purely specular, and odd and fractional exponents (the
    // fast path has a separate branch for each).
    let materials = [
        (0.0, 50.0),
        (0.5, 50.0),
        (1.0, 50.0),
        (0.7, 7.0),
        (0.7, 12.5),
    ];
    for (m, exponent) in materials {
        let config = SimulationConfig {
            material: Material::with_exponent(m, exponent).unwrap(),
            hits: HitDensity::Spacing(0.003),
            ..sampled()
        };
        let fast = Simulator::new(&array, sweep(16), config).unwrap();
        let direct = Simulator::new(
            &array,
            sweep(16),
            SimulationConfig {
                method: SumMethod::Direct,
                ..config
            },
        )
        .unwrap();
        let sample = fast.sample(&scene).unwrap();
        assert!(sample.hits.len() > 3000, "{} hits", sample.hits.len());
        let f = fast.simulate_sample(&sample).unwrap();
        let d = direct.simulate_sample(&sample).unwrap();
        let error = f.cube.relative_error(&d.cube).unwrap();
        assert!(
            error <= 1e-4,
            "m = {m}, n_s = {exponent}: relative error {error:e}"
        );
        assert_eq!(
            (f.stats.method, d.stats.method),
            (SumMethod::Fast, SumMethod::Direct)
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_signal_whatever_the_thread_count() {
    let array = reduced_qar50(4);
    let scene = Scene::from_surface(face_stand_in());
    for method in [SumMethod::Fast, SumMethod::Direct] {
        let config = SimulationConfig {
            method,
            seed: 7,
            hits: HitDensity::Count(500),
            ..SimulationConfig::default()
        };
        let with_threads = |n: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap();
            pool.install(|| run(&array, 8, &scene, config))
        };
        let one = with_threads(1);
        let three = with_threads(3);
        assert_eq!(one.cube, three.cube, "{method:?}");
        assert!(one.stats.noise_power > 0.0);
        let other_seed = run(&array, 8, &scene, SimulationConfig { seed: 8, ..config });
        assert_ne!(one.cube, other_seed.cube);
    }
}

#[test]
fn noise_has_the_requested_snr() {
    let array = reduced_qar50(4);
    let scene = Scene::from_surface(face_stand_in());
    let base = SimulationConfig {
        hits: HitDensity::Count(800),
        ..noiseless()
    };
    let clean = run(&array, 16, &scene, base);
    let noisy = run(
        &array,
        16,
        &scene,
        SimulationConfig {
            snr_db: Some(20.0),
            ..base
        },
    );
    let noise = noisy.cube.data() - clean.cube.data();
    let n = noise.len() as f64;
    let power = noise.iter().map(|z| z.norm_sqr() as f64).sum::<f64>() / n;
    let signal = clean
        .cube
        .data()
        .iter()
        .map(|z| z.norm_sqr() as f64)
        .sum::<f64>()
        / n;
    approx::assert_relative_eq!(noisy.stats.signal_power, signal, max_relative = 1e-9);
    approx::assert_relative_eq!(noisy.stats.noise_power, signal / 100.0, max_relative = 1e-9);
    // 9 216 samples: the power estimate has a relative spread of about 1 %.
    approx::assert_relative_eq!(power, signal / 100.0, max_relative = 0.05);
    // Circular: real and imaginary parts carry half the power each.
    let re = noise.iter().map(|z| (z.re as f64).powi(2)).sum::<f64>() / n;
    approx::assert_relative_eq!(re, power / 2.0, max_relative = 0.05);
}

#[test]
fn dead_channels_read_zero_and_the_others_are_untouched() {
    let mask = ChannelMask::all_alive(24, 24)
        .with_dead_tx(1)
        .unwrap()
        .with_dead_channel(2, 3)
        .unwrap();
    let full = reduced_qar50(4);
    let masked = full.clone().with_mask(mask.clone()).unwrap();
    let scene = Scene::from_surface(face_stand_in());
    let config = SimulationConfig {
        hits: HitDensity::Count(400),
        ..noiseless()
    };
    for method in [SumMethod::Fast, SumMethod::Direct] {
        let config = SimulationConfig { method, ..config };
        let a = run(&full, 4, &scene, config);
        let b = run(&masked, 4, &scene, config);
        for ((t, r, f), v) in b.cube.data().indexed_iter() {
            let expected = if mask.is_alive(t, r) {
                a.cube.data()[[t, r, f]]
            } else {
                num_complex::Complex32::new(0.0, 0.0)
            };
            assert_eq!(*v, expected, "channel ({t}, {r}), {method:?}");
        }
        // With noise, dead channels still read exactly zero.
        let noisy = run(
            &masked,
            4,
            &scene,
            SimulationConfig {
                snr_db: Some(10.0),
                ..config
            },
        );
        assert!(
            noisy
                .cube
                .data()
                .slice(ndarray::s![1, .., ..])
                .iter()
                .all(|v| v.norm() == 0.0)
        );
    }
}

#[test]
fn default_hits_sample_the_surface_at_2_mm_or_finer() {
    let face = face_stand_in();
    let area = face.area_m2();
    let sim = Simulator::new(&Qar50::new(), sweep(2), sampled()).unwrap();
    let sample = sim.sample(&Scene::from_surface(face)).unwrap();
    assert_eq!(
        sample.hits_sampled,
        (area / 0.002f64.powi(2)).ceil() as usize
    );
    assert!(sample.hit_spacing_m() <= 0.002);
    approx::assert_relative_eq!(sample.surface_area_m2, area);
    // Each hit weighs area/count: the weights add up to the area.
    let weights: f64 = sample.hits.iter().map(|h| h.area_m2).sum::<f64>()
        + sample.hits_hidden as f64 * area / sample.hits_sampled as f64;
    approx::assert_relative_eq!(weights, area, max_relative = 1e-12);
}

#[test]
fn hits_are_stratified_by_area_and_lie_on_the_surface() {
    // Two triangles of equal area: 101 hits split 50/51.
    let plate = plate(Point3::new(0.0, 0.0, 0.3), 0.04);
    let config = SimulationConfig {
        hits: HitDensity::Count(101),
        ..sampled()
    };
    let sim = Simulator::new(&Qar50::new(), sweep(2), config).unwrap();
    let sample = sim.sample(&Scene::from_surface(plate)).unwrap();
    assert_eq!(sample.hits.len(), 101);
    // Triangle [0, 1, 2] is the half below the diagonal y = x.
    let below = sample
        .hits
        .iter()
        .filter(|h| h.position.y < h.position.x)
        .count();
    assert!(below == 50 || below == 51, "{below}");
    for h in &sample.hits {
        approx::assert_relative_eq!(h.position.z, 0.3, max_relative = 1e-12);
        assert!(h.position.x.abs() <= 0.02 && h.position.y.abs() <= 0.02);
        approx::assert_relative_eq!(h.area_m2, 0.04 * 0.04 / 101.0, max_relative = 1e-12);
    }
}

#[test]
fn hidden_hits_are_dropped_and_counted() {
    // A 3 cm plate at 30 cm lies wholly in the shadow of a 5 cm plate at 20 cm (seen from the
    // centre, 0.015/0.3 < 0.025/0.2). Areas 9 and 25 cm²: 340 hits split 90/250 (± 1).
    let scene = Scene::from_surface(plate(Point3::new(0.0, 0.0, 0.2), 0.05))
        .with_surface(plate(Point3::new(0.0, 0.0, 0.3), 0.03));
    let config = SimulationConfig {
        hits: HitDensity::Count(340),
        ..sampled()
    };
    let report = run(&Qar50::new(), 2, &scene, config);
    assert!(
        (89..=91).contains(&report.stats.hits_hidden),
        "{}",
        report.stats.hits_hidden
    );
    assert_eq!(report.stats.hits_used + report.stats.hits_hidden, 340);
    assert!(report.stats.hits_used > 0);
    // The converged model's facets: at 82 GHz and n_s = 50 the longest facet edge is 6 mm,
    // so the 5 cm plate's triangles (hypotenuse 70.7 mm) are split 4 times (4.4 mm) into 256
    // pieces each, the 3 cm plate's (42.4 mm) 3 times (5.3 mm) into 64: all 128 hidden.
    let report = run(&Qar50::new(), 2, &scene, noiseless());
    assert_eq!(
        (report.stats.facets_used, report.stats.facets_hidden),
        (512, 128)
    );
}

#[test]
fn normals_face_the_array_whatever_the_winding() {
    let face = face_stand_in();
    let flipped = Surface::new(
        face.vertices().to_vec(),
        face.triangles()
            .iter()
            .map(|[a, b, c]| [*a, *c, *b])
            .collect(),
    )
    .unwrap();
    let sim = Simulator::new(&Qar50::new(), sweep(2), noiseless()).unwrap();
    for surface in [face, flipped] {
        let sample = sim.sample(&Scene::from_surface(surface)).unwrap();
        assert!(
            sample
                .hits
                .iter()
                .all(|h| h.normal.dot(&(Point3::origin() - h.position)) >= 0.0)
        );
        assert!(
            sample
                .hits
                .iter()
                .all(|h| (h.normal.norm() - 1.0).abs() < 1e-12)
        );
    }
}

#[test]
fn degenerate_triangles_are_skipped_and_counted() {
    let good = plate(Point3::new(0.0, 0.0, 0.3), 0.04);
    let mut vertices = good.vertices().to_vec();
    vertices.push(Point3::new(0.0, -0.02, 0.3)); // on the edge from vertex 0 to vertex 1
    let mut triangles = good.triangles().to_vec();
    // A repeated corner, a point, and a collinear triple.
    triangles.extend([[0, 0, 1], [2, 2, 2], [0, 4, 1]]);
    let with_bad = Surface::new(vertices, triangles).unwrap();
    let config = SimulationConfig {
        hits: HitDensity::Count(200),
        ..noiseless()
    };
    let clean = run(&Qar50::new(), 2, &Scene::from_surface(good), config);
    let report = run(&Qar50::new(), 2, &Scene::from_surface(with_bad), config);
    assert_eq!(report.stats.degenerate_triangles, 3);
    assert_eq!(clean.stats.degenerate_triangles, 0);
    assert_eq!(report.cube, clean.cube);
}

#[test]
fn a_hit_budget_over_the_memory_limit_is_refused() {
    let scene = Scene::from_surface(plate(Point3::new(0.0, 0.0, 0.3), 0.1));
    // 1 µm spacing on 100 cm²: 10^10 hits.
    let config = SimulationConfig {
        hits: HitDensity::Spacing(1e-6),
        ..sampled()
    };
    let sim = Simulator::new(&Qar50::new(), sweep(2), config).unwrap();
    assert!(matches!(
        sim.simulate(&scene),
        Err(RadarError::Memory { .. })
    ));
    // A modest budget under a tiny limit.
    let config = SimulationConfig {
        memory_limit_bytes: 1 << 20,
        ..noiseless()
    };
    let sim = Simulator::new(&Qar50::new(), sweep(128), config).unwrap();
    match sim.simulate(&scene) {
        Err(RadarError::Memory {
            needed_bytes,
            limit_bytes,
            ..
        }) => assert!(needed_bytes > limit_bytes),
        other => panic!("expected a memory error, got {other:?}"),
    }
}

#[test]
fn scenes_must_lie_in_front_of_the_array() {
    let sim = Simulator::new(&Qar50::new(), sweep(2), noiseless()).unwrap();
    for z in [0.0, -0.2] {
        assert!(matches!(
            sim.simulate(&point(Point3::new(0.0, 0.0, z), 1.0)),
            Err(RadarError::Config { .. })
        ));
        let behind = Scene::from_surface(plate(Point3::new(0.0, 0.0, z), 0.01));
        assert!(matches!(
            sim.simulate(&behind),
            Err(RadarError::Config { .. })
        ));
    }
}

#[test]
fn non_finite_scenes_are_typed_errors() {
    let nan = Point3::new(0.0, f64::NAN, 0.3);
    assert!(matches!(
        PointScatterer::new(nan, 1.0),
        Err(RadarError::Config { .. })
    ));
    assert!(PointScatterer::new(Point3::new(0.0, 0.0, 0.3), f64::INFINITY).is_err());
    let good = Point3::new(0.0, 0.0, 0.3);
    assert!(matches!(
        Surface::new(vec![good, good, nan], vec![[0, 1, 2]]),
        Err(RadarError::Config { .. })
    ));
    assert!(Surface::new(vec![good], vec![[0, 1, 2]]).is_err());
    assert!(Surface::ellipsoid_cap(good, Vector3::new(0.1, f64::NAN, 0.1), 1.0, 4, 8).is_err());
}

#[test]
fn hand_edited_samples_are_checked() {
    let converged = Simulator::new(&Qar50::new(), sweep(2), noiseless()).unwrap();
    let scene = Scene::from_surface(plate(Point3::new(0.0, 0.0, 0.3), 0.02));
    let mut sample = converged.sample(&scene).unwrap();
    sample.facets[0].normal *= 2.0;
    assert!(converged.simulate_sample(&sample).is_err());
    let mut sample = converged.sample(&scene).unwrap();
    sample.facets[1].offsets[0].x = f64::INFINITY;
    assert!(converged.simulate_sample(&sample).is_err());
    let sim = Simulator::new(&Qar50::new(), sweep(2), sampled()).unwrap();
    let scene = Scene::from_surface(plate(Point3::new(0.0, 0.0, 0.3), 0.02));
    let mut sample = sim.sample(&scene).unwrap();
    sample.hits[3].position.z = f64::NAN;
    assert!(matches!(
        sim.simulate_sample(&sample),
        Err(RadarError::Config { .. })
    ));
    let mut sample = sim.sample(&scene).unwrap();
    sample.hits[0].normal *= 2.0;
    assert!(sim.simulate_sample(&sample).is_err());
}

#[test]
fn bad_settings_are_typed_errors() {
    let bad = [
        SimulationConfig {
            hits: HitDensity::Spacing(0.0),
            ..noiseless()
        },
        SimulationConfig {
            hits: HitDensity::Spacing(f64::NAN),
            ..noiseless()
        },
        SimulationConfig {
            hits: HitDensity::Count(0),
            ..noiseless()
        },
        SimulationConfig {
            roughness_m: -1e-3,
            ..noiseless()
        },
        SimulationConfig {
            snr_db: Some(f64::NAN),
            ..noiseless()
        },
        SimulationConfig {
            memory_limit_bytes: 0,
            ..noiseless()
        },
        SimulationConfig {
            material: Material {
                factor: 2.0,
                exponent: 50.0,
            },
            ..noiseless()
        },
        SimulationConfig {
            pattern: ElementPattern::Sinc {
                antenna_size_cm: -1.0,
            },
            ..noiseless()
        },
    ];
    for config in bad {
        assert!(
            matches!(
                Simulator::new(&Qar50::new(), sweep(2), config),
                Err(RadarError::Config { .. })
            ),
            "{config:?} accepted"
        );
    }
}

#[test]
fn an_empty_scene_gives_a_zero_signal() {
    let report = run(&Qar50::new(), 4, &Scene::new(), SimulationConfig::default());
    assert!(report.cube.data().iter().all(|v| v.norm() == 0.0));
    assert_eq!(
        (report.stats.hits_sampled, report.stats.signal_power),
        (0, 0.0)
    );
}

#[test]
fn signals_add_up_over_scatterers() {
    let a = PointScatterer::new(Point3::new(0.01, 0.02, 0.3), 1e-4).unwrap();
    let b = PointScatterer::new(Point3::new(-0.03, 0.0, 0.4), -2e-4).unwrap();
    let array = BoundaryArray::new(0.1, 0.01, 8).unwrap();
    let one = run(&array, 32, &Scene::from_points([a]), noiseless());
    let other = run(&array, 32, &Scene::from_points([b]), noiseless());
    let both = run(&array, 32, &Scene::from_points([a, b]), noiseless());
    let sum = SignalCube::new(one.cube.data() + other.cube.data());
    assert!(both.cube.relative_error(&sum).unwrap() < 1e-6);
}

#[test]
fn simulated_cubes_round_trip_through_npy() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let report = run(
        &reduced_qar50(8),
        8,
        &Scene::from_surface(face_stand_in()),
        SimulationConfig::default(),
    );
    let path = dir.join("cube.npy");
    report.cube.write_npy(&path).unwrap();
    let back = SignalCube::read_npy(&path).unwrap();
    assert_eq!(back, report.cube);
    back.check_matches(&reduced_qar50(8), &sweep(8)).unwrap();
    assert!(back.check_matches(&Qar50::new(), &sweep(8)).is_err());
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Qar50>();
    check::<BoundaryArray>();
    check::<CustomArray>();
    check::<ChannelMask>();
    check::<FrequencySweep>();
    check::<Scene>();
    check::<Surface>();
    check::<PointScatterer>();
    check::<SimulationConfig>();
    check::<Simulator>();
    check::<radar_sim::SimulationReport>();
    check::<radar_sim::SceneSample>();
    check::<SignalCube>();
    check::<RadarError>();
}
