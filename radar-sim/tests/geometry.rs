//! Arrays: the QAR50 layout of docs/physics.md §1, the generic kinds and their validation.

use std::collections::BTreeSet;

use nalgebra::Point3;
use proptest::prelude::*;
use radar_sim::{
    ArrayGeometry, BoundaryArray, ChannelMask, CustomArray, Qar50, RadarError, validate_array,
    virtual_aperture,
};

/// Positions in units of 0.75 mm (the half pitch of the virtual aperture), exactly.
fn quarter_steps(v: f64) -> i64 {
    let q = v / 0.75e-3;
    assert!(
        (q - q.round()).abs() < 1e-6,
        "{v} m is not a multiple of 0.75 mm"
    );
    q.round() as i64
}

#[test]
fn qar50_has_94_tx_and_94_rx() {
    let a = Qar50::new();
    assert_eq!(a.tx().len(), 94);
    assert_eq!(a.rx().len(), 94);
    assert_eq!(a.n_channels(), 8836);
    assert!(a.channel_mask().is_none());
    assert!(a.tx().iter().chain(a.rx()).all(|p| p.z == 0.0));
    approx::assert_abs_diff_eq!(a.centre(), Point3::origin(), epsilon = 1e-15);
}

#[test]
fn qar50_tx_lie_on_the_vertical_edges_with_pulled_out_ends() {
    let a = Qar50::new();
    for side in [-1.0, 1.0] {
        let edge: Vec<_> = a.tx().iter().filter(|p| p.x * side > 0.0).collect();
        assert_eq!(edge.len(), 47);
        let regular: Vec<_> = edge
            .iter()
            .filter(|p| (p.x.abs() - 0.0705).abs() < 1e-12)
            .collect();
        assert_eq!(regular.len(), 45);
        // y = −66, −63, …, +66 mm: 3 mm pitch.
        let ys: Vec<i64> = regular.iter().map(|p| (p.y * 1e4).round() as i64).collect();
        let expected: Vec<i64> = (0..45).map(|k| -660 + 30 * k).collect();
        assert_eq!(ys, expected);
        // The two pulled-out end elements: x = ±72.0 mm, y = ±69 mm.
        for y in [-0.069, 0.069] {
            assert!(
                edge.iter()
                    .any(|p| (p.x - side * 0.072).abs() < 1e-12 && (p.y - y).abs() < 1e-12),
                "missing end element ({}, {y})",
                side * 0.072
            );
        }
    }
}

#[test]
fn qar50_rx_lie_on_the_horizontal_edges() {
    let a = Qar50::new();
    for side in [-1.0, 1.0] {
        let xs: Vec<i64> = (a.rx().iter())
            .filter(|p| (p.y - side * 0.0705).abs() < 1e-12)
            .map(|p| (p.x * 1e4).round() as i64)
            .collect();
        let expected: Vec<i64> = (0..47).map(|k| -690 + 30 * k).collect();
        assert_eq!(xs, expected);
    }
}

#[test]
fn qar50_virtual_aperture_is_94_by_94_at_1_5_mm() {
    let a = Qar50::new();
    let mids = virtual_aperture(&a);
    assert_eq!(mids.len(), 8836);
    // Channel order is TX-major.
    approx::assert_abs_diff_eq!(mids[3 * 94 + 5], nalgebra::center(&a.tx()[3], &a.rx()[5]));

    let cells: Vec<(i64, i64)> = mids
        .iter()
        .map(|m| (quarter_steps(m.x), quarter_steps(m.y)))
        .collect();
    let distinct: BTreeSet<_> = cells.iter().copied().collect();
    assert_eq!(distinct.len(), 8836, "every channel has its own midpoint");

    // Rows: y = −69.75 + 1.5·j mm, j = 0..93 (odd multiples of 0.75 mm from −93 to 93).
    let rows: BTreeSet<i64> = cells.iter().map(|c| c.1).collect();
    let expected_rows: BTreeSet<i64> = (0..94).map(|j| -93 + 2 * j).collect();
    assert_eq!(rows, expected_rows);

    // Columns: the 90 regular transmitters put x on the same lattice over ±69.75 mm; the four
    // pulled-out ones shift their 4 × 94 midpoints by 0.75 mm (even multiples of 0.75 mm),
    // and those lie in the four rows y = ±0.75 and ±69.75 mm.
    type Cells = Vec<(i64, i64)>;
    let (on, off): (Cells, Cells) = cells.iter().partition(|c| c.0.rem_euclid(2) == 1);
    assert_eq!(off.len(), 4 * 94);
    assert_eq!(on.len(), 90 * 94);
    let on_columns: BTreeSet<i64> = on.iter().map(|c| c.0).collect();
    assert_eq!(
        on_columns, expected_rows,
        "94 columns at 1.5 mm over ±69.75 mm"
    );
    let off_rows: BTreeSet<i64> = off.iter().map(|c| c.1).collect();
    assert_eq!(off_rows, BTreeSet::from([-93, -1, 1, 93]));
}

#[test]
fn qar50_pitch_is_below_half_a_wavelength() {
    // 1.5 mm < λ/2 at 82 GHz (1.83 mm): no grating lobes (docs/physics.md §1).
    let half_wavelength = radar_sim::SPEED_OF_LIGHT / 82e9 / 2.0;
    assert!(Qar50::PITCH_M / 2.0 < half_wavelength);
}

#[test]
fn boundary_array_places_elements_on_the_edges() {
    let a = BoundaryArray::new(0.1, 0.004, 20).unwrap();
    assert_eq!((a.tx().len(), a.rx().len()), (40, 40));
    for p in a.tx() {
        approx::assert_relative_eq!(p.x.abs(), 0.05);
        assert!(p.y.abs() <= 19.0 * 0.004 / 2.0 + 1e-12);
    }
    for p in a.rx() {
        approx::assert_relative_eq!(p.y.abs(), 0.05);
    }
    // Pitch along an edge.
    approx::assert_relative_eq!((a.tx()[1] - a.tx()[0]).norm(), 0.004, epsilon = 1e-12);
    approx::assert_abs_diff_eq!(a.centre(), Point3::origin(), epsilon = 1e-15);
}

#[test]
fn boundary_array_rejects_bad_parameters() {
    for (side, pitch, n) in [
        (0.0, 0.003, 10),
        (-0.1, 0.003, 10),
        (f64::NAN, 0.003, 10),
        (f64::INFINITY, 0.003, 10),
        (0.1, 0.0, 10),
        (0.1, f64::NAN, 10),
        (0.1, 0.003, 0),
        (0.1, 0.01, 11), // 10 pitches = the whole side: elements would sit on the corners
    ] {
        assert!(
            matches!(
                BoundaryArray::new(side, pitch, n),
                Err(RadarError::Config { .. })
            ),
            "({side}, {pitch}, {n}) accepted"
        );
    }
}

proptest! {
    #[test]
    fn every_valid_boundary_array_validates(
        side in 0.01f64..1.0,
        n in 1usize..60,
        fill in 0.05f64..0.99,
    ) {
        let pitch = if n > 1 { fill * side / (n - 1) as f64 } else { side };
        let a = BoundaryArray::new(side, pitch, n).unwrap();
        prop_assert!(validate_array(&a).is_ok());
        prop_assert_eq!(a.n_channels(), 4 * n * n);
        // Every element inside the square's outline, on an edge.
        for p in a.tx().iter().chain(a.rx()) {
            prop_assert!(p.x.abs() <= side / 2.0 + 1e-12 && p.y.abs() <= side / 2.0 + 1e-12);
        }
    }
}

#[test]
fn custom_array_rejects_empty_non_finite_and_duplicate_positions() {
    let p = Point3::new(0.0, 0.0, 0.0);
    let q = Point3::new(0.01, 0.0, 0.0);
    let cases = [
        (vec![], vec![p]),
        (vec![p], vec![]),
        (vec![Point3::new(f64::NAN, 0.0, 0.0)], vec![p]),
        (vec![p], vec![Point3::new(0.0, f64::INFINITY, 0.0)]),
        (vec![p, q, p], vec![q]),
    ];
    for (tx, rx) in cases {
        let described = format!("{tx:?} / {rx:?}");
        assert!(
            matches!(CustomArray::new(tx, rx), Err(RadarError::Config { .. })),
            "{described} accepted"
        );
    }
    // A TX and an RX may share a place (a monostatic pair).
    assert!(CustomArray::new(vec![p], vec![p]).is_ok());
}

#[test]
fn channel_masks_are_checked_against_the_array() {
    let mask = ChannelMask::all_alive(3, 3);
    assert!(matches!(
        Qar50::new().with_mask(mask),
        Err(RadarError::Shape { .. })
    ));
    let mask = ChannelMask::all_alive(94, 94)
        .with_dead_tx(3)
        .unwrap()
        .with_dead_channel(5, 7)
        .unwrap();
    let a = Qar50::new().with_mask(mask).unwrap();
    let m = a.channel_mask().unwrap();
    assert_eq!(m.n_alive(), 94 * 94 - 94 - 1);
    assert!(!m.is_alive(3, 50) && !m.is_alive(5, 7) && m.is_alive(5, 8));
    assert!(ChannelMask::all_alive(2, 2).with_dead_rx(2).is_err());
    assert!(
        ChannelMask::all_alive(2, 2)
            .with_dead_channel(0, 9)
            .is_err()
    );
}

#[test]
fn decimation_keeps_every_nth_element_and_the_mask() {
    let mask = ChannelMask::all_alive(94, 94).with_dead_tx(2).unwrap();
    let a = CustomArray::decimated(&Qar50::new().with_mask(mask).unwrap(), 2).unwrap();
    assert_eq!((a.tx().len(), a.rx().len()), (47, 47));
    assert_eq!(a.tx()[1], Qar50::new().tx()[2]);
    let m = a.channel_mask().unwrap();
    assert!(!m.is_alive(1, 0) && m.is_alive(0, 0));
    assert!(CustomArray::decimated(&Qar50::new(), 0).is_err());
}

/// A third-party array (the seam): a line of monostatic pairs along x.
struct Line(Vec<Point3<f64>>);

impl ArrayGeometry for Line {
    fn tx(&self) -> &[Point3<f64>] {
        &self.0
    }
    fn rx(&self) -> &[Point3<f64>] {
        &self.0
    }
}

#[test]
fn third_party_arrays_are_validated_and_forwarded() {
    let line = Line(
        (0..4)
            .map(|i| Point3::new(i as f64 * 0.01, 0.0, 0.0))
            .collect(),
    );
    assert!(validate_array(&line).is_ok());
    approx::assert_relative_eq!(line.centre().x, 0.015);
    // Blanket impls forward the provided methods too.
    let masked = Qar50::new()
        .with_mask(ChannelMask::all_alive(94, 94))
        .unwrap();
    let boxed: Box<dyn ArrayGeometry> = Box::new(masked);
    assert!(boxed.channel_mask().is_some());
    let by_ref: &dyn ArrayGeometry = &boxed;
    assert!(by_ref.channel_mask().is_some());
    let broken = Line(vec![Point3::new(0.0, f64::NAN, 0.0)]);
    assert!(validate_array(&broken).is_err());
}
