//! # abs-fit
//!
//! Model-based face reconstruction from radar images: the parameter layout shared by networks
//! and renderers, the [`Renderer`](crate) seam, dataset generation, training and
//! analysis-by-synthesis fitting. It knows nothing of command lines or terminals: progress is
//! reported to observers.

pub mod card;
pub mod dataset;
mod encoder;
mod error;
pub mod evaluate;
pub mod fit;
pub mod generation;
pub mod identity;
pub mod imaging;
pub mod iterative;
pub mod lock;
pub mod params;
pub mod presets;
mod progress;
pub mod render;
pub mod train;

pub use encoder::TrainedEncoder;
pub use error::{AbsFitError, Result};
pub use evaluate::{Table1Row, evaluate};
pub use fit::{ChannelLoss, FitConfig, FitResult, LevenbergMarquardt, PriorCentre, Solver, fit};
pub use generation::{GenerateOptions, generate};
pub use identity::{
    CoefficientIdentity, DistilConfig, DistilFidelity, DistilledIdentity, MeshIdentityEncoder,
};
pub use imaging::{ArraySpec, ImagingConfig};
pub use iterative::{Iterate, IterativeEncoder};
pub use params::{
    FaceDistribution, FaceParams, ParamGroup, ParamLayout, PoseScales, PoseScaling, RenderParams,
    RenderRanges,
};
pub use presets::Preset;
pub use progress::{NoProgress, Progress};
pub use render::{
    DepthRasterRenderer, DifferentiablePhysicsRenderer, FeedbackRenderer, FeedbackSet,
    LearnedRenderer, PairedRenderer, PhysicsRenderer, RenderChoices, Renderer, Rendering,
};
pub use train::{
    FrozenDecoder, PhysicsSeeds, train_autoencoder, train_decoder, train_encoder, train_iterative,
    train_iterative_from, train_mesh_encoder,
};

/// The README's examples, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
