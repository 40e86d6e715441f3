//! Gradients of the clean signal by the scene (docs/physics.md §3.6) against central
//! differences in f64, with every discrete choice of the sample held.

use nalgebra::{Point3, Vector3};
use num_complex::Complex64;
use proptest::prelude::*;
use radar_sim::{
    CustomArray, ElementPattern, FrequencySweep, Material, Qar50, Scene, SceneSample,
    SimulationConfig, Simulator, Surface,
};

use crate::common::{noiseless, sampled};

/// Deterministic numbers in [−1, 1) (splitmix64).
struct Numbers(u64);
impl Numbers {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// A small tilted bump: an ellipsoid cap 4 × 5 cm across, 25 cm away, off-axis so that both
/// facets and cells, lit and culled, take part.
fn bump() -> Surface {
    let cap = Surface::ellipsoid_cap(
        Point3::new(0.01, -0.005, 0.27),
        Vector3::new(0.02, 0.025, 0.02),
        1.1,
        4,
        10,
    )
    .unwrap();
    moved(&cap, &|i| {
        // A deterministic ripple so that no two triangles share a plane.
        Vector3::new(0.0, 0.0, 1e-3 * ((i as f64) * 1.7).sin())
    })
}

fn moved(surface: &Surface, shift: &dyn Fn(usize) -> Vector3<f64>) -> Surface {
    let vertices = (surface.vertices().iter().enumerate())
        .map(|(i, v)| v + shift(i))
        .collect();
    Surface::new(vertices, surface.triangles().to_vec()).unwrap()
}

fn setup(config: SimulationConfig) -> (Simulator, Scene, SceneSample) {
    let array = CustomArray::decimated(&Qar50::new(), 12).unwrap();
    let sweep = FrequencySweep::new(72e9, 82e9, 6).unwrap();
    let simulator = Simulator::new(&array, sweep, config).unwrap();
    let scene = Scene::from_surface(bump());
    let sample = simulator.sample(&scene).unwrap();
    (simulator, scene, sample)
}

fn config(m: f64, antenna_cm: f64) -> SimulationConfig {
    SimulationConfig {
        material: Material::new(m).unwrap(),
        pattern: ElementPattern::sinc(antenna_cm).unwrap(),
        surface_seed: 3,
        ..noiseless()
    }
}

/// ℓ = Re Σ conj(w)·s, whose cotangent is w.
fn loss(w: &[Complex64], s: &[Complex64]) -> f64 {
    w.iter().zip(s).map(|(w, s)| (w.conj() * s).re).sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]
    /// Vertex, material and antenna gradients match central differences to 1e-5 relative.
    #[test]
    fn scene_gradients_match_central_differences(seed in any::<u64>()) {
        let (m, antenna) = (0.6, 0.25);
        let (simulator, scene, sample) = setup(config(m, antenna));
        prop_assert!(sample.facets.len() > 20 && sample.diffuse.len() > 5);
        let mut numbers = Numbers(seed);
        let n = simulator.clean_signal(&sample).unwrap().len();
        let w: Vec<Complex64> = (0..n).map(|_| Complex64::new(numbers.next(), numbers.next())).collect();
        let gradient = simulator.gradient(&scene, &sample, &w).unwrap();
        let surface = &scene.surfaces()[0];
        let direction: Vec<Vector3<f64>> = (0..surface.vertices().len())
            .map(|_| Vector3::new(numbers.next(), numbers.next(), numbers.next()))
            .collect();
        let h = 1e-7;
        let at = |sign: f64| {
            let scene = Scene::from_surface(moved(surface, &|i| direction[i] * (sign * h)));
            let moved = simulator.moved_sample(&sample, &scene).unwrap();
            loss(&w, &simulator.clean_signal(&moved).unwrap())
        };
        let numeric = (at(1.0) - at(-1.0)) / (2.0 * h);
        let analytic: f64 = (gradient.vertices[0].iter().zip(&direction)).map(|(g, d)| g.dot(d)).sum();
        prop_assert!(
            (numeric - analytic).abs() <= 1e-5 * numeric.abs().max(analytic.abs()),
            "vertices: numeric {numeric} vs analytic {analytic}"
        );
        // The material and the antenna: the same sample, other settings.
        let with = |m: f64, antenna: f64| {
            let array = CustomArray::decimated(&Qar50::new(), 12).unwrap();
            let sweep = FrequencySweep::new(72e9, 82e9, 6).unwrap();
            let other = Simulator::new(&array, sweep, config(m, antenna)).unwrap();
            loss(&w, &other.clean_signal(&sample).unwrap())
        };
        let h = 1e-6;
        for (what, numeric, analytic) in [
            ("material", (with(m + h, antenna) - with(m - h, antenna)) / (2.0 * h), gradient.material),
            ("antenna", (with(m, antenna + h) - with(m, antenna - h)) / (2.0 * h), gradient.antenna_size_cm),
        ] {
            prop_assert!(
                (numeric - analytic).abs() <= 1e-5 * numeric.abs().max(analytic.abs()),
                "{what}: numeric {numeric} vs analytic {analytic}"
            );
        }
    }
}

#[test]
fn a_sample_moved_nowhere_is_the_sample() {
    let (simulator, scene, sample) = setup(config(0.5, 0.25));
    let again = simulator.moved_sample(&sample, &scene).unwrap();
    assert_eq!(
        (again.facets.len(), again.diffuse.len()),
        (sample.facets.len(), sample.diffuse.len())
    );
    // Rebuilt through barycentric coordinates: equal to rounding.
    let (a, b) = (
        simulator.clean_signal(&again).unwrap(),
        simulator.clean_signal(&sample).unwrap(),
    );
    let scale = b.iter().map(|s| s.norm()).fold(0.0, f64::max);
    let worst = a
        .iter()
        .zip(&b)
        .map(|(a, b)| (a - b).norm())
        .fold(0.0, f64::max);
    assert!(worst <= 1e-12 * scale, "{worst} of {scale}");
}

#[test]
fn gradients_refuse_what_they_cannot_differentiate() {
    let (simulator, scene, sample) = setup(config(0.5, 0.25));
    let n = simulator.clean_signal(&sample).unwrap().len();
    let w = vec![Complex64::new(1.0, 0.0); n];
    assert!(simulator.gradient(&scene, &sample, &w[1..]).is_err());
    // Another scene: its triangles are not the sample's.
    let other = Scene::from_surface(crate::common::plate(Point3::new(0.0, 0.0, 0.25), 0.02));
    let err = simulator.gradient(&other, &sample, &w).unwrap_err();
    assert!(err.to_string().contains("triangles"), "{err}");
    // Random hits have no gradient here.
    let (hits, scene, sample) = setup(sampled());
    let err = hits.gradient(&scene, &sample, &w).unwrap_err();
    assert!(err.to_string().contains("converged"), "{err}");
}

#[test]
fn the_clean_signal_is_the_fast_kernels_model_in_f64() {
    // The same sub-bands: only the f32 rounding and the lobe floor (a skip of chunks below
    // it in the fast kernel, a smooth window here) differ: 1.3e-4 when written.
    let (simulator, _, sample) = setup(config(0.6, 0.25));
    let clean = simulator.clean_signal(&sample).unwrap();
    let fast = simulator.simulate_sample(&sample).unwrap().cube;
    let (mut error, mut norm) = (0.0, 0.0);
    for (a, b) in clean.iter().zip(fast.data().iter()) {
        error += (a - Complex64::new(b.re.into(), b.im.into())).norm_sqr();
        norm += a.norm_sqr();
    }
    let relative = (error / norm).sqrt();
    assert!(relative < 3e-4, "relative error {relative:e}");
}

/// The fast kernel's adjoint in f32 lanes is the exact gradient's function: for a random
/// cotangent, its vertex gradient is within 1e-4 of the exact one (relative, in norm) and its
/// material and antenna derivatives within 1e-4 of theirs, from all-diffuse to all-specular.
#[test]
fn the_fast_adjoint_agrees_with_the_exact_gradient() {
    use radar_sim::GradientKernel;
    for m in [0.0, 0.6, 1.0] {
        let (simulator, scene, sample) = setup(config(m, 0.25));
        let mut numbers = Numbers(17);
        let n = simulator.clean_signal(&sample).unwrap().len();
        let w: Vec<Complex64> = (0..n)
            .map(|_| Complex64::new(numbers.next(), numbers.next()))
            .collect();
        let exact = simulator.gradient(&scene, &sample, &w).unwrap();
        let fast = (simulator.gradient_with(GradientKernel::Fast, &scene, &sample, &w)).unwrap();
        let (mut error, mut norm) = (0.0, 0.0);
        for (a, b) in exact.vertices[0].iter().zip(&fast.vertices[0]) {
            error += (a - b).norm_squared();
            norm += a.norm_squared();
        }
        let relative = (error / norm).sqrt();
        assert!(
            norm > 0.0 && relative < 1e-4,
            "m = {m}: vertices {relative:e}"
        );
        for (what, a, b) in [
            ("material", exact.material, fast.material),
            ("antenna", exact.antenna_size_cm, fast.antenna_size_cm),
        ] {
            assert!(
                (a - b).abs() <= 1e-4 * a.abs().max(b.abs()),
                "m = {m}: {what} exact {a} vs fast {b}"
            );
        }
    }
}
