//! # radar-sim
//!
//! A stepped-frequency (SFCW) MIMO radar simulator for any planar array and any triangle
//! surface or point set (docs/physics.md §1, §3). Units: SI (m, Hz, s, rad). It knows nothing of
//! faces or neural networks: a surface is positions and triangles.
//!
//! - Arrays: the [`ArrayGeometry`] trait; [`Qar50`] (the 94 + 94 element cluster of
//!   docs/physics.md §1), [`BoundaryArray`] (any square boundary array), [`CustomArray`] (any
//!   positions); dead channels via [`ChannelMask`]; [`virtual_aperture`].
//! - [`FrequencySweep`]: stepped frequencies, 72–82 GHz in 128 steps by default.
//! - Scenes: [`Surface`]s (triangles, m) and [`PointScatterer`]s in a [`Scene`].
//! - The forward model: [`Simulator`] with a [`SimulationConfig`] ([`SurfaceModel`]: the
//!   converged model of [`ConvergedSurface`] — physical optics on [`Facet`]s plus an explicit
//!   diffuse field — or the paper-like sampled one; [`HitDensity`], [`Material`],
//!   [`ElementPattern`], noise, the sampling and surface seeds, [`SumMethod`]) gives a
//!   [`SignalCube`] (complex f32, `[tx, rx, frequency]`) and [`SimulationStats`].
//! - [`npy`]: NumPy `.npy` reading and writing for any ndarray.
//!
//! ```
//! use nalgebra::Point3;
//! use radar_sim::{FrequencySweep, Qar50, Scene, SimulationConfig, Simulator, Surface};
//!
//! // A 4 × 4 cm plate 25 cm in front of the array, made of two triangles.
//! let plate = Surface::new(
//!     vec![
//!         Point3::new(-0.02, -0.02, 0.25),
//!         Point3::new(0.02, -0.02, 0.25),
//!         Point3::new(0.02, 0.02, 0.25),
//!         Point3::new(-0.02, 0.02, 0.25),
//!     ],
//!     vec![[0, 1, 2], [0, 2, 3]],
//! )?;
//! let sweep = FrequencySweep::new(72e9, 82e9, 8)?;
//! let simulator = Simulator::new(&Qar50::new(), sweep, SimulationConfig::default())?;
//! let report = simulator.simulate(&Scene::from_surface(plate))?;
//! assert_eq!(report.cube.data().dim(), (94, 94, 8));
//! // The converged model: each triangle (hypotenuse 56.6 mm) is split four times into 256
//! // facets of at most 6 mm (docs/physics.md §3.5), none hidden.
//! assert_eq!(report.stats.facets_used, 512);
//! # Ok::<(), radar_sim::RadarError>(())
//! ```

mod array;
mod config;
mod cube;
mod error;
mod facets;
mod gradient;
mod hits;
mod kernel;
mod layouts;
mod mask;
mod material;
mod noise;
pub mod npy;
mod phasor;
mod scene;
mod simulator;
mod sweep;
mod visibility;

pub use array::{ArrayGeometry, validate_array, virtual_aperture};
pub use config::{
    CoherentIntegral, ConvergedSurface, HitDensity, SimulationConfig, SumMethod, SurfaceModel,
};
pub use cube::SignalCube;
pub use error::{RadarError, Result};
pub use facets::Facet;
pub use gradient::{GradientKernel, SceneGradient};
pub use hits::{Hit, SceneSample};
pub use layouts::{BoundaryArray, CustomArray, Qar50};
pub use mask::ChannelMask;
pub use material::{ElementPattern, Material};
pub use phasor::cis_turns;
pub use scene::{PointScatterer, Scene, Surface};
pub use simulator::{SimulationReport, SimulationStats, Simulator, simulate};
pub use sweep::{FrequencySweep, SPEED_OF_LIGHT};

/// The README's example, compiled as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
