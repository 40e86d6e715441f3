//! Gradients through imaging (docs/physics.md §4.5): the sparse projection computes what the
//! projectors compute, its adjoint is the adjoint (the dot-product test), the tape reproduces
//! the images, and the chain's gradient matches central differences.

use backproject::{
    AxisRange, BackProjector, Direct, FrequencyWindow, ImageProducts, ImageTape, Interpolation,
    ProjectionMethod, RangeCompressed, Separable, SparseProjection, VoxelGrid,
};
use ndarray::Array2;
use num_complex::Complex64;
use proptest::prelude::*;
use radar_sim::{FrequencySweep, SignalCube};

use crate::common::{TestArray, point_signal, three_targets};

/// Deterministic pseudo-random numbers in [−1, 1) (splitmix64), independent of any crate.
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
    fn complex(&mut self, n: usize) -> Vec<Complex64> {
        (0..n)
            .map(|_| Complex64::new(self.next(), self.next()))
            .collect()
    }
}

fn setup() -> (TestArray, FrequencySweep, VoxelGrid, SignalCube) {
    let array = TestArray::qar50().thinned(9);
    let sweep = FrequencySweep::new(72e9, 82e9, 16).unwrap();
    let grid = VoxelGrid::new(
        AxisRange::centred(0.0, 0.004, 8),
        AxisRange::centred(0.0, 0.004, 6),
        AxisRange::centred(0.25, 0.0025, 10),
    )
    .unwrap();
    let cube = point_signal(&array, &sweep, &three_targets());
    (array, sweep, grid, cube)
}

fn methods() -> Vec<ProjectionMethod> {
    vec![
        ProjectionMethod::Direct(Direct),
        ProjectionMethod::RangeCompressed(RangeCompressed::default()),
        ProjectionMethod::RangeCompressed(
            RangeCompressed::new(16, FrequencyWindow::Hann, Interpolation::Nearest).unwrap(),
        ),
    ]
}

fn all_voxels(grid: &VoxelGrid) -> Vec<[usize; 3]> {
    let (nx, ny, nz) = grid.shape();
    (0..nx * ny * nz)
        .map(|i| [i / (ny * nz), (i / nz) % ny, i % nz])
        .collect()
}

fn signal_of(cube: &SignalCube) -> Vec<Complex64> {
    (cube.data().iter())
        .map(|s| Complex64::new(s.re.into(), s.im.into()))
        .collect()
}

/// Re⟨a, b⟩ = Σ Re(conj(a)·b).
fn real_dot(a: &[Complex64], b: &[Complex64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| (a.conj() * b).re).sum()
}

#[test]
fn the_sparse_projection_computes_what_the_projectors_compute() {
    let (array, sweep, grid, cube) = setup();
    let voxels = all_voxels(&grid);
    for method in methods() {
        let volume = method.back_project(&array, &sweep, &cube, &grid).unwrap();
        let sparse = SparseProjection::new(&method, &array, &sweep, &grid, &voxels).unwrap();
        let values = sparse.project(&signal_of(&cube)).unwrap();
        let scale = volume.data().iter().map(|c| c.norm()).fold(0.0, f32::max) as f64;
        let worst = (voxels.iter().zip(&values))
            .map(|(v, s)| {
                let c = volume.data()[*v];
                (Complex64::new(c.re.into(), c.im.into()) - s).norm()
            })
            .fold(0.0, f64::max);
        assert!(
            worst <= 1e-5 * scale,
            "{}: worst error {worst} of {scale}",
            method.name()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// Re⟨A·s, y⟩ = Re⟨s, Aᴴ·y⟩ for random s and y: the adjoint is exact.
    #[test]
    fn the_adjoint_passes_the_dot_product_test(seed in any::<u64>(), which in 0usize..3) {
        let (array, sweep, grid, _) = setup();
        let mut numbers = Numbers(seed);
        let voxels: Vec<[usize; 3]> = all_voxels(&grid).into_iter().step_by(7).collect();
        let method = &methods()[which];
        let sparse = SparseProjection::new(method, &array, &sweep, &grid, &voxels).unwrap();
        let s = numbers.complex(sparse.signal_len());
        let y = numbers.complex(sparse.len());
        let forward = real_dot(&sparse.project(&s).unwrap(), &y);
        let backward = real_dot(&s, &sparse.adjoint(&y).unwrap());
        prop_assert!(
            (forward - backward).abs() <= 1e-12 * forward.abs().max(backward.abs()).max(1.0),
            "{}: {forward} vs {backward}", method.name()
        );
    }
}

#[test]
fn the_tape_reproduces_the_pooled_images() {
    let (array, sweep, grid, cube) = setup();
    let method = ProjectionMethod::RangeCompressed(RangeCompressed::default());
    let volume = method.back_project(&array, &sweep, &cube, &grid).unwrap();
    for pool in [1, 2] {
        let products = ImageProducts::from_volume(&volume)
            .unwrap()
            .max_pooled(pool)
            .unwrap();
        let tape = ImageTape::record(&volume, pool).unwrap();
        assert_eq!(tape.shape(), products.level_db().shape());
        let values: Vec<Complex64> = (tape.voxels().iter())
            .map(|v| {
                let c = volume.data()[*v];
                Complex64::new(c.re.into(), c.im.into())
            })
            .collect();
        let images = tape.images(&values).unwrap();
        for ((l, z), (lt, zt)) in (products.level_db().db().iter())
            .zip(products.depth_m().depth_m())
            .zip(images.level_db.iter().zip(&images.depth_m))
        {
            assert!((f64::from(*l) - lt).abs() < 1e-3, "level {l} vs {lt}");
            assert!((f64::from(*z) - zt).abs() < 1e-6, "depth {z} vs {zt}");
        }
    }
}

/// ℓ(s) = Σ_p w_p·L_p + Σ_p u_p·z*_p/mm through the tape and the sparse projection; returns ℓ
/// and its gradient by s.
fn loss_and_gradient(
    tape: &ImageTape,
    sparse: &SparseProjection,
    weights: &(Array2<f64>, Array2<f64>),
    s: &[Complex64],
) -> (f64, Vec<Complex64>) {
    let values = sparse.project(s).unwrap();
    let images = tape.images(&values).unwrap();
    let loss = (&images.level_db * &weights.0).sum() + (&images.depth_m * &weights.1).sum();
    let cotangent = tape.backward(&values, &weights.0, &weights.1).unwrap();
    (loss, sparse.adjoint(&cotangent).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]
    /// The gradient of images by the signal, through the tape and the sparse projection,
    /// matches central differences (f64) in random directions, to 1e-6 of the terms' sum.
    #[test]
    fn image_gradients_match_central_differences(seed in any::<u64>(), pool in 1usize..3) {
        let (array, sweep, grid, cube) = setup();
        let method = ProjectionMethod::RangeCompressed(RangeCompressed::default());
        let volume = method.back_project(&array, &sweep, &cube, &grid).unwrap();
        let tape = ImageTape::record(&volume, pool).unwrap();
        let sparse = SparseProjection::new(&method, &array, &sweep, &grid, tape.voxels()).unwrap();
        let mut numbers = Numbers(seed);
        let shape = tape.shape();
        let weights = (
            Array2::from_shape_simple_fn(shape, || numbers.next()),
            Array2::from_shape_simple_fn(shape, || 1e3 * numbers.next()),
        );
        let s = signal_of(&cube);
        let (_, gradient) = loss_and_gradient(&tape, &sparse, &weights, &s);
        let scale = s.iter().map(|v| v.norm()).fold(0.0, f64::max);
        for _ in 0..3 {
            let direction = numbers.complex(s.len());
            let h = 1e-6 * scale;
            let at = |sign: f64| -> Vec<Complex64> {
                s.iter().zip(&direction).map(|(s, d)| s + d * (sign * h)).collect()
            };
            let numeric = (loss_and_gradient(&tape, &sparse, &weights, &at(1.0)).0
                - loss_and_gradient(&tape, &sparse, &weights, &at(-1.0)).0)
                / (2.0 * h);
            let analytic = real_dot(&gradient, &direction);
            // Relative to the sum of the terms' magnitudes: the derivative itself may cancel
            // to far below them, where central differences keep only their absolute error.
            let terms: f64 = (gradient.iter().zip(&direction))
                .map(|(g, d)| (g.conj() * d).re.abs())
                .sum();
            prop_assert!(
                (numeric - analytic).abs() <= 1e-6 * terms.max(numeric.abs()),
                "pool {pool}: numeric {numeric} vs analytic {analytic}"
            );
        }
    }
}

#[test]
fn bad_sparse_inputs_are_typed_errors() {
    let (array, sweep, grid, cube) = setup();
    let voxels = [[0, 0, 0], [1, 2, 3]];
    let separable = ProjectionMethod::Separable(Separable::default());
    let err = SparseProjection::new(&separable, &array, &sweep, &grid, &voxels).unwrap_err();
    assert!(err.to_string().contains("separable"), "{err}");
    let method = ProjectionMethod::default();
    let outside = SparseProjection::new(&method, &array, &sweep, &grid, &[[8, 0, 0]]).unwrap_err();
    assert!(outside.to_string().contains("outside"), "{outside}");
    let sparse = SparseProjection::new(&method, &array, &sweep, &grid, &voxels).unwrap();
    assert!(sparse.project(&signal_of(&cube)[1..]).is_err());
    assert!(sparse.adjoint(&[Complex64::new(1.0, 0.0)]).is_err());
    let volume = method.back_project(&array, &sweep, &cube, &grid).unwrap();
    assert!(ImageTape::record(&volume, 3).is_err());
    let tape = ImageTape::record(&volume, 1).unwrap();
    let zeros = vec![Complex64::new(0.0, 0.0); tape.voxels().len()];
    assert!(tape.images(&zeros).is_err());
    assert!(tape.images(&zeros[1..]).is_err());
}
