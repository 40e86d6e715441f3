//! Evaluation of predicted face parameters: Table 1 and Figures 5–6 of the paper
//! (docs/physics.md §6).
//!
//! Every function works on *scaled* parameter matrices (N samples × P columns, in the order of a
//! [`ParamLayout`](crate::ParamLayout)): coefficients in standard deviations, translation /
//! 5 cm, angles / 10°, rendering parameters mapped onto [−1, 1]. Rows are samples; predicted and
//! true matrices pair row by row.
//!
//! - [`evaluate`] gives one [`Table1Row`]: the L2 error per parameter group and the mean point
//!   distance (mm) of the posed-free meshes.
//! - [`mean_baseline`] and [`random_baseline`] are the paper's two reference predictions.
//! - [`cosine_study_faces`] draws the faces of Figures 5–6 and [`cosine_study`] turns their
//!   predicted vectors into the shape and expression [`CosineMatrix`]es.
//! - [`render_times`] measures the per-image render times of the physics and the learned
//!   renderer in one run ([`RenderTimes`]).
//! - [`write_table`] and [`write_matrix_csv`] write the results (Markdown and CSV, atomically),
//!   next to the paper's own rows ([`PAPER_TABLE1`]).
//!
//! "L2" follows the paper: the mean over samples of the mean squared error per element of a
//! group, so the Mean baseline gives ≈ 1 for N(0, 1) columns and ≈ 1/3 for U(−1, 1) ones.
//!
//! The modules: `metrics` (one row's numbers and the baselines), `paper` (the published rows),
//! `cosine` (the study), `report` (Markdown and CSV), `timing` (render times) and `validation`
//! (all of it on a dataset's validation split with trained networks: what `radar-face evaluate`
//! and `reproduce` call).

mod bootstrap;
mod cosine;
mod metrics;
mod networks;
mod paper;
mod report;
mod timing;

pub use bootstrap::{
    Bootstrap, Cell, FaceErrors, Interval, PairedDifference, RowIntervals, paired_difference,
    table1,
};
pub use cosine::{
    CosineMatrix, CosineStudy, DiagonalMaximum, EncodedStudy, MAX_STUDY_FACES,
    cosine_similarity_matrix, cosine_study, cosine_study_faces,
};
pub use metrics::{
    GroupErrors, MEAN_BASELINE, RANDOM_BASELINE, RowSource, Table1Row, evaluate, face_errors,
    group_errors, mean_baseline, mean_point_distance_mm, random_baseline,
};
pub use networks::{
    FitOutcome, IterativeStart, Validation, encoder_cosine_studies, encoder_cosine_study,
    physics_images, renderer_times,
};
pub use paper::{PAPER_DIAGONAL_MAXIMA, PAPER_TABLE1, PaperTable1Row, paper_table1};
pub use report::{
    CosineReport, Finding, FitTime, TableOptions, cosine_markdown, cosine_stem, csv_table,
    findings_csv, findings_markdown, markdown_matrix, markdown_table, matrix_csv,
    paper_protocol_markdown, paper_total_residual, runtimes_markdown, write_matrix_csv,
    write_table,
};
pub use timing::{RenderTimes, render_times};
