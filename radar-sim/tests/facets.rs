//! The converged surface model (docs/physics.md §3.4–§3.5): physical optics on facets, the
//! diffuse random field and the seeds, against independent computations.

use nalgebra::Point3;
use num_complex::Complex64;
use radar_sim::{
    ConvergedSurface, ElementPattern, FrequencySweep, Material, SPEED_OF_LIGHT, Scene,
    SimulationConfig, Simulator, SumMethod, SurfaceModel,
};

use crate::common::{face_stand_in, noiseless, pair, plate};

/// Purely specular, isotropic elements, no taper, no noise.
fn specular_plate_config(method: SumMethod) -> SimulationConfig {
    SimulationConfig {
        material: Material::new(1.0).unwrap(),
        pattern: ElementPattern::Isotropic,
        surface: SurfaceModel::Converged(ConvergedSurface {
            boundary_taper_m: 0.0,
            ..ConvergedSurface::default()
        }),
        method,
        ..noiseless()
    }
}

/// The physical-optics return of a square plate of side `side` at height `d` facing a pair at
/// (±δ, 0, 0), by a 600 × 600 midpoint rule over the plate with the exact distances
/// (independent of facets): Σ f_s·cos^{n_s}θ_H·cos θ_i·cos θ_o/(d_t·d_r)·exp(−jk(d_t + d_r))·dA.
fn plate_by_quadrature(side: f64, d: f64, delta: f64, frequency: f64) -> Complex64 {
    let material = Material::new(1.0).unwrap();
    let k = 2.0 * std::f64::consts::PI * frequency / SPEED_OF_LIGHT;
    let n = 600;
    let h = side / n as f64;
    let (tx, rx) = (Point3::new(-delta, 0.0, 0.0), Point3::new(delta, 0.0, 0.0));
    let mut sum = Complex64::new(0.0, 0.0);
    for i in 0..n {
        for j in 0..n {
            let p = Point3::new(
                -side / 2.0 + (i as f64 + 0.5) * h,
                -side / 2.0 + (j as f64 + 0.5) * h,
                d,
            );
            let (to_tx, to_rx) = (tx - p, rx - p);
            let (d_t, d_r) = (to_tx.norm(), to_rx.norm());
            let (w_i, w_o) = (to_tx / d_t, to_rx / d_r);
            let normal = nalgebra::Vector3::new(0.0, 0.0, -1.0);
            let half = (w_i + w_o).normalize();
            let lobe = material.specular_weight() * normal.dot(&half).powf(material.exponent);
            let amplitude = lobe * normal.dot(&w_i) * normal.dot(&w_o) / (d_t * d_r) * h * h;
            sum += Complex64::from_polar(amplitude, -k * (d_t + d_r));
        }
    }
    sum
}

#[test]
fn a_plate_facing_the_array_gives_the_physical_optics_return() {
    let (d, delta) = (0.3, 0.005);
    let array = pair(Point3::new(-delta, 0.0, 0.0), Point3::new(delta, 0.0, 0.0));
    let sweep = FrequencySweep::new(72e9, 82e9, 8).unwrap();
    // 5 mm lies well inside the first Fresnel zone (√(λd/2) ≈ 2.4 cm); 4 cm does not, and its
    // facets' phases must add up like the continuous integral.
    for side in [0.005, 0.04] {
        let scene = Scene::from_surface(plate(Point3::new(0.0, 0.0, d), side));
        for method in [SumMethod::Direct, SumMethod::Fast] {
            let sim = Simulator::new(&array, sweep, specular_plate_config(method)).unwrap();
            let report = sim.simulate(&scene).unwrap();
            for (n, f) in sweep.frequencies().into_iter().enumerate() {
                let expected = plate_by_quadrature(side, d, delta, f);
                let s = report.cube.data()[[0, 0, n]];
                let got = Complex64::new(s.re as f64, s.im as f64);
                let error = (got - expected).norm() / expected.norm();
                assert!(
                    error < 0.02,
                    "side {side} m, {method:?}, {f} Hz: {got} vs {expected} ({error:.4})"
                );
            }
        }
    }
}

#[test]
fn a_small_plate_returns_in_proportion_to_its_area_and_peaks_at_its_range() {
    let (d, delta) = (0.3, 0.005);
    let array = pair(Point3::new(-delta, 0.0, 0.0), Point3::new(delta, 0.0, 0.0));
    let sweep = FrequencySweep::new(72e9, 82e9, 64).unwrap();
    let sim = Simulator::new(&array, sweep, specular_plate_config(SumMethod::Fast)).unwrap();
    let signal = |side: f64| {
        let scene = Scene::from_surface(plate(Point3::new(0.0, 0.0, d), side));
        let report = sim.simulate(&scene).unwrap();
        report
            .cube
            .data()
            .iter()
            .map(|s| Complex64::new(s.re as f64, s.im as f64))
            .collect::<Vec<_>>()
    };
    let (small, large) = (signal(0.003), signal(0.006));
    // Coherent: amplitude ∝ area (4×), not √area; both far inside the Fresnel zone.
    let ratio = large[0].norm() / small[0].norm();
    assert!((ratio - 4.0).abs() < 0.04, "amplitude ratio {ratio}");
    // Its amplitude is what a mirror of area A gives: f_s·A·cos θ_i·cos θ_o/(d_t·d_r), θ ≈ 0.
    let r = (d * d + delta * delta).sqrt();
    let cos = d / r;
    let half_angle_lobe = 1.0; // H is along the normal at the plate's centre
    let expected = Material::new(1.0).unwrap().specular_weight()
        * half_angle_lobe
        * 0.006f64.powi(2)
        * cos
        * cos
        / (r * r);
    let error = (large[0].norm() - expected).abs() / expected;
    assert!(error < 0.01, "{} vs {expected}", large[0].norm());
    // The matched filter over range peaks at the plate: Σ_f s(f)·exp(+jk_f·2·√(z² + δ²)).
    let frequencies = sweep.frequencies();
    let response = |z: f64| {
        let path = 2.0 * (z * z + delta * delta).sqrt();
        (large.iter().zip(&frequencies))
            .map(|(s, f)| {
                s * Complex64::from_polar(
                    1.0,
                    2.0 * std::f64::consts::PI * f * path / SPEED_OF_LIGHT,
                )
            })
            .sum::<Complex64>()
            .norm()
    };
    let best = (0..=2000)
        .map(|i| 0.2 + 0.2 * i as f64 / 2000.0)
        .max_by(|a, b| response(*a).total_cmp(&response(*b)))
        .unwrap();
    assert!((best - d).abs() < 1e-4, "peak at {best} m, plate at {d} m");
}

#[test]
fn the_sampling_seed_does_not_matter_and_the_surface_seed_does() {
    let array = pair(Point3::new(-0.02, 0.01, 0.0), Point3::new(0.03, -0.01, 0.0));
    let sweep = FrequencySweep::new(72e9, 82e9, 8).unwrap();
    let scene = Scene::from_surface(face_stand_in());
    let run = |seed: u64, surface_seed: u64| {
        let config = SimulationConfig {
            seed,
            surface_seed,
            ..noiseless()
        };
        Simulator::new(&array, sweep, config)
            .unwrap()
            .simulate(&scene)
            .unwrap()
            .cube
    };
    let reference = run(1, 5);
    assert_eq!(
        run(2, 5),
        reference,
        "sampling seed changed a converged signal"
    );
    let other_surface = run(1, 6);
    assert!(other_surface.relative_error(&reference).unwrap() > 0.01);
}

#[test]
fn facets_agree_with_the_direct_sum_on_a_narrow_band() {
    // On a 50 MHz band the sub-bands' integrals equal the exact per-frequency ones to ~1e-5,
    // so the fast kernel (f32 series, tables, sub-bands) must match the f64 reference.
    let array = radar_sim::CustomArray::decimated(&radar_sim::Qar50::new(), 8).unwrap();
    let sweep = FrequencySweep::new(77e9, 77.05e9, 11).unwrap();
    let scene = Scene::from_surface(face_stand_in());
    for m in [0.3, 1.0] {
        let config = SimulationConfig {
            material: Material::new(m).unwrap(),
            ..noiseless()
        };
        let fast = Simulator::new(&array, sweep, config).unwrap();
        let direct = Simulator::new(
            &array,
            sweep,
            SimulationConfig {
                method: SumMethod::Direct,
                ..config
            },
        )
        .unwrap();
        let sample = fast.sample(&scene).unwrap();
        assert!(sample.facets.len() > 1000 && !sample.diffuse.is_empty());
        let error = (fast.simulate_sample(&sample).unwrap().cube)
            .relative_error(&direct.simulate_sample(&sample).unwrap().cube)
            .unwrap();
        assert!(error < 2e-4, "m = {m}: relative error {error:e}");
    }
}

#[test]
fn diffuse_power_follows_lambert_whatever_the_correlation_length() {
    // A Lambertian plate (m = 0) facing a near-monostatic pair: over surface seeds, E|s|² =
    // ((1 − m)/π)²·A_eq·Σ_cells(area share)·(cos θ_i·cos θ_o/(d_t·d_r))², A_eq = ((n_s + 1)/2)²·λ_c²/π
    // (docs/physics.md §3.4): independent of ℓ. 300 seeds: ±~12 % (2σ) on the mean power.
    let (d, side) = (0.3, 0.02);
    let array = pair(Point3::new(-0.005, 0.0, 0.0), Point3::new(0.005, 0.0, 0.0));
    let sweep = FrequencySweep::new(72e9, 82e9, 4).unwrap();
    let scene = Scene::from_surface(plate(Point3::new(0.0, 0.0, d), side));
    let material = Material::new(0.0).unwrap();
    let lambda = sweep.centre_wavelength();
    let a_eq = ((material.exponent + 1.0) / 2.0).powi(2) * lambda * lambda / std::f64::consts::PI;
    // The plate is small against d: cos ≈ 1 and d_t·d_r ≈ d² over it.
    let expected = (1.0 / std::f64::consts::PI).powi(2) * a_eq * side * side / d.powi(4);
    for length in [0.002, 0.004] {
        let mean: f64 = (0..300)
            .map(|seed| {
                let config = SimulationConfig {
                    material,
                    pattern: ElementPattern::Isotropic,
                    surface_seed: seed,
                    surface: SurfaceModel::Converged(ConvergedSurface {
                        correlation_length_m: length,
                        ..ConvergedSurface::default()
                    }),
                    ..noiseless()
                };
                let report = Simulator::new(&array, sweep, config)
                    .unwrap()
                    .simulate(&scene)
                    .unwrap();
                report.cube.data()[[0, 0, 0]].norm_sqr() as f64
            })
            .sum::<f64>()
            / 300.0;
        let ratio = mean / expected;
        assert!(
            (0.85..1.15).contains(&ratio),
            "ℓ = {length}: E|s|² ratio {ratio}"
        );
    }
}

#[test]
fn the_boundary_taper_weighs_facets_by_their_distance_to_the_edge() {
    // A 4 cm plate facing a near-monostatic pair: with a 1 cm taper the facets' weights
    // follow sin²(π/2·min(d/W, 1)) of their centroids' distance d to the plate's edge.
    let (d, side, width) = (0.3, 0.04, 0.01);
    let array = pair(Point3::new(-0.005, 0.0, 0.0), Point3::new(0.005, 0.0, 0.0));
    let sweep = FrequencySweep::new(72e9, 82e9, 4).unwrap();
    let scene = Scene::from_surface(plate(Point3::new(0.0, 0.0, d), side));
    let sample = |taper: f64| {
        let config = SimulationConfig {
            surface: SurfaceModel::Converged(ConvergedSurface {
                boundary_taper_m: taper,
                ..ConvergedSurface::default()
            }),
            ..specular_plate_config(SumMethod::Fast)
        };
        Simulator::new(&array, sweep, config)
            .unwrap()
            .sample(&scene)
            .unwrap()
    };
    let (plain, tapered) = (sample(0.0), sample(width));
    assert_eq!(plain.facets.len(), tapered.facets.len());
    for (p, t) in plain.facets.iter().zip(&tapered.facets) {
        let c = t.centroid;
        let edge = (side / 2.0 - c.x.abs()).min(side / 2.0 - c.y.abs());
        let expected = (std::f64::consts::FRAC_PI_2 * (edge / width).min(1.0))
            .sin()
            .powi(2);
        approx::assert_relative_eq!(t.weight_m2, p.weight_m2 * expected, max_relative = 1e-9);
    }
}
