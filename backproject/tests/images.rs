//! Images from volumes: orientation, the parabola refinement, levels, amplitude and depth.

use backproject::{
    AxisRange, DepthImage, DepthMap, DynamicRange, ImageProducts, LevelImage, MaxProjection,
    Volume, VoxelGrid,
};
use ndarray::Array3;
use num_complex::Complex32;
use proptest::prelude::*;

fn grid(nx: usize, ny: usize, nz: usize) -> VoxelGrid {
    VoxelGrid::new(
        AxisRange::from_count(-0.01, 0.004, nx),
        AxisRange::from_count(-0.02, 0.004, ny),
        AxisRange::from_count(0.20, 0.0025, nz),
    )
    .unwrap()
}

#[test]
fn a_single_bright_voxel_shows_where_the_orientation_says() {
    let g = grid(5, 4, 6);
    let mut data = Array3::from_elem(g.shape(), Complex32::new(1e-3, 0.0));
    data[[1, 3, 4]] = Complex32::new(0.0, 2.0);
    let volume = Volume::new(g, data).unwrap();
    let products = ImageProducts::from_volume(&volume).unwrap();
    let level = products.level_db().db();
    assert_eq!(level.dim(), (4, 5));
    // Column ix = 1 of 5 is image column 3; row iy = 3 of 4 is image row 0 (top).
    let (row, col) = g.column_to_pixel(1, 3);
    assert_eq!((row, col), (0, 3));
    assert_eq!(level[[row, col]], 0.0);
    // Everywhere else 20·log10(10⁻³/2) dB.
    let expected = 20.0 * (1e-3f32 / 2.0).log10();
    for ((r, c), &l) in level.indexed_iter() {
        if (r, c) != (row, col) {
            approx::assert_abs_diff_eq!(l, expected, epsilon = 1e-4);
        }
    }
    // The neighbours along z are equal: the parabola is symmetric, z* = z_4.
    approx::assert_abs_diff_eq!(
        products.depth_m().depth_m()[[row, col]] as f64,
        g.z().coordinate(4),
        epsilon = 1e-7
    );
}

#[test]
fn depth_normalises_nearer_to_brighter() {
    let g = grid(2, 1, 8);
    let mut data = Array3::zeros(g.shape());
    // Column ix = 0 peaks at the first z (no neighbour before: no refinement), ix = 1 at the
    // last.
    data[[0, 0, 0]] = Complex32::new(1.0, 0.0);
    data[[1, 0, 7]] = Complex32::new(1.0, 0.0);
    let products = ImageProducts::from_volume(&Volume::new(g, data).unwrap()).unwrap();
    let depth = products.depth_image(DynamicRange::new(20.0).unwrap());
    let (near, far) = (g.column_to_pixel(0, 0), g.column_to_pixel(1, 0));
    // (z_far − z*)/(z_far − z_near) with z_far one step past the last sample.
    approx::assert_abs_diff_eq!(depth.values()[near], 1.0, epsilon = 1e-6);
    approx::assert_abs_diff_eq!(depth.values()[far], 1.0 / 8.0, epsilon = 1e-6);
    assert!(depth.valid()[near] && depth.valid()[far]);
}

proptest! {
    /// Where the dB profile along z is an exact parabola, the refinement finds its vertex.
    #[test]
    fn the_parabola_refinement_is_exact_for_a_parabola(
        vertex_steps in 2.0f64..5.0,
        curvature in 0.05f64..3.0,
        peak_db in -10.0f64..10.0,
    ) {
        let g = grid(1, 1, 8);
        let z = g.z();
        let z0 = z.start_m() + vertex_steps * z.step_m();
        let data = Array3::from_shape_fn(g.shape(), |(_, _, k)| {
            let u = (z.coordinate(k) - z0) / z.step_m();
            let db = peak_db - curvature * u * u;
            Complex32::new(10f64.powf(db / 20.0) as f32, 0.0)
        });
        let projection = MaxProjection::from_volume(&Volume::new(g, data).unwrap());
        let found = projection.depth_m()[[0, 0]] as f64;
        prop_assert!((found - z0).abs() < 2e-6, "z* = {found}, vertex {z0}");
    }

    /// For any volume: L ≤ 0 with 0 at the brightest pixel; A ∈ [0, 1] and monotone in L;
    /// depth valid exactly where L ≥ −D, in (0, 1] there and 0 elsewhere.
    #[test]
    fn images_keep_their_ranges(
        values in prop::collection::vec((-1.0f32..1.0, -1.0f32..1.0), 3 * 4 * 5),
        d in 1.0f32..60.0,
    ) {
        let g = grid(3, 4, 5);
        let data = Array3::from_shape_vec(
            g.shape(),
            values.iter().map(|&(re, im)| Complex32::new(re, im)).collect(),
        )
        .unwrap();
        prop_assume!(data.iter().any(|c| c.norm() > 0.0));
        let products = ImageProducts::from_volume(&Volume::new(g, data).unwrap()).unwrap();
        let level = products.level_db().db();
        prop_assert!(level.iter().all(|&l| l <= 0.0));
        prop_assert!(level.iter().any(|&l| l == 0.0));
        let range = DynamicRange::new(d).unwrap();
        let amplitude = products.amplitude(range);
        let depth = products.depth_image(range);
        let again = DepthImage::new(products.depth_m(), products.level_db(), range).unwrap();
        prop_assert_eq!(&depth, &again);
        for ((index, &l), &a) in level.indexed_iter().zip(amplitude.values()) {
            prop_assert!((0.0..=1.0).contains(&a));
            prop_assert_eq!(depth.valid()[index], l >= -d);
            let v = depth.values()[index];
            if depth.valid()[index] {
                prop_assert!(v > 0.0 && v <= 1.0, "depth {v}");
            } else {
                prop_assert_eq!(v, 0.0);
                prop_assert_eq!(a, 0.0);
            }
        }
        let mut pairs: Vec<(f32, f32)> = level.iter().copied().zip(amplitude.values().iter().copied()).collect();
        pairs.sort_by(|p, q| p.0.total_cmp(&q.0));
        prop_assert!(pairs.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    /// Stored levels resample to any D without the volume: A from a stored L equals A from
    /// the products.
    #[test]
    fn the_dynamic_range_can_be_resampled_from_stored_levels(d in 5.0f32..40.0) {
        let g = grid(3, 3, 3);
        let data = Array3::from_shape_fn(g.shape(), |(i, j, k)| {
            Complex32::new(((i * 9 + j * 3 + k) as f32 * 0.37).sin(), 0.1)
        });
        let products = ImageProducts::from_volume(&Volume::new(g, data).unwrap()).unwrap();
        let stored = LevelImage::new(products.level_db().db().clone()).unwrap();
        let range = DynamicRange::new(d).unwrap();
        prop_assert_eq!(stored.amplitude(range), products.amplitude(range));
    }
}

#[test]
fn level_images_correlate_over_their_bright_pixels() {
    let ramp = |f: fn(f32) -> f32| {
        LevelImage::new(ndarray::Array2::from_shape_fn((4, 4), |(r, c)| {
            f(-((r * 4 + c) as f32) * 2.0)
        }))
        .unwrap()
    };
    let a = ramp(|x| x);
    // Itself: 1. An affine copy of its levels (brighter pixels stay brighter): 1.
    approx::assert_relative_eq!(
        a.correlation(&a, -20.0).unwrap().unwrap(),
        1.0,
        epsilon = 1e-12
    );
    let b = ramp(|x| 0.5 * x);
    approx::assert_relative_eq!(
        a.correlation(&b, -20.0).unwrap().unwrap(),
        1.0,
        epsilon = 1e-12
    );
    // The bright end mirrored: the order of the qualifying pixels reverses, −1.
    let mirrored = ramp(|x| (-30.0 - x).min(0.0));
    assert!(a.correlation(&mirrored, -20.0).unwrap().unwrap() < 0.0);
    // Nothing above the floor, or another shape.
    let dark = LevelImage::new(ndarray::Array2::from_elem((4, 4), -60.0)).unwrap();
    assert_eq!(dark.correlation(&dark, -20.0).unwrap(), None);
    let small = LevelImage::new(ndarray::Array2::zeros((2, 2))).unwrap();
    assert!(a.correlation(&small, -20.0).is_err());
}

#[test]
fn bright_fractions_and_depth_differences_count_only_bright_pixels() {
    // Levels 0, −2, …, −30 dB: 10 of 16 pixels (0 … −18) lie above −20 dB.
    let levels = ndarray::Array2::from_shape_fn((4, 4), |(r, c)| -((r * 4 + c) as f32) * 2.0);
    let a_level = LevelImage::new(levels.clone()).unwrap();
    approx::assert_relative_eq!(a_level.fraction_above(-20.0), 10.0 / 16.0);
    approx::assert_relative_eq!(a_level.fraction_above(1.0), 0.0);
    // Depths 0.25 m; the other image's depth differs by 1 mm · pixel index, so over the 10
    // bright pixels the differences are 0, 1, …, 9 mm, whose upper median is 5 mm.
    let depth = |f: fn(usize) -> f32| {
        DepthMap::new(
            ndarray::Array2::from_shape_fn((4, 4), |(r, c)| f(r * 4 + c)),
            0.2,
            0.3,
        )
        .unwrap()
    };
    let a = ImageProducts::new(a_level.clone(), depth(|_| 0.25)).unwrap();
    let b = ImageProducts::new(a_level, depth(|i| 0.25 + 1e-3 * i as f32)).unwrap();
    approx::assert_abs_diff_eq!(
        a.median_depth_difference(&b, -20.0).unwrap().unwrap(),
        5e-3,
        epsilon = 1e-6
    );
    assert_eq!(a.median_depth_difference(&b, 1.0).unwrap(), None);
    let small = ImageProducts::new(
        LevelImage::new(ndarray::Array2::zeros((2, 2))).unwrap(),
        DepthMap::new(ndarray::Array2::from_elem((2, 2), 0.25), 0.2, 0.3).unwrap(),
    )
    .unwrap();
    assert!(a.median_depth_difference(&small, -20.0).is_err());
}
