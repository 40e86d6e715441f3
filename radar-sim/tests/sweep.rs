//! Frequency sweeps (docs/physics.md §1).

use radar_sim::{FrequencySweep, RadarError, SPEED_OF_LIGHT};

#[test]
fn default_sweep_is_72_to_82_ghz_in_128_steps() {
    let s = FrequencySweep::default();
    assert_eq!(s, FrequencySweep::qar50());
    assert_eq!((s.start_hz(), s.stop_hz(), s.steps()), (72e9, 82e9, 128));
    approx::assert_relative_eq!(s.step_hz(), 10e9 / 127.0);
    approx::assert_relative_eq!(s.frequency(127), 82e9, max_relative = 1e-15);
    // Unambiguous range c/(2Δf) ≈ 1.90 m.
    approx::assert_relative_eq!(s.unambiguous_range(), SPEED_OF_LIGHT * 127.0 / 20e9);
    assert!((s.unambiguous_range() - 1.90).abs() < 0.01);
}

#[test]
fn bad_sweeps_are_typed_errors() {
    for (start, stop, steps) in [
        (0.0, 82e9, 128),
        (-72e9, 82e9, 128),
        (f64::NAN, 82e9, 128),
        (72e9, f64::INFINITY, 128),
        (72e9, 72e9, 128),
        (82e9, 72e9, 128),
        (72e9, 82e9, 1),
        (72e9, 82e9, 0),
    ] {
        assert!(
            matches!(
                FrequencySweep::new(start, stop, steps),
                Err(RadarError::Config { .. })
            ),
            "({start}, {stop}, {steps}) accepted"
        );
    }
}

#[test]
fn sweeps_deserialise_only_when_valid() {
    let json = serde_json::to_string(&FrequencySweep::qar50()).unwrap();
    let back: FrequencySweep = serde_json::from_str(&json).unwrap();
    assert_eq!(back, FrequencySweep::qar50());
    let bad = r#"{"start_hz": 72e9, "stop_hz": 82e9, "steps": 1}"#;
    assert!(serde_json::from_str::<FrequencySweep>(bad).is_err());
}

#[test]
fn decimation_keeps_the_band_start_and_step_multiple() {
    let s = FrequencySweep::qar50().decimated(2).unwrap();
    assert_eq!(s.steps(), 64);
    approx::assert_relative_eq!(
        s.step_hz(),
        2.0 * FrequencySweep::qar50().step_hz(),
        max_relative = 1e-12
    );
}
