//! Table 1 and the cosine matrices as Markdown and CSV, written atomically.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{
    Bootstrap, Cell, CosineMatrix, CosineStudy, Interval, MEAN_BASELINE, PAPER_DIAGONAL_MAXIMA,
    PAPER_TABLE1, PairedDifference, RenderTimes, Table1Row, paper_table1,
};
use crate::{ParamLayout, Result};

/// What [`write_table`] adds to the measured rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TableOptions {
    /// Append the paper's published rows ([`PAPER_TABLE1`](super::PAPER_TABLE1)), marked
    /// "paper (BFM 2019)", and under the table a note on the paper's pose protocol with a
    /// like-for-like comparison of the translation and rotation columns.
    pub include_paper: bool,
    /// Add a column with each row's point distance divided by that of the [`MEAN_BASELINE`] row
    /// of the same source (blank where that source has no Mean row): the fraction of the
    /// mean-face error a method leaves, comparable across face models of different scale.
    pub ratio_to_mean: bool,
    /// The measured rows' parameter layout, named in the note under the table.
    pub layout: Option<ParamLayout>,
}

impl Default for TableOptions {
    /// Paper rows and ratios on; no layout named.
    fn default() -> Self {
        Self {
            include_paper: true,
            ratio_to_mean: true,
            layout: None,
        }
    }
}

/// The rows to write: `rows`, then the paper's when asked for.
fn table_rows(rows: &[Table1Row], options: &TableOptions) -> Vec<Table1Row> {
    let mut all = rows.to_vec();
    if options.include_paper {
        all.extend(paper_table1());
    }
    all
}

/// Each row's point distance over that of the Mean baseline of its source.
fn ratios_to_mean(rows: &[Table1Row]) -> Vec<Option<f64>> {
    rows.iter()
        .map(|row| {
            rows.iter()
                .find(|r| r.method == MEAN_BASELINE && r.source == row.source)
                .filter(|mean| mean.point_distance_mm > 0.0)
                .map(|mean| row.point_distance_mm / mean.point_distance_mm)
        })
        .collect()
}

/// `value` to `decimals`, followed by "± half-width" of `interval` when there is one.
fn with_interval(value: f64, interval: Option<Interval>, decimals: usize) -> String {
    match interval {
        Some(i) => format!("{value:.decimals$} ± {:.decimals$}", i.half_width()),
        None => format!("{value:.decimals$}"),
    }
}

/// Table 1 as Markdown: one row per method, L2 errors to 4 decimals, point distances to 2 (mm)
/// and ratios to 3, each of the last two with "± half the width of its 95 % interval" when the
/// row has intervals; then a note on the definitions and, with the paper's rows, the note of
/// [`paper_protocol_markdown`].
pub fn markdown_table(rows: &[Table1Row], options: &TableOptions) -> String {
    let measured = rows;
    let rows = table_rows(rows, options);
    let ratios = ratios_to_mean(&rows);
    let mut md = String::from(
        "| Method | Source | L2 Shape | L2 Expr | L2 Translation | L2 Rotation | L2 Total | \
         L2 Render | Point Dist (mm) |",
    );
    if options.ratio_to_mean {
        md.push_str(" Point Dist / Mean |");
    }
    md.push_str("\n|---|---|---:|---:|---:|---:|---:|---:|---:|");
    if options.ratio_to_mean {
        md.push_str("---:|");
    }
    md.push('\n');
    let dash = || "–".to_string();
    for (row, ratio) in rows.iter().zip(&ratios) {
        let intervals = row.intervals.as_ref();
        // Writing to a String cannot fail.
        let _ = write!(
            md,
            "| {} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {} | {} |",
            row.method.replace('|', "\\|"),
            row.source,
            row.l2_shape,
            row.l2_expression,
            row.l2_translation,
            row.l2_rotation,
            row.l2_total,
            row.l2_render.map_or_else(dash, |v| format!("{v:.4}")),
            with_interval(
                row.point_distance_mm,
                intervals.map(|i| i.cell(Cell::PointDistance)),
                2
            ),
        );
        if options.ratio_to_mean {
            let ratio = ratio.map_or_else(dash, |v| {
                with_interval(v, intervals.and_then(|i| i.ratio_to_mean), 3)
            });
            let _ = write!(md, " {ratio} |");
        }
        md.push('\n');
    }
    let scaling = options.layout.map_or_else(
        || "each pose column divided by its scale".to_string(),
        |l| l.describe_pose_scaling(),
    );
    let _ = write!(
        md,
        "\nL2: mean squared error per element of the scaled parameters ({scaling}; rendering \
         parameters on [−1, 1]). Total: over all shape, expression, translation and rotation \
         elements; rendering parameters excluded. Point distance: mean vertex distance without \
         pose (mm).",
    );
    if measured.iter().any(|r| r.intervals.is_some()) {
        md.push_str(
            " ±: half the width of the 95 % percentile-bootstrap interval over the validation \
             faces (the ratio's is paired: both distances on the same resampled faces); \
             table1.csv has every cell's interval.",
        );
    }
    md.push('\n');
    if options.include_paper {
        md.push('\n');
        md.push_str(&paper_protocol_markdown(measured));
    }
    md
}

/// The largest difference between a printed Total of the paper and the mean over its 23
/// elements, (10·shape + 7·expression + 3·translation + 3·rotation) / 23.
pub fn paper_total_residual() -> f64 {
    PAPER_TABLE1
        .iter()
        .map(|r| (r.total_over_23_elements() - r.l2_total).abs())
        .fold(0.0, f64::max)
}

/// The note beside the paper's rows: how the paper scaled and scored pose (its printed Totals
/// are means over 23 elements, t_z included), why its "Translation" and "Rotation" labels appear
/// exchanged, and a like-for-like table of `measured` rows against the paper's rows of the same
/// method, our translation beside the paper's "Rotation" column and vice versa.
pub fn paper_protocol_markdown(measured: &[Table1Row]) -> String {
    let mean = &PAPER_TABLE1[0];
    let mut md = format!(
        "**The paper's rows and its pose protocol.** The paper's rows are printed as published. \
         It scales each pose parameter by its own sampling range onto [−1, 1] (§3.2: t_x, t_y ± \
         5 cm, yaw ± 5°, pitch and roll ± 10°) and scores t_z (always 0) as a third translation \
         column: each printed Total is the mean over 10 + 7 + 3 + 3 = 23 elements, e.g. Mean \
         (10·{:.4} + 7·{:.4} + 3·{:.4} + 3·{:.4}) / 23 = {:.4} (every printed Total agrees to \
         its rounding: the largest difference is {:.1e}). Under that protocol the Mean baseline's expected L2 is 1/3 for rotation (three \
         U(−1, 1) columns, variance 1/3 each) and 2/9 for translation (two U(−1, 1) columns and \
         t_z ≡ 0), the Random baseline's 2/3 and 4/9. The paper prints Translation {:.4} and \
         Rotation {:.4} for the Mean (Random: {:.4} and {:.4}), so its two column labels appear \
         exchanged (with 1 500 validation faces the standard error is about 0.004). Read \
         exchanged, like for like:\n\n\
         | Method | translation (ours) | \"Rotation\" (paper) | rotation (ours) | \
         \"Translation\" (paper) |\n|---|---:|---:|---:|---:|\n",
        mean.l2_shape,
        mean.l2_expression,
        mean.l2_translation,
        mean.l2_rotation,
        mean.total_over_23_elements(),
        paper_total_residual(),
        mean.l2_translation,
        mean.l2_rotation,
        PAPER_TABLE1[1].l2_translation,
        PAPER_TABLE1[1].l2_rotation,
    );
    for paper in &PAPER_TABLE1 {
        let ours = measured.iter().find(|r| r.method == paper.method);
        let cell = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.4}"));
        let _ = writeln!(
            md,
            "| {} | {} | {:.4} | {} | {:.4} |",
            paper.method,
            cell(ours.map(|r| r.l2_translation)),
            paper.l2_rotation,
            cell(ours.map(|r| r.l2_rotation)),
            paper.l2_translation,
        );
    }
    md
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Table 1 as CSV, full precision, with a header; an absent value is an empty field. After the
/// point estimates come the 95 % interval ends of every cell (`l2_shape_low`, `l2_shape_high`,
/// …, `point_distance_mm_high`, then `point_distance_ratio_to_mean_low` and `_high` with the
/// ratio column), empty for rows without intervals.
pub fn csv_table(rows: &[Table1Row], options: &TableOptions) -> String {
    let rows = table_rows(rows, options);
    let ratios = ratios_to_mean(&rows);
    let mut csv = String::from(
        "method,source,l2_shape,l2_expression,l2_translation,l2_rotation,l2_total,l2_render,\
         point_distance_mm",
    );
    if options.ratio_to_mean {
        csv.push_str(",point_distance_ratio_to_mean");
    }
    for cell in Cell::ALL {
        let _ = write!(csv, ",{0}_low,{0}_high", cell.column());
    }
    if options.ratio_to_mean {
        csv.push_str(",point_distance_ratio_to_mean_low,point_distance_ratio_to_mean_high");
    }
    csv.push('\n');
    let optional = |v: Option<f64>| v.map_or_else(String::new, |v| v.to_string());
    let ends = |i: Option<Interval>| {
        format!(
            "{},{}",
            optional(i.map(|i| i.low)),
            optional(i.map(|i| i.high))
        )
    };
    for (row, ratio) in rows.iter().zip(&ratios) {
        let _ = write!(
            csv,
            "{},{},{},{},{},{},{},{},{}",
            csv_field(&row.method),
            csv_field(&row.source.to_string()),
            row.l2_shape,
            row.l2_expression,
            row.l2_translation,
            row.l2_rotation,
            row.l2_total,
            optional(row.l2_render),
            row.point_distance_mm,
        );
        if options.ratio_to_mean {
            let _ = write!(csv, ",{}", optional(*ratio));
        }
        let intervals = row.intervals.as_ref();
        for cell in Cell::ALL {
            let _ = write!(csv, ",{}", ends(intervals.map(|i| i.cell(cell))));
        }
        if options.ratio_to_mean {
            let _ = write!(csv, ",{}", ends(intervals.and_then(|i| i.ratio_to_mean)));
        }
        csv.push('\n');
    }
    csv
}

/// A claim tested by a [`PairedDifference`]: "depth input helps shape", with A = the depth
/// encoder and B = the amplitude encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The claim in words.
    pub claim: String,
    /// The comparison that tests it (A − B; lower errors are better).
    pub difference: PairedDifference,
}

/// `findings.md`: one line per finding with its paired difference, the 95 % interval and the
/// verdict ("A lower", "A higher" or "not resolved at this budget").
pub fn findings_markdown(findings: &[Finding], faces: usize) -> String {
    let mut md = format!(
        "# Findings, each with a paired interval\n\nEach line compares two methods on the same \
         {faces} validation faces: the mean difference A − B of one cell and its 95 % \
         percentile-bootstrap interval (faces resampled, both methods on each resample). A \
         finding is resolved only when the interval excludes zero. Where A and B are two \
         trained networks, the interval holds each network fixed: it leaves out how much a \
         network varies with its training seed, which can be larger than the difference \
         (radar-face's docs/results/id-loss-cpu6k.md: 0.24 mm for the `cpu` depth encoder).\n\n\
         | claim | A | B | cell | A − B | 95 % interval | verdict |\n\
         |---|---|---|---|---:|---|---|\n",
    );
    for f in findings {
        let d = &f.difference;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.4} | [{:.4}, {:.4}] | {} |",
            f.claim.replace('|', "\\|"),
            d.a.replace('|', "\\|"),
            d.b.replace('|', "\\|"),
            d.cell.label(),
            d.difference,
            d.interval.low,
            d.interval.high,
            d.verdict()
        );
    }
    md
}

/// The findings as CSV: `claim,a,b,cell,difference,low,high,resolved`.
pub fn findings_csv(findings: &[Finding]) -> String {
    let mut csv = String::from("claim,a,b,cell,difference,low,high,resolved\n");
    for f in findings {
        let d = &f.difference;
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{}",
            csv_field(&f.claim),
            csv_field(&d.a),
            csv_field(&d.b),
            d.cell.column(),
            d.difference,
            d.interval.low,
            d.interval.high,
            d.resolved()
        );
    }
    csv
}

/// Writes Table 1 as Markdown to `md` and as CSV to `csv`, each atomically (the file appears
/// whole or not at all).
pub fn write_table(
    rows: &[Table1Row],
    md: &Path,
    csv: &Path,
    options: &TableOptions,
) -> Result<()> {
    morphable::export::atomic_write(md, markdown_table(rows, options).as_bytes())?;
    morphable::export::atomic_write(csv, csv_table(rows, options).as_bytes())?;
    Ok(())
}

/// A cosine matrix as CSV: a header `class,{label}_0,…`, then one row per class
/// `{label}_i,v_i0,…` (full precision). `label` names the classes, such as "shape".
pub fn matrix_csv(matrix: &CosineMatrix, label: &str) -> String {
    let label = csv_field(label);
    let mut csv = String::from("class");
    for j in 0..matrix.n_classes() {
        let _ = write!(csv, ",{label}_{j}");
    }
    csv.push('\n');
    for (i, row) in matrix.values.iter().enumerate() {
        let _ = write!(csv, "{label}_{i}");
        for v in row {
            let _ = write!(csv, ",{v}");
        }
        csv.push('\n');
    }
    csv
}

/// Writes [`matrix_csv`] to `path` atomically.
pub fn write_matrix_csv(matrix: &CosineMatrix, label: &str, path: &Path) -> Result<()> {
    morphable::export::atomic_write(path, matrix_csv(matrix, label).as_bytes())?;
    Ok(())
}

/// A cosine matrix as a Markdown table with the largest cell of each row in bold.
pub fn markdown_matrix(matrix: &CosineMatrix, label: &str) -> String {
    let k = matrix.n_classes();
    let mut out = format!("| {label} |");
    for j in 0..k {
        let _ = write!(out, " {j} |");
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(k));
    out.push('\n');
    for (i, row) in matrix.values.iter().enumerate() {
        let largest = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let _ = write!(out, "| {i} |");
        for &value in row {
            if value == largest {
                let _ = write!(out, " **{value:.2}** |");
            } else {
                let _ = write!(out, " {value:.2} |");
            }
        }
        out.push('\n');
    }
    out
}

/// The stem of the files of one cosine matrix: `cosine_{label}_{pose}_pose`.
pub fn cosine_stem(label: &str, pose: &str) -> String {
    format!("cosine_{label}_{pose}_pose")
}

/// The cosine studies of one pose for [`cosine_markdown`]: the paper-sized figure and a larger
/// study over more shape classes (whose first shapes are the figure's).
#[derive(Debug, Clone, Copy)]
pub struct CosineReport<'a> {
    /// "sampled" or "neutral".
    pub pose: &'a str,
    /// The paper-sized study (10 shapes × 5 expressions).
    pub figure: &'a CosineStudy,
    /// The larger study (e.g. 100 shapes × 5 expressions).
    pub large: &'a CosineStudy,
}

/// `cosine.md`: for each pose and matrix the paper's diagonal-maximum count, ours on the
/// paper-sized figure, and ours from the larger study put on the figure's scale
/// ([`CosineMatrix::diagonal_maximum`]) with its 95 % interval over classes; then every figure
/// matrix as a table. `who` says which encoder on which faces, e.g. "Amplitude-depth
/// autoencoder on faces rendered by the physics renderer at D = 20 dB".
///
/// Errors: a figure with fewer classes than 2, or a larger study with fewer classes than its
/// figure.
pub fn cosine_markdown(
    who: &str,
    reports: &[CosineReport<'_>],
    bootstrap: &Bootstrap,
) -> Result<String> {
    let mut summary = format!(
        "# Cosine-similarity study (Figures 5–6)\n\n{who}. Diagonal maximum: the fraction of \
         classes whose row is largest on the diagonal (1: every class told apart). The figure \
         is one draw of a few classes, so one class moves it by 1/10 or 1/5; the larger study \
         gives the fraction that a study of the figure's size has on average, with a 95 % \
         percentile-bootstrap interval over its classes.\n\n\
         | pose | matrix | paper (Figures 5–6) | ours, figure | ours, larger study: classes | \
         on the figure's scale | 95 % interval |\n|---|---|---:|---:|---:|---:|---|\n",
    );
    let mut tables = String::new();
    for report in reports {
        for ((label, figure), (_, large)) in report
            .figure
            .matrices()
            .into_iter()
            .zip(report.large.matrices())
        {
            let k = figure.n_classes();
            let on_diagonal = figure.diagonal_max_count();
            let scaled = large.diagonal_maximum(k, bootstrap)?;
            let paper = PAPER_DIAGONAL_MAXIMA
                .iter()
                .find(|(pose, matrix, _, _)| *pose == report.pose && *matrix == label)
                .map_or_else(|| "–".to_string(), |(_, _, n, k)| format!("{n}/{k}"));
            let _ = writeln!(
                summary,
                "| {} | {label} | {paper} | {on_diagonal}/{k} | {} | {:.3} | [{:.3}, {:.3}] |",
                report.pose,
                scaled.classes,
                scaled.fraction,
                scaled.interval.low,
                scaled.interval.high,
            );
            let _ = write!(
                tables,
                "\n## {label}, {} pose ({}.png)\n\n{}",
                report.pose,
                cosine_stem(label, report.pose),
                markdown_matrix(figure, label)
            );
        }
    }
    summary.push_str(
        "\nCell (i, j): mean cosine similarity between the predicted coefficient vectors of \
         the faces of true class i and those of true class j (the diagonal: distinct faces of \
         one class); the largest cell of each row is bold. The larger studies' matrices are in \
         the `_large` CSV and PNG files.\n",
    );
    summary.push_str(&tables);
    Ok(summary)
}

/// The run time of one test-time fit, for [`runtimes_markdown`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitTime {
    /// The fitted method's row name.
    pub method: String,
    /// Faces fitted together.
    pub faces: usize,
    /// Optimiser steps taken.
    pub steps: usize,
    /// Wall-clock seconds per face.
    pub seconds_per_face: f64,
}

/// `runtimes.md`: the physics against the learned renderer per image (`times`, measured on
/// `faces` faces of `kind` images with medians of `repeats` calls) and each fit per face.
pub fn runtimes_markdown(
    times: &RenderTimes,
    kind: &str,
    (faces, repeats): (usize, usize),
    fits: &[FitTime],
) -> String {
    let mut md = format!(
        "# Run times\n\nOne process on this machine's CPU; medians of {repeats} timed \
         calls on {faces} validation faces after a warm-up.\n\n| what | seconds per image or face |\n\
         |---|---:|\n| physics renderer ({kind}) | {:.4} |\n| learned renderer ({kind}) | {:.6} |\n\
         | speed-up of the learned renderer | {:.1}× |\n",
        times.physics_s_per_image,
        times.learned_s_per_image,
        times.speedup()
    );
    for fit in fits {
        let _ = writeln!(
            md,
            "| {} ({} faces fitted together, {} steps), per face | {:.4} |",
            fit.method, fit.faces, fit.steps, fit.seconds_per_face
        );
    }
    md
}
