//! A point target at 25 cm: where the peak lands and how wide it is (docs/physics.md §1, §4).

use backproject::{AxisRange, BackProjector, Direct, RangeCompressed, Separable, VoxelGrid};
use nalgebra::Point3;
use radar_sim::FrequencySweep;

use crate::common::{Scatterer, TestArray, minus_3db_width, point_signal};

/// λ_c·z/(2D): the lateral resolution of a two-way aperture D at range z (docs/physics.md §1).
fn lateral_resolution(sweep: &FrequencySweep, z: f64, aperture: f64) -> f64 {
    sweep.centre_wavelength() * z / (2.0 * aperture)
}

/// A grid of 12 × 12 × 12 voxels with the default face grid's spacing and phase, around a
/// point.
fn default_spacing_around(p: Point3<f64>) -> VoxelGrid {
    let face = VoxelGrid::default_face();
    let near = |axis: &backproject::GridAxis, c: f64| {
        let first = ((c - axis.start_m()) / axis.step_m()).round() as i64 - 6;
        AxisRange::from_count(
            axis.start_m() + first as f64 * axis.step_m(),
            axis.step_m(),
            12,
        )
    };
    VoxelGrid::new(
        near(face.x(), p.x),
        near(face.y(), p.y),
        near(face.z(), p.z),
    )
    .unwrap()
}

#[test]
fn the_peak_lands_in_the_true_voxel() {
    let array = TestArray::qar50();
    let sweep = FrequencySweep::qar50();
    // Near boresight, off the voxel centres of the default grid by 0.3, 0.25 and 0.28 of a
    // step; and off axis on a voxel column, off in z. (Off axis, the point spread function is
    // tilted along the line of sight, by 3·10⁻² rad here: a lateral offset δ between target and
    // voxel column then moves the peak along z by about 18·δ·tilt, which is why the off-axis
    // target sits on a column.)
    let targets = [
        Point3::new(0.0012, -0.001, 0.2525 + 0.0007),
        Point3::new(0.048, -0.024, 0.2525 - 0.0007),
    ];
    for target in targets {
        let cube = point_signal(
            &array,
            &sweep,
            &[Scatterer::unit(target.x, target.y, target.z)],
        );
        let grid = default_spacing_around(target);
        for method in [
            &RangeCompressed::default() as &dyn BackProjector,
            &Separable::default(),
        ] {
            let volume = method.back_project(&array, &sweep, &cube, &grid).unwrap();
            let peak = volume.position(volume.peak().0);
            let steps = [grid.x().step_m(), grid.y().step_m(), grid.z().step_m()];
            for (axis, (p, (t, step))) in ["x", "y", "z"]
                .iter()
                .zip(peak.iter().zip(target.iter().zip(steps)))
            {
                assert!(
                    (p - t).abs() <= step / 2.0 + 1e-12,
                    "{}: peak {axis} = {p} m, target {t} m, step {step} m",
                    method.name()
                );
            }
        }
    }
}

#[test]
fn the_matched_filter_peaks_exactly_at_the_target() {
    // Cauchy–Schwarz: |I(v)| ≤ I(target) for a single point target, with equality only at the
    // target, so on a grid that contains the target that voxel is the maximum.
    let array = TestArray::qar50();
    let sweep = FrequencySweep::qar50();
    let target = Point3::new(0.0305, -0.0175, 0.2615);
    let cube = point_signal(
        &array,
        &sweep,
        &[Scatterer::unit(target.x, target.y, target.z)],
    );
    let grid = VoxelGrid::new(
        AxisRange::centred(target.x, 0.0005, 7),
        AxisRange::centred(target.y, 0.0005, 7),
        AxisRange::centred(target.z, 0.0005, 7),
    )
    .unwrap();
    for method in [&Direct as &dyn BackProjector, &Separable::default()] {
        let volume = method.back_project(&array, &sweep, &cube, &grid).unwrap();
        assert_eq!(volume.peak().0, [3, 3, 3], "{}", method.name());
    }
}

/// The −3 dB widths along x, y (lines of 0.5 mm steps through the target) and z.
fn psf_widths(method: &dyn BackProjector, sweep: &FrequencySweep) -> [f64; 3] {
    let array = TestArray::qar50();
    let target = Point3::new(0.0, 0.0, 0.25);
    let cube = point_signal(
        &array,
        sweep,
        &[Scatterer::unit(target.x, target.y, target.z)],
    );
    let single = |c: f64| AxisRange::centred(c, 0.001, 1);
    let lateral = AxisRange::centred(0.0, 0.0005, 41);
    let depth = AxisRange::centred(target.z, 0.0005, 81);
    let lines = [
        (lateral, single(target.y), single(target.z)),
        (single(target.x), lateral, single(target.z)),
        (single(target.x), single(target.y), depth),
    ];
    let mut widths = [0.0; 3];
    for (axis, (x, y, z)) in lines.into_iter().enumerate() {
        let grid = VoxelGrid::new(x, y, z).unwrap();
        let volume = method.back_project(&array, sweep, &cube, &grid).unwrap();
        let magnitudes: Vec<f32> = volume.data().iter().map(|c| c.norm()).collect();
        let coordinates = [grid.x(), grid.y(), grid.z()][axis].coordinates();
        widths[axis] = minus_3db_width(&coordinates, &magnitudes).expect("a closed main lobe");
    }
    widths
}

#[test]
fn the_point_spread_function_has_the_theoretical_widths() {
    let sweep = FrequencySweep::qar50();
    let [wx, wy, wz] = psf_widths(&Direct, &sweep);
    eprintln!(
        "−3 dB widths at 25 cm: x {:.2} mm, y {:.2} mm, z {:.2} mm (λz/2D = {:.2} mm, c/2B = {:.2} mm)",
        wx * 1e3,
        wy * 1e3,
        wz * 1e3,
        lateral_resolution(&sweep, 0.25, 0.14) * 1e3,
        radar_sim::SPEED_OF_LIGHT / (2.0 * sweep.bandwidth_hz()) * 1e3
    );
    // docs/physics.md §1: lateral ≈ λz/(2D) ≈ 3.5 mm; depth between ≈ 11.8 mm and c/(2B) = 15 mm.
    for (axis, w) in [("x", wx), ("y", wy)] {
        assert!(
            (0.0025..=0.005).contains(&w),
            "lateral width along {axis}: {w} m"
        );
    }
    assert!((0.010..=0.016).contains(&wz), "depth width: {wz} m");
}

#[test]
fn a_hann_window_widens_the_range_response() {
    // A taper trades resolution for sidelobes: its main lobe is wider (≈ 1.6× for Hann).
    let sweep = FrequencySweep::qar50();
    let rectangular = psf_widths(&RangeCompressed::default(), &sweep)[2];
    let hann = psf_widths(
        &RangeCompressed::new(
            8,
            backproject::FrequencyWindow::Hann,
            backproject::Interpolation::Linear,
        )
        .unwrap(),
        &sweep,
    )[2];
    assert!(
        hann > 1.3 * rectangular,
        "Hann {hann} m vs rectangular {rectangular} m"
    );
}

#[test]
fn two_targets_8_mm_apart_are_resolved() {
    let array = TestArray::qar50();
    let sweep = FrequencySweep::qar50();
    let cube = point_signal(
        &array,
        &sweep,
        &[
            Scatterer::unit(-0.004, 0.0, 0.25),
            Scatterer::unit(0.004, 0.0, 0.25),
        ],
    );
    let grid = VoxelGrid::new(
        AxisRange::centred(0.0, 0.0005, 41),
        AxisRange::centred(0.0, 0.001, 1),
        AxisRange::centred(0.25, 0.001, 1),
    )
    .unwrap();
    let volume = Separable::default()
        .back_project(&array, &sweep, &cube, &grid)
        .unwrap();
    let db: Vec<f64> = volume
        .data()
        .iter()
        .map(|c| 20.0 * (c.norm() as f64).log10())
        .collect();
    // x = −4, 0, +4 mm are samples 12, 20, 28.
    let left = db[8..=16].iter().copied().fold(f64::MIN, f64::max);
    let right = db[24..=32].iter().copied().fold(f64::MIN, f64::max);
    let dip = db[16..=24].iter().copied().fold(f64::MAX, f64::min);
    eprintln!("two targets: peaks {left:.2} / {right:.2} dB, dip {dip:.2} dB");
    assert!(
        left.min(right) - dip >= 3.0,
        "dip of only {} dB",
        left.min(right) - dip
    );
}
