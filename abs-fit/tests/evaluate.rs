//! Tests: Table 1 metrics, baselines, cosine-similarity matrices and their output.

use abs_fit::evaluate::{
    CosineMatrix, MEAN_BASELINE, PAPER_TABLE1, RANDOM_BASELINE, RowSource, TableOptions,
    cosine_similarity_matrix, cosine_study, cosine_study_faces, csv_table, evaluate, group_errors,
    markdown_table, mean_baseline, mean_point_distance_mm, paper_total_residual, random_baseline,
    write_matrix_csv, write_table,
};
use abs_fit::{AbsFitError, ParamGroup, ParamLayout, PoseScaling};
use approx::assert_relative_eq;
use morphable::{LinearMorphableModel, MorphableModel, Pose, SamplingConfig, builtin::builtin};
use ndarray::{Array2, array};
use proptest::prelude::*;

/// 2 shape + 1 expression coefficients, t_x t_y (no t_z column), 3 angles, 3 render columns:
/// 11 columns.
fn small_layout() -> ParamLayout {
    ParamLayout {
        n_shape: 2,
        n_expression: 1,
        translation_z: false,
        ..ParamLayout::default()
    }
}

#[test]
fn group_errors_match_hand_arithmetic() {
    let layout = small_layout();
    assert_eq!(layout.len(), 11);
    let truth = Array2::<f64>::zeros((2, 11));
    //                 s0   s1   e0   tx   ty  yaw pitch roll  m    s    D
    let predicted = array![
        [1.0, 2.0, 3.0, 1.0, 0.0, 0.0, 0.0, 3.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    ];
    let e = group_errors(predicted.view(), truth.view(), &layout).unwrap();
    // Shape: row 0 (1² + 2²)/2 = 2.5, row 1 0 → mean 1.25.
    assert_relative_eq!(e.shape, 1.25);
    // Expression: row 0 3² = 9, row 1 1² = 1 → 5.
    assert_relative_eq!(e.expression, 5.0);
    // Translation: row 0 (1 + 0)/2, row 1 (0 + 1)/2 → 0.5.
    assert_relative_eq!(e.translation, 0.5);
    // Rotation: row 0 3²/3 = 3, row 1 0 → 1.5.
    assert_relative_eq!(e.rotation, 1.5);
    // Total over the 8 non-render columns: row 0 (1+4+9+1+0+0+0+9)/8 = 3,
    // row 1 (0+0+1+0+1+0+0+0)/8 = 0.25 → 1.625.
    assert_relative_eq!(e.total, 1.625);
    // Render: row 0 1/3, row 1 0 → 1/6.
    assert_relative_eq!(e.render, 1.0 / 6.0);
    // The same numbers in f32, and the error is symmetric in its arguments.
    let (p32, t32) = (predicted.mapv(|v| v as f32), truth.mapv(|v| v as f32));
    assert_eq!(group_errors(p32.view(), t32.view(), &layout).unwrap(), e);
    assert_eq!(
        group_errors(truth.view(), predicted.view(), &layout).unwrap(),
        e
    );
}

#[test]
fn mismatched_or_bad_matrices_are_typed_errors() {
    let layout = small_layout();
    let good = Array2::<f32>::zeros((3, 11));
    let narrow = Array2::<f32>::zeros((3, 10));
    let short = Array2::<f32>::zeros((2, 11));
    let empty = Array2::<f32>::zeros((0, 11));
    fn shape_err<T>(r: abs_fit::Result<T>) -> bool {
        matches!(r, Err(AbsFitError::Shape { .. }))
    }
    assert!(shape_err(group_errors(narrow.view(), good.view(), &layout)));
    assert!(shape_err(group_errors(good.view(), narrow.view(), &layout)));
    assert!(shape_err(group_errors(short.view(), good.view(), &layout)));
    assert!(shape_err(group_errors(empty.view(), empty.view(), &layout)));
    let mut nan = good.clone();
    nan[(1, 4)] = f32::NAN;
    let err = group_errors(nan.view(), good.view(), &layout).unwrap_err();
    assert!(matches!(err, AbsFitError::Config { .. }), "{err}");
    assert!(err.to_string().contains("ty_scaled"), "{err}");
    assert!(shape_err(mean_baseline(empty.view(), 4)));
    // More coefficients than the model has.
    let big = ParamLayout {
        n_shape: builtin().n_shape() + 1,
        ..ParamLayout::default()
    };
    let m = Array2::<f32>::zeros((1, big.len()));
    assert!(shape_err(mean_point_distance_mm(
        m.view(),
        m.view(),
        &big,
        builtin()
    )));
    // Sampling and layout that disagree.
    let sampling = SamplingConfig::default();
    assert!(shape_err(random_baseline(&layout, &sampling, 4, 1)));
}

/// The Mean and Random baselines' L2 under a layout, against the values the sampling
/// distribution implies.
struct Expected {
    layout: ParamLayout,
    /// Mean-baseline translation and rotation L2; the Random baseline's are twice these.
    translation: f64,
    rotation: f64,
    /// Largest scaled |yaw| of a draw.
    yaw: f32,
}

#[test]
fn baselines_match_the_sampling_distribution() {
    let sampling = SamplingConfig::default();
    // A U(−h, h) column scaled by h is U(−1, 1): variance 1/3. The Mean baseline's expected
    // L2 of such a column is its variance, the Random baseline's twice that (x − y of two
    // independent draws); a column that is always 0 (t_z) has L2 0 for both.
    let protocols = [
        // The paper's protocol (§3.2): every pose column by its own range, t_z scored.
        // Translation (1/3 + 1/3 + 0)/3 = 2/9, rotation (1/3 + 1/3 + 1/3)/3 = 1/3.
        Expected {
            layout: ParamLayout::default(),
            translation: 2.0 / 9.0,
            rotation: 1.0 / 3.0,
            yaw: 1.0,
        },
        // Fixed scales, no t_z column: translation / 5 cm is U(−1, 1), 1/3; yaw / 10° is
        // U(−0.5, 0.5) with variance 1/12, so rotation is (1/12 + 1/3 + 1/3)/3 = 1/4.
        Expected {
            layout: ParamLayout {
                translation_z: false,
                ..ParamLayout::new(&sampling, PoseScaling::Fixed)
            },
            translation: 1.0 / 3.0,
            rotation: 0.25,
            yaw: 0.5,
        },
    ];
    for expected in protocols {
        let layout = expected.layout;
        let train = random_baseline(&layout, &sampling, 2000, 11).unwrap();
        let truth = random_baseline(&layout, &sampling, 2000, 12).unwrap();
        let mean = mean_baseline(train.view(), truth.nrows()).unwrap();
        let random = random_baseline(&layout, &sampling, truth.nrows(), 13).unwrap();
        let m = group_errors(mean.view(), truth.view(), &layout).unwrap();
        let r = group_errors(random.view(), truth.view(), &layout).unwrap();
        // N(0, 1) coefficients. Mean baseline: E(x − x̄)² = 1 + 1/2000; (x − x̄)² is ≈ χ²₁
        // with variance 2, so the mean of 2000 × 7 = 14 000 elements (the smaller group) has
        // standard deviation √(2/14 000) ≈ 0.012: 0.1 is 8σ. Random baseline: x − y ~ N(0, 2),
        // E = 2, the variance of (x − y)² is 2·2² = 8, standard deviation √(8/14 000) ≈ 0.024:
        // 0.1 is 4σ.
        for (group, mean_l2, random_l2) in [
            ("shape", m.shape, r.shape),
            ("expression", m.expression, r.expression),
        ] {
            assert!((mean_l2 - 1.0).abs() < 0.1, "{group}: Mean {mean_l2}");
            assert!((random_l2 - 2.0).abs() < 0.1, "{group}: Random {random_l2}");
        }
        // The variance of x² for x ~ U(−1, 1) is E x⁴ − (E x²)² = 1/5 − 1/9 = 4/45; over the
        // 4 000 non-zero translation elements the standard deviation of the mean is
        // √(4/45/4000) ≈ 0.005, so 0.03 is 6σ (twice that for Random); rotation has more.
        let near = |value: f64, want: f64, tolerance: f64| (value - want).abs() < tolerance;
        let what = format!(
            "{}: Mean {m:?}, Random {r:?}",
            layout.describe_pose_scaling()
        );
        assert!(near(m.translation, expected.translation, 0.03), "{what}");
        assert!(
            near(r.translation, 2.0 * expected.translation, 0.06),
            "{what}"
        );
        assert!(near(m.rotation, expected.rotation, 0.03), "{what}");
        assert!(near(r.rotation, 2.0 * expected.rotation, 0.06), "{what}");
        // The total is the element-weighted mean of the four groups (23 elements in the
        // paper's layout).
        let (t, a) = (
            layout.range(ParamGroup::Translation).len() as f64,
            layout.range(ParamGroup::Rotation).len() as f64,
        );
        let n = layout.range(ParamGroup::Shape).len() as f64
            + layout.range(ParamGroup::Expression).len() as f64;
        let weighted = (10.0 * m.shape + 7.0 * m.expression + t * m.translation + a * m.rotation)
            / (n + t + a);
        assert!((m.total - weighted).abs() < 1e-9, "{what}");
        // Render columns ~ U(−1, 1) as well.
        assert!(near(m.render, 1.0 / 3.0, 0.03), "{what}");
        // Every Random draw lies in its range.
        let yaw = layout.range(ParamGroup::Rotation).start;
        assert!(random.column(yaw).iter().all(|v| v.abs() <= expected.yaw));
        assert!(
            random
                .column(yaw)
                .iter()
                .any(|v| v.abs() > 0.9 * expected.yaw)
        );
        for c in (yaw + 1)..layout.len() {
            assert!(random.column(c).iter().all(|v| v.abs() <= 1.0));
        }
    }
}

/// Every Total of the paper's Table 1 is the mean over its 23 elements, t_z included: the
/// residual is within the rounding of its 4-decimal cells (each off by at most 5e-5).
#[test]
fn the_papers_totals_are_means_over_23_elements() {
    assert!(paper_total_residual() <= 1e-4, "{}", paper_total_residual());
    // Over 22 elements (no t_z) they would not be: the Mean row would be 0.829, not 0.8077.
    let mean = &PAPER_TABLE1[0];
    let over_22 = (10.0 * mean.l2_shape
        + 7.0 * mean.l2_expression
        + 2.0 * mean.l2_translation
        + 3.0 * mean.l2_rotation)
        / 22.0;
    assert!((over_22 - mean.l2_total).abs() > 0.01, "{over_22}");
}

#[test]
fn point_distance_is_zero_for_perfect_predictions_and_linear_in_one_coefficient() {
    let (layout, sampling) = (ParamLayout::default(), SamplingConfig::default());
    let model = builtin();
    let truth = random_baseline(&layout, &sampling, 3, 5).unwrap();
    let perfect = evaluate("perfect", truth.view(), truth.view(), &layout, model).unwrap();
    assert_eq!(perfect.point_distance_mm, 0.0);
    assert_eq!(perfect.l2_total, 0.0);
    assert_eq!(perfect.source, RowSource::Measured);
    // Moving α₀ by δ moves vertex v by δ·S₀(v) (the model is linear), so the point distance is
    // |δ| times the mean vertex norm of the first scaled shape component.
    let delta = 0.5;
    let s0 = model.shape_block().component(0);
    let mean_norm = s0
        .chunks_exact(3)
        .map(|v| v.iter().map(|&c| (c as f64).powi(2)).sum::<f64>().sqrt())
        .sum::<f64>()
        / model.n_vertices() as f64;
    let mut moved = truth.clone();
    moved.column_mut(0).mapv_inplace(|v| v + delta as f32);
    let row = evaluate("moved", moved.view(), truth.view(), &layout, model).unwrap();
    assert!(row.point_distance_mm > 0.0);
    // Instances are computed in f32: relative precision ~1e-6 on mm-sized coordinates.
    assert_relative_eq!(
        row.point_distance_mm,
        delta * mean_norm,
        max_relative = 1e-3
    );
    // Pose and render columns do not move the pose-free mesh.
    let mut posed = truth.clone();
    for c in layout.range(ParamGroup::Translation).start..layout.len() {
        posed.column_mut(c).mapv_inplace(|v| -v);
    }
    let row = evaluate("posed", posed.view(), truth.view(), &layout, model).unwrap();
    assert_eq!(row.point_distance_mm, 0.0);
    assert!(row.l2_rotation > 0.0);
}

#[test]
fn cosine_matrix_matches_hand_arithmetic() {
    // Class 0: a = b = (1, 0). Class 1: c = (0, 1), d = (1, 1).
    let v = array![[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]];
    let m = cosine_similarity_matrix(v.view(), &[0, 0, 1, 1]).unwrap();
    let r = std::f64::consts::FRAC_1_SQRT_2;
    // (0, 0): cos(a, b) = 1. (1, 1): cos(c, d) = 1/√2 (self pairs left out).
    // (0, 1): {cos(a,c), cos(a,d), cos(b,c), cos(b,d)} = {0, 1/√2, 0, 1/√2} → 1/(2√2).
    assert_relative_eq!(m.values[0][0], 1.0, epsilon = 1e-12);
    assert_relative_eq!(m.values[1][1], r, epsilon = 1e-12);
    assert_relative_eq!(m.values[0][1], r / 2.0, epsilon = 1e-12);
    assert_relative_eq!(m.values[1][0], r / 2.0, epsilon = 1e-12);
    assert_eq!(m.counts, vec![2, 2]);
    assert_eq!(m.diagonal_max_fraction(), 1.0);
    // Class 1: c = (0, 1), d = (1, 0): (1, 1) = 0 while (1, 0) = (0 + 1 + 0 + 1)/4 = 0.5, so
    // only row 0 has its maximum on the diagonal.
    let v = array![[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]];
    let m = cosine_similarity_matrix(v.view(), &[0, 0, 1, 1]).unwrap();
    assert_relative_eq!(m.values[1][0], 0.5, epsilon = 1e-12);
    assert_eq!(m.diagonal_max_fraction(), 0.5);
}

#[test]
fn cosine_errors_are_typed() {
    let v = array![[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]];
    let labels_short = cosine_similarity_matrix(v.view(), &[0, 1]).unwrap_err();
    assert!(
        matches!(labels_short, AbsFitError::Shape { .. }),
        "{labels_short}"
    );
    // Class 1 has a single instance: its diagonal cell has no pair.
    let lonely = cosine_similarity_matrix(v.view(), &[0, 0, 1]).unwrap_err();
    assert!(matches!(lonely, AbsFitError::Config { .. }), "{lonely}");
    let zero = array![[1.0, 0.0], [0.0, 0.0]];
    let zero = cosine_similarity_matrix(zero.view(), &[0, 0]).unwrap_err();
    assert!(matches!(zero, AbsFitError::Config { .. }), "{zero}");
}

#[test]
fn true_study_vectors_have_their_maximum_on_the_diagonal() {
    let (layout, sampling) = (ParamLayout::default(), SamplingConfig::default());
    for neutral in [false, true] {
        let faces = cosine_study_faces(&layout, &sampling, 10, 5, neutral, 3).unwrap();
        assert_eq!(faces.len(), 50);
        assert_eq!(
            faces
                .iter()
                .filter(|f| f.2.pose == Pose::identity())
                .count(),
            if neutral { 50 } else { 0 }
        );
        // Same shape id → same shape; same expression id → same expression.
        for (i, j, f) in &faces {
            assert_eq!(f.shape, faces[i * 5].2.shape);
            assert_eq!(f.expression, faces[*j].2.expression);
        }
        let rows: Vec<f32> = faces.iter().flat_map(|f| layout.to_vector(&f.2)).collect();
        let predicted = Array2::from_shape_vec((50, layout.len()), rows).unwrap();
        let labels: Vec<(usize, usize)> = faces.iter().map(|f| (f.0, f.1)).collect();
        let study = cosine_study(predicted.view(), &labels, &layout).unwrap();
        assert_eq!(study.shape.n_classes(), 10);
        assert_eq!(study.expression.n_classes(), 5);
        assert_eq!(study.shape.diagonal_max_fraction(), 1.0);
        assert_eq!(study.expression.diagonal_max_fraction(), 1.0);
        for k in 0..10 {
            assert_relative_eq!(study.shape.values[k][k], 1.0, epsilon = 1e-6);
        }
    }
}

proptest! {
    #[test]
    fn cosine_matrix_is_symmetric_and_bounded(
        rows in prop::collection::vec(prop::collection::vec(0.1f64..1.0, 3), 4..16),
        signs in prop::collection::vec(any::<bool>(), 16),
        n_classes in 1usize..8,
    ) {
        // Every class gets at least two instances: labels cycle over at most ⌊N/2⌋ classes.
        let n_classes = n_classes.min(rows.len() / 2);
        let labels: Vec<usize> = (0..rows.len()).map(|a| a % n_classes).collect();
        let flat: Vec<f64> = rows
            .iter()
            .zip(&signs)
            .flat_map(|(r, &s)| r.iter().map(move |x| if s { *x } else { -*x }))
            .collect();
        let v = Array2::from_shape_vec((rows.len(), 3), flat).unwrap();
        let m: CosineMatrix = cosine_similarity_matrix(v.view(), &labels).unwrap();
        for i in 0..n_classes {
            for j in 0..n_classes {
                prop_assert!((m.values[i][j] - m.values[j][i]).abs() < 1e-12);
                prop_assert!(m.values[i][j].abs() <= 1.0 + 1e-12);
            }
        }
        let f = m.diagonal_max_fraction();
        prop_assert!((0.0..=1.0).contains(&f));
    }
}

#[test]
fn tables_hold_measured_and_paper_rows() {
    let (layout, sampling) = (ParamLayout::default(), SamplingConfig::default());
    let train = random_baseline(&layout, &sampling, 2000, 11).unwrap();
    let truth = random_baseline(&layout, &sampling, 20, 12).unwrap();
    let mean = mean_baseline(train.view(), truth.nrows()).unwrap();
    let row = evaluate(MEAN_BASELINE, mean.view(), truth.view(), &layout, builtin()).unwrap();
    let json = serde_json::to_string(&row).unwrap();
    assert_eq!(
        serde_json::from_str::<abs_fit::Table1Row>(&json).unwrap(),
        row
    );

    let options = TableOptions::default();
    let csv = csv_table(std::slice::from_ref(&row), &options);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 1 + PAPER_TABLE1.len());
    assert!(lines[0].contains(",point_distance_ratio_to_mean,"));
    assert!(lines[0].ends_with("point_distance_ratio_to_mean_high"));
    // The Mean rows have ratio 1; the paper's Random row its point distance over the Mean's
    // (6.28 mm / 4.42 mm).
    let ratio_column = lines[0]
        .split(',')
        .position(|c| c == "point_distance_ratio_to_mean")
        .unwrap();
    let field = |line: &str, c: usize| line.split(',').nth(c).unwrap().to_string();
    assert_eq!(field(lines[1], ratio_column), "1", "{}", lines[1]);
    let paper_random = lines
        .iter()
        .find(|l| l.starts_with(RANDOM_BASELINE) && l.contains("paper"))
        .unwrap();
    let ratio: f64 = field(paper_random, ratio_column).parse().unwrap();
    assert_relative_eq!(
        ratio,
        PAPER_TABLE1[1].point_distance_mm / PAPER_TABLE1[0].point_distance_mm,
        max_relative = 1e-12
    );
    assert_eq!(
        (PAPER_TABLE1[0].method, PAPER_TABLE1[1].method),
        (MEAN_BASELINE, RANDOM_BASELINE)
    );
    let md = markdown_table(std::slice::from_ref(&row), &options);
    assert_eq!(md.matches("paper (BFM 2019)").count(), PAPER_TABLE1.len());
    assert!(md.contains("rendering parameters excluded"));
    let bare = TableOptions {
        include_paper: false,
        ratio_to_mean: false,
        layout: None,
    };
    assert_eq!(
        csv_table(std::slice::from_ref(&row), &bare).lines().count(),
        2
    );

    let dir = crate::store::temp_dir("evaluate");
    let (md_path, csv_path) = (dir.join("table1.md"), dir.join("table1.csv"));
    write_table(std::slice::from_ref(&row), &md_path, &csv_path, &options).unwrap();
    assert_eq!(std::fs::read_to_string(&csv_path).unwrap(), csv);
    assert_eq!(std::fs::read_to_string(&md_path).unwrap(), md);
    let v = array![[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]];
    let m = cosine_similarity_matrix(v.view(), &[0, 0, 1, 1]).unwrap();
    let matrix_path = dir.join("shape.csv");
    write_matrix_csv(&m, "shape", &matrix_path).unwrap();
    let text = std::fs::read_to_string(&matrix_path).unwrap();
    assert_eq!(text.lines().next(), Some("class,shape_0,shape_1"));
    assert!(text.lines().nth(1).unwrap().starts_with("shape_0,1,"));
}
