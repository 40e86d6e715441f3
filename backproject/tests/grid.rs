//! Voxel grids: the default of docs/physics.md §4, axis counting, image orientation.

use backproject::{AxisRange, BYTES_PER_VOXEL, VoxelGrid};
use proptest::prelude::*;

#[test]
fn the_default_face_grid_is_the_one_of_physics_md() {
    let grid = VoxelGrid::default_face();
    assert_eq!(grid.shape(), (64, 64, 64));
    for axis in [grid.x(), grid.y()] {
        assert_eq!(axis.start_m(), -0.128);
        assert_eq!(axis.step_m(), 0.004);
        approx::assert_abs_diff_eq!(axis.end_m(), 0.128, epsilon = 1e-12);
    }
    assert_eq!(grid.z().start_m(), 0.20);
    assert_eq!(grid.z().step_m(), 0.0025);
    approx::assert_abs_diff_eq!(grid.z().end_m(), 0.36, epsilon = 1e-12);
    assert_eq!(grid.memory_bytes(), 64 * 64 * 64 * BYTES_PER_VOXEL);
    // The same grid through the validating constructor.
    let built = VoxelGrid::new(
        AxisRange::new(-0.128, 0.128, 0.004),
        AxisRange::new(-0.128, 0.128, 0.004),
        AxisRange::new(0.20, 0.36, 0.0025),
    )
    .unwrap();
    assert_eq!(built.shape(), grid.shape());
    assert_eq!(built.position(63, 0, 63), grid.position(63, 0, 63));
}

#[test]
fn images_are_seen_from_the_array_with_y_up() {
    let grid = VoxelGrid::new(
        AxisRange::from_count(0.0, 0.01, 4),
        AxisRange::from_count(0.0, 0.01, 3),
        AxisRange::from_count(0.2, 0.01, 2),
    )
    .unwrap();
    assert_eq!(grid.image_shape(), (3, 4));
    // Top-left pixel: largest y, largest x.
    assert_eq!(grid.pixel_to_column(0, 0), (3, 2));
    let (x, y) = grid.pixel_position(0, 0);
    approx::assert_abs_diff_eq!(x, 0.03, epsilon = 1e-12);
    approx::assert_abs_diff_eq!(y, 0.02, epsilon = 1e-12);
    // Bottom-right: smallest y, smallest x.
    assert_eq!(grid.pixel_to_column(2, 3), (0, 0));
}

#[test]
fn grids_survive_a_serde_round_trip() {
    let grid = VoxelGrid::default_face().with_limit(123_456_789).unwrap();
    let json = serde_json::to_string(&grid).unwrap();
    let back: VoxelGrid = serde_json::from_str(&json).unwrap();
    assert_eq!(back.shape(), grid.shape());
    assert_eq!(back.memory_limit_bytes(), 123_456_789);
    assert_eq!(back.position(5, 6, 7), grid.position(5, 6, 7));
    // Invalid axes are refused on the way in.
    let bad = json.replace("0.0025", "-0.0025");
    assert!(serde_json::from_str::<VoxelGrid>(&bad).is_err());
}

proptest! {
    /// `from_count` gives exactly that many samples, all inside [start, stop).
    #[test]
    fn axes_hold_the_requested_samples(
        start in -1.0f64..1.0,
        step in 1e-4f64..0.1,
        count in 1usize..500,
    ) {
        let range = AxisRange::from_count(start, step, count);
        let grid = VoxelGrid::new(range, range, AxisRange::from_count(0.2, 0.01, 2)).unwrap();
        let axis = grid.x();
        prop_assert_eq!(axis.len(), count);
        for c in axis.coordinates() {
            prop_assert!(c >= start - 1e-12 && c < range.stop_m);
        }
        // The pixel mapping is a bijection.
        for row in 0..grid.image_shape().0.min(5) {
            for col in 0..grid.image_shape().1.min(5) {
                let (ix, iy) = grid.pixel_to_column(row, col);
                prop_assert_eq!(grid.column_to_pixel(ix, iy), (row, col));
            }
        }
    }

    /// A half-open range holds every sample below its stop, however the stop falls.
    #[test]
    fn half_open_ranges_count_samples_below_the_stop(
        start in -1.0f64..1.0,
        step in 1e-3f64..0.1,
        span in 1e-3f64..2.0,
    ) {
        let range = AxisRange::new(start, start + span, step);
        let one = AxisRange::from_count(0.0, 1.0, 1);
        let grid = VoxelGrid::new(range, one, one).unwrap();
        let n = grid.x().len();
        prop_assert!(grid.x().last_m() < start + span);
        // One more sample would reach the stop (up to rounding slack).
        prop_assert!(grid.x().coordinate(n) >= start + span - 1e-6 * step);
    }
}
