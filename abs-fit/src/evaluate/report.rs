//! Table 1 and the cosine matrices as Markdown and CSV, written atomically.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{CosineMatrix, CosineStudy, MEAN_BASELINE, RenderTimes, Table1Row, paper_table1};
use crate::Result;

/// What [`write_table`] adds to the measured rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableOptions {
    /// Append the paper's published rows ([`PAPER_TABLE1`](super::PAPER_TABLE1)), marked
    /// "paper (BFM 2019)".
    pub include_paper: bool,
    /// Add a column with each row's point distance divided by that of the [`MEAN_BASELINE`] row
    /// of the same source (blank where that source has no Mean row): the fraction of the
    /// mean-face error a method leaves, comparable across face models of different scale.
    pub ratio_to_mean: bool,
}

impl Default for TableOptions {
    /// Both on.
    fn default() -> Self {
        Self {
            include_paper: true,
            ratio_to_mean: true,
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

/// Table 1 as Markdown: one row per method, L2 errors to 4 decimals, point distances to 2 (mm),
/// followed by a note on how the total is defined.
pub fn markdown_table(rows: &[Table1Row], options: &TableOptions) -> String {
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
        // Writing to a String cannot fail.
        let _ = write!(
            md,
            "| {} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {} | {:.2} |",
            row.method.replace('|', "\\|"),
            row.source,
            row.l2_shape,
            row.l2_expression,
            row.l2_translation,
            row.l2_rotation,
            row.l2_total,
            row.l2_render.map_or_else(dash, |v| format!("{v:.4}")),
            row.point_distance_mm,
        );
        if options.ratio_to_mean {
            let _ = write!(md, " {} |", ratio.map_or_else(dash, |v| format!("{v:.3}")));
        }
        md.push('\n');
    }
    md.push_str(
        "\nL2: mean squared error per element of the scaled parameters (translation / 5 cm, \
         angles / 10°, rendering parameters on [−1, 1]). Total: over all shape, expression, \
         translation and rotation elements; rendering parameters excluded. Point distance: mean \
         vertex distance without pose (mm).\n",
    );
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

/// Table 1 as CSV, full precision, with a header; an absent value is an empty field.
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
    csv.push('\n');
    let optional = |v: Option<f64>| v.map_or_else(String::new, |v| v.to_string());
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
        csv.push('\n');
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

/// `cosine.md`: for each `(pose, study)` (e.g. "sampled", "neutral") the diagonal-maximum
/// fraction of its shape and expression matrices, then every matrix as a table. `who` says
/// which encoder on which faces, e.g. "Amplitude-depth autoencoder on faces rendered by the
/// physics renderer at D = 20 dB".
pub fn cosine_markdown(who: &str, studies: &[(&str, &CosineStudy)]) -> String {
    let mut summary = format!(
        "# Cosine-similarity study (Figures 5–6)\n\n{who}. Diagonal maximum: the fraction of \
         classes whose row is largest on the diagonal (1: every class told apart).\n\n\
         | pose | matrix | classes | diagonal maximum |\n|---|---|---:|---:|\n",
    );
    let mut tables = String::new();
    for (pose, study) in studies {
        for (label, matrix) in study.matrices() {
            let _ = writeln!(
                summary,
                "| {pose} | {label} | {} | {:.3} |",
                matrix.n_classes(),
                matrix.diagonal_max_fraction()
            );
            let _ = write!(
                tables,
                "\n## {label}, {pose} pose ({}.png)\n\n{}",
                cosine_stem(label, pose),
                markdown_matrix(matrix, label)
            );
        }
    }
    summary.push_str(
        "\nCell (i, j): mean cosine similarity between the predicted coefficient vectors of \
         the faces of true class i and those of true class j (the diagonal: distinct faces of \
         one class); the largest cell of each row is bold.\n",
    );
    summary.push_str(&tables);
    summary
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
