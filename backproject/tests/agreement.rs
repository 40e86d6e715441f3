//! The three methods agree: separable = direct to rounding, range-compressed ≈ direct.

use backproject::{
    AxisRange, BackProjector, Direct, FrequencyWindow, Interpolation, RangeCompressed, Separable,
    VoxelGrid,
};
use nalgebra::Point3;
use ndarray::Array3;
use num_complex::Complex32;
use proptest::prelude::*;
use radar_sim::{FrequencySweep, SignalCube};

use crate::common::{TestArray, correlation, point_signal, relative_error, three_targets};

/// Back-projects the three targets' signal with the direct and the default range-compressed
/// form; asserts a correlation ≥ 0.999 and the same peak voxel, and returns the correlation.
fn assert_range_compressed_tracks_direct(
    array: &TestArray,
    sweep: &FrequencySweep,
    grid: &VoxelGrid,
) -> f64 {
    let cube = point_signal(array, sweep, &three_targets());
    let direct = Direct.back_project(array, sweep, &cube, grid).unwrap();
    let compressed = RangeCompressed::default()
        .back_project(array, sweep, &cube, grid)
        .unwrap();
    let rho = correlation(compressed.data(), direct.data());
    assert!(rho >= 0.999, "correlation {rho}");
    assert_eq!(compressed.peak().0, direct.peak().0);
    rho
}

/// A grid of `n` × `n` × `n` voxels at the default spacing around `centre`.
fn grid_around(centre: Point3<f64>, n: usize) -> VoxelGrid {
    VoxelGrid::new(
        AxisRange::centred(centre.x, 0.004, n),
        AxisRange::centred(centre.y, 0.004, n),
        AxisRange::centred(centre.z, 0.0025, n),
    )
    .unwrap()
}

#[test]
fn separable_equals_direct_on_the_qar50_layout() {
    let array = TestArray::qar50();
    let sweep = FrequencySweep::new(72e9, 82e9, 16).unwrap();
    let mut cube = point_signal(&array, &sweep, &three_targets());
    // Add a deterministic, spectrally white component so the signal is not only targets.
    for ((t, r, n), s) in cube.data_mut().indexed_iter_mut() {
        let k = (t * 7919 + r * 104_729 + n * 1_299_709) as f32;
        *s += Complex32::new((k * 0.618).sin(), (k * 0.414).cos()) * 0.1;
    }
    let grid = grid_around(Point3::new(0.0, 0.0, 0.25), 4);
    let direct = Direct.back_project(&array, &sweep, &cube, &grid).unwrap();
    let separable = Separable::default()
        .back_project(&array, &sweep, &cube, &grid)
        .unwrap();
    let error = relative_error(separable.data(), direct.data());
    eprintln!("separable vs direct on the QAR50 layout: relative error {error:.2e}");
    assert!(
        error <= 1e-4,
        "separable vs direct: relative error {error:e}"
    );
}

#[test]
fn range_compressed_correlates_with_direct_and_finds_the_same_peak() {
    // Every third element keeps the aperture (and so the point spread function) at a third of
    // the pairs; all 128 frequencies keep the range profile as in the full problem.
    let array = TestArray::qar50().thinned(3);
    let sweep = FrequencySweep::qar50();
    let grid = grid_around(Point3::new(0.0, 0.0, 0.25), 10);
    let rho = assert_range_compressed_tracks_direct(&array, &sweep, &grid);
    eprintln!("range-compressed (8×, linear) vs direct: correlation {rho:.6}");
}

#[test]
fn range_compressed_handles_targets_beyond_the_unambiguous_range() {
    // 16 steps over 10 GHz: c/(2Δf) ≈ 0.225 m, so the grid at 0.25 m lies past it. The direct
    // form is periodic in path length with the same period, and so must the profiles be.
    let array = TestArray::qar50().thinned(3);
    let sweep = FrequencySweep::new(72e9, 82e9, 16).unwrap();
    assert!(sweep.unambiguous_range() < 0.24);
    let grid = grid_around(Point3::new(0.0, 0.0, 0.25), 8);
    assert_range_compressed_tracks_direct(&array, &sweep, &grid);
}

#[test]
fn range_compressed_agrees_on_a_coarse_grid_too() {
    // 12 mm × 12 mm × 8 mm voxels: a tile then spans more range bins than the AVX-512 window
    // kernel holds, and the portable kernel takes over.
    let array = TestArray::qar50().thinned(3);
    let sweep = FrequencySweep::qar50();
    let grid = VoxelGrid::new(
        AxisRange::centred(0.0, 0.012, 6),
        AxisRange::centred(0.0, 0.012, 6),
        AxisRange::centred(0.25, 0.008, 6),
    )
    .unwrap();
    assert_range_compressed_tracks_direct(&array, &sweep, &grid);
}

#[test]
fn finer_padding_and_nearest_interpolation_also_track_direct() {
    let array = TestArray::qar50().thinned(4);
    let sweep = FrequencySweep::qar50();
    let cube = point_signal(&array, &sweep, &three_targets());
    let grid = grid_around(Point3::new(0.0, 0.0, 0.25), 6);
    let direct = Direct.back_project(&array, &sweep, &cube, &grid).unwrap();
    let rho = |padding, interpolation| {
        let method =
            RangeCompressed::new(padding, FrequencyWindow::Rectangular, interpolation).unwrap();
        let volume = method.back_project(&array, &sweep, &cube, &grid).unwrap();
        correlation(volume.data(), direct.data())
    };
    let linear_8 = rho(8, Interpolation::Linear);
    let linear_32 = rho(32, Interpolation::Linear);
    let nearest_32 = rho(32, Interpolation::Nearest);
    eprintln!("linear 8×: {linear_8:.6}, linear 32×: {linear_32:.6}, nearest 32×: {nearest_32:.6}");
    // Interpolation error falls with finer sampling of the profile.
    assert!(linear_32 >= linear_8);
    // Nearest sampling at 32×: phase errors up to π/64 at the band edges.
    assert!(nearest_32 >= 0.999, "nearest 32×: {nearest_32}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// For any small array, sweep, grid and signal, the separable form equals the direct one.
    #[test]
    fn separable_equals_direct_for_any_signal(
        tx in prop::collection::vec((-0.05f64..0.05, -0.05f64..0.05), 1..5),
        rx in prop::collection::vec((-0.05f64..0.05, -0.05f64..0.05), 1..5),
        start_ghz in 10.0f64..90.0,
        bandwidth_ghz in 0.5f64..15.0,
        steps in 2usize..9,
        shape in (1usize..4, 1usize..4, 1usize..4),
        seed in any::<u64>(),
    ) {
        let array = TestArray {
            tx: tx.iter().map(|&(x, y)| Point3::new(x, y, 0.0)).collect(),
            rx: rx.iter().map(|&(x, y)| Point3::new(x, y, 0.0)).collect(),
        };
        let sweep = FrequencySweep::new(start_ghz * 1e9, (start_ghz + bandwidth_ghz) * 1e9, steps)
            .unwrap();
        let grid = VoxelGrid::new(
            AxisRange::from_count(-0.02, 0.007, shape.0),
            AxisRange::from_count(-0.01, 0.005, shape.1),
            AxisRange::from_count(0.15, 0.011, shape.2),
        )
        .unwrap();
        // A simple deterministic generator (splitmix-like) seeded by proptest.
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let z = (state ^ (state >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            (z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        let cube = SignalCube::new(Array3::from_shape_simple_fn(
            (array.tx.len(), array.rx.len(), steps),
            || Complex32::new(next(), next()),
        ));
        let direct = Direct.back_project(&array, &sweep, &cube, &grid).unwrap();
        let separable = Separable::new(5).unwrap().back_project(&array, &sweep, &cube, &grid).unwrap();
        let error = relative_error(separable.data(), direct.data());
        prop_assert!(error <= 1e-4, "relative error {error:e}");
    }
}
