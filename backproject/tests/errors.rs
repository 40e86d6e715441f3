//! Bad input gives typed errors that name the numbers.

use backproject::{
    AxisRange, BackProjector, BackprojectError, DepthImage, DepthMap, Direct, DynamicRange,
    FrequencyWindow, ImageProducts, Interpolation, LevelImage, ProjectionMethod, RangeCompressed,
    Separable, Volume, VoxelGrid,
};
use nalgebra::Point3;
use ndarray::{Array2, Array3};
use num_complex::Complex32;
use radar_sim::{FrequencySweep, RadarError, SignalCube};

use crate::common::TestArray;

fn small_array() -> TestArray {
    TestArray {
        tx: (0..4)
            .map(|i| Point3::new(0.01 * i as f64, 0.0, 0.0))
            .collect(),
        rx: (0..3)
            .map(|i| Point3::new(0.0, 0.01 * i as f64, 0.0))
            .collect(),
    }
}

fn small_grid() -> VoxelGrid {
    VoxelGrid::new(
        AxisRange::centred(0.0, 0.004, 3),
        AxisRange::centred(0.0, 0.004, 3),
        AxisRange::centred(0.25, 0.0025, 3),
    )
    .unwrap()
}

fn methods() -> Vec<Box<dyn BackProjector>> {
    vec![
        Box::new(Direct),
        Box::new(Separable::default()),
        Box::new(RangeCompressed::default()),
    ]
}

#[test]
fn a_cube_that_disagrees_with_the_array_or_the_sweep_is_refused() {
    let array = small_array();
    let sweep = FrequencySweep::new(72e9, 82e9, 8).unwrap();
    let grid = small_grid();
    for cube in [
        SignalCube::zeros(3, 3, 8), // one TX short
        SignalCube::zeros(4, 5, 8), // two RX too many
        SignalCube::zeros(4, 3, 7), // one frequency short
    ] {
        let actual = format!("{:?}", cube.data().dim());
        for method in methods() {
            let error = method
                .back_project(&array, &sweep, &cube, &grid)
                .unwrap_err();
            assert!(
                matches!(error, BackprojectError::Radar(RadarError::Shape { .. })),
                "{error:?}"
            );
            let message = error.to_string();
            assert!(message.contains("(4, 3, 8)"), "{message}");
            assert!(message.contains(&actual), "{message}");
        }
    }
}

#[test]
fn a_non_finite_sample_or_an_empty_array_is_refused() {
    let array = small_array();
    let sweep = FrequencySweep::new(72e9, 82e9, 8).unwrap();
    let grid = small_grid();
    let mut cube = SignalCube::zeros(4, 3, 8);
    cube.data_mut()[[2, 1, 5]] = Complex32::new(f32::NAN, 0.0);
    let message = Direct
        .back_project(&array, &sweep, &cube, &grid)
        .unwrap_err()
        .to_string();
    assert!(message.contains("[tx 2, rx 1, frequency 5]"), "{message}");

    let no_rx = TestArray {
        tx: small_array().tx,
        rx: Vec::new(),
    };
    let error = Direct
        .back_project(&no_rx, &sweep, &SignalCube::zeros(4, 0, 8), &grid)
        .unwrap_err();
    assert!(matches!(error, BackprojectError::Radar(_)), "{error:?}");
}

#[test]
fn empty_inverted_and_non_finite_axes_are_refused() {
    let good = AxisRange::new(-0.1, 0.1, 0.004);
    let cases = [
        (AxisRange::new(0.2, 0.2, 0.0025), "empty"),
        (AxisRange::new(0.36, 0.20, 0.0025), "inverted"),
        (AxisRange::new(0.20, 0.36, 0.0), "step must be positive"),
        (AxisRange::new(0.20, 0.36, -0.0025), "step must be positive"),
        (AxisRange::new(0.20, f64::NAN, 0.0025), "finite"),
    ];
    for (z, reason) in cases {
        let error = VoxelGrid::new(good, good, z).unwrap_err();
        match &error {
            BackprojectError::InvalidAxis {
                axis,
                start_m,
                step_m,
                ..
            } => {
                assert_eq!(*axis, "z");
                assert_eq!(*start_m, z.start_m);
                assert!(*step_m == z.step_m || step_m.is_nan());
            }
            other => panic!("expected InvalidAxis, got {other:?}"),
        }
        let message = error.to_string();
        assert!(message.contains(reason), "{message}");
        assert!(message.contains(&z.start_m.to_string()), "{message}");
    }
}

#[test]
fn a_grid_over_the_memory_budget_is_refused_before_allocation() {
    let face = VoxelGrid::default_face();
    let (x, y, z) = (face.x().range(), face.y().range(), face.z().range());
    // 64³ voxels × 8 bytes = 2 097 152 bytes, against a limit of 1 MiB.
    let error = VoxelGrid::with_memory_limit(x, y, z, 1 << 20).unwrap_err();
    match &error {
        BackprojectError::MemoryLimit {
            needed_bytes,
            limit_bytes,
            ..
        } => {
            assert_eq!(*needed_bytes, 64 * 64 * 64 * 8);
            assert_eq!(*limit_bytes, 1 << 20);
        }
        other => panic!("expected MemoryLimit, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("2097152") && message.contains("1048576"),
        "{message}"
    );

    // A grid far too large for the default limit (10⁶ voxels per axis).
    let huge = AxisRange::new(0.0, 1000.0, 0.001);
    let error = VoxelGrid::new(huge, huge, AxisRange::new(0.2, 0.3, 0.1)).unwrap_err();
    assert!(
        matches!(error, BackprojectError::MemoryLimit { .. }),
        "{error:?}"
    );
}

#[test]
fn a_back_projection_over_the_memory_budget_is_refused() {
    // The volume fits, the range profiles of 8 836 pairs do not.
    let array = TestArray::qar50();
    let sweep = FrequencySweep::qar50();
    let cube = SignalCube::zeros(94, 94, 128);
    let grid = VoxelGrid::default_face()
        .with_limit(VoxelGrid::default_face().memory_bytes() + 1000)
        .unwrap();
    for method in methods() {
        let error = method
            .back_project(&array, &sweep, &cube, &grid)
            .unwrap_err();
        match &error {
            BackprojectError::MemoryLimit {
                what,
                needed_bytes,
                limit_bytes,
            } => {
                assert!(what.contains(method.name()), "{what}");
                assert!(needed_bytes > limit_bytes);
                assert_eq!(*limit_bytes, grid.memory_bytes() + 1000);
            }
            other => panic!("{}: expected MemoryLimit, got {other:?}", method.name()),
        }
    }
}

#[test]
fn invalid_method_settings_are_refused() {
    let message = RangeCompressed::new(4, FrequencyWindow::Rectangular, Interpolation::Linear)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("4×") && message.contains("8×"),
        "{message}"
    );
    assert!(Separable::new(0).is_err());
    // The same checks guard deserialised settings.
    let json = r#"{"range_compressed":{"padding":2,"window":"hann","interpolation":"linear"}}"#;
    let error = serde_json::from_str::<ProjectionMethod>(json)
        .unwrap_err()
        .to_string();
    assert!(error.contains("2×"), "{error}");
    let json = r#"{"separable":{"voxels_per_block":0}}"#;
    assert!(serde_json::from_str::<ProjectionMethod>(json).is_err());
}

#[test]
fn invalid_image_inputs_are_refused() {
    for db in [0.0, -10.0, f32::NAN, f32::INFINITY] {
        let message = DynamicRange::new(db).unwrap_err().to_string();
        assert!(message.contains(&db.to_string()), "{message}");
    }
    let level = LevelImage::new(Array2::from_elem((4, 5), -3.0)).unwrap();
    let depth = DepthMap::new(Array2::from_elem((5, 4), 0.25), 0.2, 0.36).unwrap();
    let range = DynamicRange::new(20.0).unwrap();
    let message = DepthImage::new(&depth, &level, range)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("(4, 5)") && message.contains("(5, 4)"),
        "{message}"
    );
    assert!(ImageProducts::new(level.clone(), depth).is_err());
    assert!(LevelImage::new(Array2::from_elem((2, 2), 1.0)).is_err());
    assert!(LevelImage::new(Array2::from_elem((2, 2), f32::NAN)).is_err());
    assert!(DepthMap::new(Array2::zeros((2, 2)), 0.3, 0.2).is_err());

    // A volume of shape other than its grid's, and a volume with no signal.
    let grid = small_grid();
    let message = Volume::new(grid, Array3::zeros((3, 3, 2)))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("(3, 3, 3)") && message.contains("(3, 3, 2)"),
        "{message}"
    );
    let zero = Volume::new(grid, Array3::zeros((3, 3, 3))).unwrap();
    assert!(matches!(
        ImageProducts::from_volume(&zero),
        Err(BackprojectError::ZeroVolume { .. })
    ));
}
