//! # morphable
//!
//! 3D morphable face models for radar-face: the [`MorphableModel`] trait, linear (PCA) models,
//! the statismo / Basel Face Model 2019 HDF5 [reader and writer](statismo), a [built-in
//! model](builtin) that needs no download, [`Mesh`], [`Pose`] and the placement of a face in
//! front of a radar, the sampling of face parameters, mesh metrics, and PLY / OBJ export.
//!
//! Units: millimetres in model space (y up, nose toward +z), metres once a face is placed in
//! front of the array (docs/physics.md §2). This crate knows nothing of radar or neural networks.
//!
//! ```
//! use morphable::metrics::point_distance;
//! use morphable::{MorphableModel, Placement, Pose, builtin::builtin};
//!
//! let model = builtin();
//! // One standard deviation of the first shape component moves the face by millimetres.
//! let face = model.instance(&[1.0], &[])?;
//! let mean = model.mean_mesh()?;
//! let d = point_distance(&face, &mean)?;
//! assert!(d > 0.5 && d < 10.0, "{d} mm");
//! // Placed in front of the array: nearest point 0.25 m away, looking toward −z.
//! let placed = Placement::for_model(model)?.place(&mean, &Pose::identity());
//! let nearest = placed.vertices.iter().map(|p| p.z).fold(f64::INFINITY, f64::min);
//! assert!((nearest - 0.25).abs() < 1e-9);
//! # Ok::<(), morphable::MorphableError>(())
//! ```

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
pub use model::{
    LinearMorphableModel, MorphableModel, PcaBlock, PcaModel, Truncated, check_coefficients,
};
pub use pose::{DEFAULT_DISTANCE_M, MAX_ANGLE_RAD, MAX_TRANSLATION_M, Placement, Pose};
pub use sampling::{FaceSample, SamplingConfig};
