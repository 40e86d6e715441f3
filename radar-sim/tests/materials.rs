//! The material factor and the element pattern (docs/physics.md §3).

use std::f64::consts::{PI, TAU};

use nalgebra::Vector3;
use proptest::prelude::*;
use radar_sim::{ElementPattern, Material, RadarError};

/// A unit vector in the upper hemisphere (z > 0) from polar and azimuth angles.
fn direction(theta: f64, phi: f64) -> Vector3<f64> {
    Vector3::new(
        theta.sin() * phi.cos(),
        theta.sin() * phi.sin(),
        theta.cos(),
    )
}

/// ∫ over the hemisphere of `f(ω_o)·cos θ_o dω_o`, and the part within `cone` (rad) of `axis`,
/// by the midpoint rule.
fn hemisphere_integral(
    f: impl Fn(&Vector3<f64>) -> f64,
    axis: &Vector3<f64>,
    cone: f64,
) -> (f64, f64) {
    let (n_theta, n_phi) = (600, 1200);
    let (d_theta, d_phi) = (PI / 2.0 / n_theta as f64, 2.0 * PI / n_phi as f64);
    let (mut total, mut inside) = (0.0, 0.0);
    for i in 0..n_theta {
        let theta = (i as f64 + 0.5) * d_theta;
        for j in 0..n_phi {
            let w = direction(theta, (j as f64 + 0.5) * d_phi);
            let v = f(&w) * theta.cos() * theta.sin() * d_theta * d_phi;
            total += v;
            if w.dot(axis).clamp(-1.0, 1.0).acos() < cone {
                inside += v;
            }
        }
    }
    (total, inside)
}

proptest! {
    #[test]
    fn m_zero_is_lambertian(
        ti in 0.0f64..1.5, pi in 0.0f64..TAU, to in 0.0f64..1.5, po in 0.0f64..TAU,
        exponent in 0.0f64..200.0,
    ) {
        let m = Material::with_exponent(0.0, exponent).unwrap();
        let n = Vector3::z();
        let f = m.brdf(&n, &direction(ti, pi), &direction(to, po));
        prop_assert!((f - 1.0 / PI).abs() < 1e-15);
    }

    #[test]
    fn the_specular_lobe_peaks_at_the_mirror_direction(
        ti in 0.05f64..1.2, phi in 0.0f64..TAU, off in 0.05f64..0.3,
    ) {
        let m = Material::new(1.0).unwrap();
        let n = Vector3::z();
        let wi = direction(ti, phi);
        let mirror = 2.0 * n.dot(&wi) * n - wi;
        let (t_m, p_m) = (mirror.z.acos(), mirror.y.atan2(mirror.x));
        let peak = m.brdf(&n, &wi, &mirror);
        // At the mirror direction H = n: f = (n_s + 1)/(2π).
        prop_assert!((peak - 51.0 / (2.0 * PI)).abs() < 1e-9);
        prop_assert!(m.brdf(&n, &wi, &direction(t_m + off, p_m)) < peak);
    }
}

#[test]
fn lambert_reflects_all_energy_and_spreads_it() {
    let m = Material::lambertian();
    let wi = direction(30f64.to_radians(), 0.0);
    let mirror = Vector3::new(-wi.x, -wi.y, wi.z);
    let (total, _) = hemisphere_integral(|wo| m.brdf(&Vector3::z(), &wi, wo), &mirror, 0.5);
    // ∫ cos θ/π dω = 1 over the hemisphere.
    approx::assert_relative_eq!(total, 1.0, max_relative = 1e-5);
}

#[test]
fn m_one_concentrates_energy_near_the_specular_direction() {
    let wi = direction(30f64.to_radians(), 0.0);
    let mirror = Vector3::new(-wi.x, -wi.y, wi.z);
    let cone = 30f64.to_radians();
    let fraction = |m: &Material| {
        let (total, inside) =
            hemisphere_integral(|wo| m.brdf(&Vector3::z(), &wi, wo), &mirror, cone);
        inside / total
    };
    let specular = fraction(&Material::new(1.0).unwrap());
    let lambert = fraction(&Material::lambertian());
    // The lobe (cos θ_H)^50 has a half-width of about 1/√50 rad ≈ 8° in H, 16° in ω_o: a 30°
    // cone around the mirror direction holds most of it, but only a small part of a Lambertian
    // reflection.
    assert!(specular > 0.75, "specular fraction {specular}");
    assert!(
        specular > 3.0 * lambert,
        "specular {specular} vs Lambert {lambert}"
    );
    // Between the two, the mix is linear in m.
    let half = fraction(&Material::new(0.5).unwrap());
    assert!(lambert < half && half < specular);
}

#[test]
fn the_blinn_phong_lobe_is_normalised_over_half_vectors() {
    // ∫ (n_s + 1)/(2π)·cos^{n_s} θ_H dω_H = 1 over the hemisphere of half vectors.
    for exponent in [1.0, 10.0, 50.0] {
        let m = Material::with_exponent(1.0, exponent).unwrap();
        let n_theta = 20_000;
        let d = PI / 2.0 / n_theta as f64;
        let integral: f64 = (0..n_theta)
            .map(|i| {
                let t = (i as f64 + 0.5) * d;
                m.specular_weight() * t.cos().powf(exponent) * t.sin() * d * 2.0 * PI
            })
            .sum();
        approx::assert_relative_eq!(integral, 1.0, max_relative = 1e-6);
    }
}

/// The first null of the sinc pattern: sin θ = λ_c/(2s).
fn first_null(size_cm: f64, wavelength: f64) -> f64 {
    (wavelength / (2.0 * size_cm * 1e-2)).min(1.0).asin()
}

#[test]
fn the_sinc_pattern_is_one_on_boresight_and_zero_at_its_first_null() {
    let wavelength = radar_sim::FrequencySweep::qar50().centre_wavelength();
    for size in [0.2, 0.25, 0.3, 0.5] {
        let g = ElementPattern::sinc(size).unwrap();
        approx::assert_relative_eq!(g.gain(1.0, wavelength), 1.0);
        let null = first_null(size, wavelength);
        assert!(
            g.gain(null.cos(), wavelength).abs() < 1e-12,
            "s = {size} cm"
        );
    }
    assert_eq!(ElementPattern::Isotropic.gain(0.3, wavelength), 1.0);
}

proptest! {
    #[test]
    fn the_pattern_narrows_as_the_antenna_grows(s1 in 0.1f64..1.0, grow in 0.01f64..1.0, t in 0.0f64..1.0) {
        let wavelength = radar_sim::FrequencySweep::qar50().centre_wavelength();
        let s2 = s1 + grow;
        // Inside the larger antenna's main lobe, sinc's argument is in [0, 1], where sinc
        // decreases: the larger antenna has the lower gain at every angle.
        let theta = t * first_null(s2, wavelength);
        let g1 = ElementPattern::sinc(s1).unwrap().gain(theta.cos(), wavelength);
        let g2 = ElementPattern::sinc(s2).unwrap().gain(theta.cos(), wavelength);
        prop_assert!(g2 <= g1 + 1e-15);
        prop_assert!(first_null(s2, wavelength) <= first_null(s1, wavelength));
    }
}

#[test]
fn bad_materials_and_patterns_are_typed_errors() {
    for m in [-0.1, 1.1, f64::NAN] {
        assert!(
            matches!(Material::new(m), Err(RadarError::Config { .. })),
            "m = {m}"
        );
    }
    for n in [-1.0, f64::INFINITY, f64::NAN] {
        assert!(Material::with_exponent(0.5, n).is_err(), "n_s = {n}");
    }
    for s in [-0.1, f64::NAN, f64::INFINITY] {
        assert!(ElementPattern::sinc(s).is_err(), "s = {s}");
    }
}
