//! # morphable
//!
//! 3D morphable face models for radar-face: the [`MorphableModel`] trait, linear (PCA) models,
//! the statismo / Basel Face Model 2019 HDF5 [reader and writer](statismo), a [built-in
//! model](builtin) that needs no download, [`Mesh`], [`Pose`] and the placement of a face in
//! front of a radar, the sampling of face parameters, mesh metrics, and PLY / OBJ export.
//!
//! Units: millimetres in model space (y up, nose toward +z), metres once a face is placed in
//! front of the array (PHYSICS.md §2). This crate knows nothing of radar or neural networks.

mod error;
mod mesh;
mod model;
mod pose;
mod sampling;

pub mod builtin;
pub mod export;
pub mod metrics;
pub mod raster;
pub mod statismo;

pub use error::{MorphableError, Result};
pub use mesh::Mesh;
pub use model::{MorphableModel, PcaBlock, PcaModel, Truncated};
pub use pose::{DEFAULT_DISTANCE_M, Placement, Pose};
pub use sampling::{FaceSample, SamplingConfig};
