//! Tests: bootstrap intervals of Table 1, paired comparisons, and the cosine study's
//! diagonal maximum on the figure's scale.

use abs_fit::evaluate::{
    Bootstrap, Cell, CosineMatrix, FaceErrors, MEAN_BASELINE, cosine_study_faces,
    paired_difference, table1,
};
use abs_fit::{AbsFitError, ParamLayout};
use morphable::SamplingConfig;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// `n` per-face values of one method: every cell of face i is `value(i)`.
fn errors(method: &str, n: usize, value: impl Fn(usize) -> f64) -> FaceErrors {
    FaceErrors::new(
        method,
        (0..n).map(|i| [value(i); Cell::ALL.len()]).collect(),
    )
}

/// `n` draws of N(0, 1) from `seed`.
fn normal(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| StandardNormal.sample(&mut rng)).collect()
}

#[test]
fn intervals_have_the_width_of_the_central_limit() {
    // The mean of n N(0, 1) values has standard error 1/√n; a 95 % interval is ± 1.96/√n.
    // With n = 400 the bootstrap's half-width estimates 0.098: the sample standard deviation
    // of 400 draws is within ±7 % at 2σ and the 2 000 resamples add ≈ 3 %, so 12 % is ≥ 3σ.
    let n = 400;
    let x = normal(n, 1);
    let row = &table1(&[errors("x", n, |i| x[i])], &Bootstrap::default()).unwrap()[0];
    let interval = row.intervals.as_ref().unwrap().cell(Cell::Shape);
    let expected = 1.96 / (n as f64).sqrt();
    assert!(
        (interval.half_width() / expected - 1.0).abs() < 0.12,
        "{interval:?} vs ± {expected}"
    );
    assert!(
        interval.contains(row.l2_shape),
        "{interval:?} {}",
        row.l2_shape
    );
    // No spread, no width.
    let flat = &table1(&[errors("flat", 50, |_| 2.5)], &Bootstrap::default()).unwrap()[0];
    let interval = flat.intervals.as_ref().unwrap().cell(Cell::PointDistance);
    assert_eq!((interval.low, interval.high), (2.5, 2.5));
}

#[test]
fn ratios_to_the_mean_baseline_are_paired() {
    // Another method leaves 80 % of the Mean baseline's distance on every face, whatever the
    // face: paired, the ratio is exactly 0.8 on every resample, although each distance alone
    // varies a lot from face to face.
    let n = 200;
    let x = normal(n, 2);
    let mean = errors(MEAN_BASELINE, n, |i| 5.0 + x[i].abs() * 3.0);
    let better = errors("better", n, |i| 0.8 * (5.0 + x[i].abs() * 3.0));
    let rows = table1(&[mean, better], &Bootstrap::default()).unwrap();
    assert!(rows[0].intervals.as_ref().unwrap().ratio_to_mean.is_none());
    let intervals = rows[1].intervals.as_ref().unwrap();
    let ratio = intervals.ratio_to_mean.unwrap();
    assert!(
        (ratio.low - 0.8).abs() < 1e-12 && (ratio.high - 0.8).abs() < 1e-12,
        "{ratio:?}"
    );
    assert!(intervals.cell(Cell::PointDistance).half_width() > 0.05);
    // The same inputs give the same intervals, with or without other rows beside them.
    let again = table1(
        &[errors(MEAN_BASELINE, n, |i| 5.0 + x[i].abs() * 3.0)],
        &Bootstrap::default(),
    )
    .unwrap();
    assert_eq!(again[0], rows[0]);
}

#[test]
fn a_paired_difference_resolves_what_overlapping_intervals_do_not() {
    // B varies a lot from face to face; A is B + 0.05 on every face. Their own intervals
    // overlap, but the paired difference is exactly 0.05: resolved, A higher.
    let n = 300;
    let x = normal(n, 3);
    let b = errors("B", n, |i| 1.0 + x[i]);
    let a = errors("A", n, |i| 1.05 + x[i]);
    let rows = table1(&[a.clone(), b.clone()], &Bootstrap::default()).unwrap();
    let (ia, ib) = (
        rows[0].intervals.as_ref().unwrap().cell(Cell::Shape),
        rows[1].intervals.as_ref().unwrap().cell(Cell::Shape),
    );
    assert!(
        ia.low < ib.high,
        "the unpaired intervals overlap: {ia:?} {ib:?}"
    );
    let d = paired_difference(&a, &b, Cell::Shape, &Bootstrap::default()).unwrap();
    assert!((d.difference - 0.05).abs() < 1e-12);
    assert!(d.resolved() && d.verdict() == "A higher", "{d:?}");
    // Two independent noisy methods with the same mean: not resolved.
    let y = normal(n, 4);
    let c = errors("C", n, |i| 1.0 + y[i]);
    let d = paired_difference(&c, &b, Cell::Shape, &Bootstrap::default()).unwrap();
    assert!(d.interval.contains(d.difference));
    assert_eq!(d.verdict(), "not resolved at this budget", "{d:?}");
}

#[test]
fn unpaired_rows_and_bad_settings_are_refused() {
    let a = errors("A", 10, |i| i as f64);
    let b = errors("B", 11, |i| i as f64);
    assert!(matches!(
        table1(&[a.clone(), b.clone()], &Bootstrap::default()),
        Err(AbsFitError::Shape { .. })
    ));
    assert!(paired_difference(&a, &b, Cell::Total, &Bootstrap::default()).is_err());
    assert!(table1(&[], &Bootstrap::default()).is_err());
    for bad in [
        Bootstrap {
            resamples: 10,
            ..Bootstrap::default()
        },
        Bootstrap {
            level: 1.0,
            ..Bootstrap::default()
        },
    ] {
        let err = table1(std::slice::from_ref(&a), &bad).unwrap_err();
        assert!(err.to_string().contains("bootstrap"), "{err}");
    }
}

#[test]
fn the_diagonal_maximum_on_a_smaller_scale_follows_from_counting() {
    // Row 0's diagonal (0.5) is beaten by one of its two other cells; rows 1 and 2 peak on
    // the diagonal.
    let m = CosineMatrix {
        values: vec![
            vec![0.5, 0.6, 0.1],
            vec![0.6, 0.9, 0.2],
            vec![0.1, 0.2, 0.7],
        ],
        counts: vec![2, 2, 2],
    };
    let bootstrap = Bootstrap::default();
    // All three classes: 2 of 3 rows.
    let all = m.diagonal_maximum(3, &bootstrap).unwrap();
    assert!((all.fraction - m.diagonal_max_fraction()).abs() < 1e-12);
    assert!((all.fraction - 2.0 / 3.0).abs() < 1e-12);
    // Pairs: row 0 with class 1 loses, with class 2 wins (1/2); rows 1 and 2 always win.
    let pairs = m.diagonal_maximum(2, &bootstrap).unwrap();
    assert!((pairs.fraction - (0.5 + 1.0 + 1.0) / 3.0).abs() < 1e-12);
    assert!(pairs.interval.contains(pairs.fraction));
    assert!(pairs.interval.low >= 0.5 && pairs.interval.high <= 1.0);
    for subset in [0, 1, 4] {
        assert!(m.diagonal_maximum(subset, &bootstrap).is_err(), "{subset}");
    }

    // Paired against a matrix where every row peaks on the diagonal: the difference is the
    // per-class gap (row 0 alone, −1/3 over 3 classes), and a matrix against itself is 0.
    let perfect = CosineMatrix {
        values: vec![
            vec![0.9, 0.6, 0.1],
            vec![0.6, 0.9, 0.2],
            vec![0.1, 0.2, 0.7],
        ],
        counts: vec![2, 2, 2],
    };
    let (d, interval) = m
        .diagonal_maximum_difference(&perfect, 3, &bootstrap)
        .unwrap();
    assert!((d + 1.0 / 3.0).abs() < 1e-12, "{d}");
    assert!(interval.low >= -1.0 && interval.high <= 0.0 && interval.contains(d));
    let (d, interval) = m.diagonal_maximum_difference(&m, 2, &bootstrap).unwrap();
    assert_eq!((d, interval.low, interval.high), (0.0, 0.0, 0.0));
    let smaller = CosineMatrix {
        values: vec![vec![1.0, 0.0], vec![0.0, 1.0]],
        counts: vec![2, 2],
    };
    assert!(
        m.diagonal_maximum_difference(&smaller, 2, &bootstrap)
            .is_err()
    );
}

#[test]
fn a_smaller_cosine_study_is_the_start_of_a_larger_one() {
    let (layout, sampling) = (ParamLayout::default(), SamplingConfig::default());
    for neutral in [false, true] {
        let small = cosine_study_faces(&layout, &sampling, 3, 5, neutral, 9).unwrap();
        let large = cosine_study_faces(&layout, &sampling, 7, 5, neutral, 9).unwrap();
        assert_eq!(small.len(), 15);
        assert_eq!(small[..], large[..15]);
        // Distinct shapes and expressions are distinct draws.
        assert_ne!(large[0].2.shape, large[5].2.shape);
        assert_ne!(large[0].2.expression, large[1].2.expression);
        assert_eq!(large[0].2.expression, large[5].2.expression);
    }
}
