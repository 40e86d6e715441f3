//! # radar-sim
//!
//! A stepped-frequency (SFCW) MIMO radar simulator for any planar array and any triangle
//! surface or point set (PHYSICS.md §1, §3). Units: SI (m, Hz, s, rad). It knows nothing of
//! faces or neural networks: a surface is positions and triangles.

mod array;
mod cube;
mod error;
mod sweep;

pub use array::ArrayGeometry;
pub use cube::SignalCube;
pub use error::{RadarError, Result};
pub use sweep::{FrequencySweep, SPEED_OF_LIGHT};
