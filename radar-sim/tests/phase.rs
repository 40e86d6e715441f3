//! Phase and amplitude of the forward model against closed forms (docs/physics.md §3).

use std::f64::consts::PI;

use nalgebra::Point3;
use num_complex::{Complex32, Complex64};
use proptest::prelude::*;
use radar_sim::{
    ArrayGeometry, CustomArray, FrequencySweep, Material, PointScatterer, SPEED_OF_LIGHT, Scene,
    SimulationConfig, Simulator, SumMethod,
};

use crate::common::{noiseless, noiseless_isotropic, pair, plate, point};

/// The samples of channel (0, 0) over frequency.
fn channel(array: &CustomArray, scene: &Scene, config: SimulationConfig) -> Vec<Complex32> {
    let report = Simulator::new(array, FrequencySweep::qar50(), config)
        .unwrap()
        .simulate(scene)
        .unwrap();
    report.cube.data().slice(ndarray::s![0, 0, ..]).to_vec()
}

/// The least-squares slope of the unwrapped phase over frequency (rad/Hz).
fn phase_slope(samples: &[Complex32], sweep: &FrequencySweep) -> f64 {
    let mut phase = Vec::with_capacity(samples.len());
    let mut previous = 0.0;
    for (n, s) in samples.iter().enumerate() {
        let mut p = (s.im as f64).atan2(s.re as f64);
        if n > 0 {
            p += (2.0 * PI) * ((previous - p) / (2.0 * PI)).round();
        }
        phase.push(p);
        previous = p;
    }
    let f: Vec<f64> = (0..samples.len()).map(|n| sweep.frequency(n)).collect();
    let (mf, mp) = (
        f.iter().sum::<f64>() / f.len() as f64,
        phase.iter().sum::<f64>() / f.len() as f64,
    );
    let cov: f64 = f.iter().zip(&phase).map(|(f, p)| (f - mf) * (p - mp)).sum();
    let var: f64 = f.iter().map(|f| (f - mf).powi(2)).sum();
    cov / var
}

fn planar() -> impl Strategy<Value = Point3<f64>> {
    (-0.07f64..0.07, -0.07f64..0.07).prop_map(|(x, y)| Point3::new(x, y, 0.0))
}

fn in_front() -> impl Strategy<Value = Point3<f64>> {
    (-0.1f64..0.1, -0.1f64..0.1, 0.15f64..0.6).prop_map(|(x, y, z)| Point3::new(x, y, z))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_point_target_has_phase_minus_2_pi_f_path_over_c(
        tx in planar(), rx in planar(), target in in_front(), fast in any::<bool>(),
    ) {
        let method = if fast { SumMethod::Fast } else { SumMethod::Direct };
        let config = SimulationConfig { method, ..noiseless_isotropic() };
        let samples = channel(&pair(tx, rx), &point(target, 1e-4), config);
        let path = (tx - target).norm() + (rx - target).norm();
        let sweep = FrequencySweep::qar50();
        for (n, s) in samples.iter().enumerate() {
            let expected = Complex64::from_polar(1.0, -2.0 * PI * sweep.frequency(n) * path / SPEED_OF_LIGHT);
            let unit = Complex64::new(s.re as f64, s.im as f64).unscale(s.norm() as f64);
            prop_assert!((unit - expected).norm() < 2e-5, "f #{n}: {unit} vs {expected}");
        }
        // Its phase slope over frequency is the round-trip delay: dφ/df = −2π·τ.
        let tau = path / SPEED_OF_LIGHT;
        let slope = phase_slope(&samples, &sweep);
        prop_assert!((slope / (-2.0 * PI) - tau).abs() < 1e-6 * tau, "{} vs {tau}", slope / (-2.0 * PI));
    }

    #[test]
    fn moving_the_target_along_z_changes_the_slope_by_2_dz_over_c(
        x in -0.05f64..0.05, y in -0.05f64..0.05, z in 0.15f64..0.5, dz in -0.1f64..0.1,
    ) {
        // A monostatic pair right below the target: τ = 2z/c.
        let antenna = Point3::new(x, y, 0.0);
        let array = pair(antenna, antenna);
        let sweep = FrequencySweep::qar50();
        let slope = |z: f64| phase_slope(&channel(&array, &point(Point3::new(x, y, z), 1e-4), noiseless()), &sweep);
        let change = (slope(z + dz) - slope(z)) / (-2.0 * PI);
        // Exact up to the f32 phase rounding of the samples: 1e-15 s is 0.3 µm of path.
        prop_assert!((change - 2.0 * dz / SPEED_OF_LIGHT).abs() < 1e-15, "{change} vs {}", 2.0 * dz / SPEED_OF_LIGHT);
    }

    #[test]
    fn amplitude_falls_as_one_over_dt_dr(tx in planar(), rx in planar(), target in in_front(), sigma in 1e-6f64..1e-2) {
        let samples = channel(&pair(tx, rx), &point(target, sigma), noiseless_isotropic());
        let spread = (tx - target).norm() * (rx - target).norm();
        for s in &samples {
            prop_assert!(((s.norm() as f64) * spread / sigma - 1.0).abs() < 2e-5);
        }
    }

    #[test]
    fn signals_are_reciprocal(
        p in planar(), q in planar(), tilt in -0.3f64..0.3, m in 0.0f64..1.0, seed in any::<u64>(),
        fast in any::<bool>(),
    ) {
        prop_assume!((p - q).norm() > 1e-3);
        // A tilted plate seen by one TX/RX pair, then with the two swapped.
        let plate = plate(Point3::new(0.0, 0.0, 0.25), 0.03);
        let tilted = radar_sim::Surface::new(
            plate.vertices().iter().map(|v| Point3::new(v.x, v.y, v.z + tilt * v.x)).collect(),
            plate.triangles().to_vec(),
        ).unwrap();
        let scene = Scene::from_surface(tilted);
        let (method, tolerance) = if fast { (SumMethod::Fast, 1e-4) } else { (SumMethod::Direct, 1e-6) };
        let config = SimulationConfig {
            seed,
            method,
            material: Material::new(m).unwrap(),
            hits: radar_sim::HitDensity::Count(300),
            ..noiseless()
        };
        // Keep the array centre fixed: one extra element far out, on both sides.
        let far = Point3::new(0.3, 0.3, 0.0);
        let forward = CustomArray::new(vec![p, far], vec![q, far]).unwrap();
        let backward = CustomArray::new(vec![q, far], vec![p, far]).unwrap();
        let a = channel(&forward, &scene, config);
        let b = channel(&backward, &scene, config);
        // f32 sums of 300 terms that partly cancel: compare on the scale of the whole signal.
        let scale = (a.iter().map(|s| s.norm_sqr()).sum::<f32>() / a.len() as f32).sqrt();
        for (a, b) in a.iter().zip(&b) {
            prop_assert!((a - b).norm() <= tolerance * scale, "{a} vs {b}");
        }
    }
}

#[test]
fn a_hidden_point_contributes_nothing() {
    let array = radar_sim::Qar50::new();
    let occluder = plate(Point3::new(0.0, 0.0, 0.2), 0.05);
    let behind = PointScatterer::new(Point3::new(0.0, 0.0, 0.3), 1e-3).unwrap();
    let beside = PointScatterer::new(Point3::new(0.2, 0.0, 0.3), 1e-3).unwrap();
    let sweep = FrequencySweep::new(72e9, 82e9, 4).unwrap();
    let sim = Simulator::new(&array, sweep, noiseless()).unwrap();
    let plate_only = sim
        .simulate(&Scene::from_surface(occluder.clone()))
        .unwrap();
    let hidden = sim
        .simulate(&Scene::from_surface(occluder.clone()).with_point(behind))
        .unwrap();
    assert_eq!(hidden.stats.points_hidden, 1);
    assert_eq!(hidden.stats.points_used, 0);
    assert_eq!(hidden.cube, plate_only.cube);
    // The same point off to the side is seen, and changes the signal.
    let seen = sim
        .simulate(&Scene::from_surface(occluder).with_point(beside))
        .unwrap();
    assert_eq!((seen.stats.points_hidden, seen.stats.points_used), (0, 1));
    assert_ne!(seen.cube, plate_only.cube);
    assert_eq!(array.n_channels(), 8836);
}
