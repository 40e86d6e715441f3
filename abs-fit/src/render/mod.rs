//! The [`Renderer`] seam: parameter vectors in, images out. Fitting and training are generic
//! over it; a renderer says whether gradients flow through it, and fitting asks for gradients
//! only from one that does.

mod depth_raster;
mod feedback;
mod geometry;
mod learned;
mod paired;
mod physics;
mod physics_gradient;

pub use depth_raster::DepthRasterRenderer;
pub use feedback::{FeedbackRenderer, FeedbackSet};
pub use learned::LearnedRenderer;
pub use paired::PairedRenderer;
pub use physics::{MIN_DISTANCE_M, PhysicsRenderer, Rendering};
pub use physics_gradient::{DifferentiablePhysicsRenderer, RenderChoices};

use candle_core::Tensor;

use crate::Result;

/// Maps scaled parameter vectors (B, P) (see [`ParamLayout`](crate::ParamLayout)) to images
/// (B, C, H, W).
pub trait Renderer: Send + Sync {
    /// A short name for tables and logs.
    fn name(&self) -> &str;
    /// The images of a batch of parameter vectors.
    fn render(&self, params: &Tensor) -> Result<Tensor>;
    /// Whether gradients flow from the images back to `params`.
    fn is_differentiable(&self) -> bool;
    /// (C, H, W) of every image.
    fn image_shape(&self) -> (usize, usize, usize);
}

impl<R: Renderer + ?Sized> Renderer for &R {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn render(&self, params: &Tensor) -> Result<Tensor> {
        (**self).render(params)
    }
    fn is_differentiable(&self) -> bool {
        (**self).is_differentiable()
    }
    fn image_shape(&self) -> (usize, usize, usize) {
        (**self).image_shape()
    }
}

impl<R: Renderer + ?Sized> Renderer for Box<R> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn render(&self, params: &Tensor) -> Result<Tensor> {
        (**self).render(params)
    }
    fn is_differentiable(&self) -> bool {
        (**self).is_differentiable()
    }
    fn image_shape(&self) -> (usize, usize, usize) {
        (**self).image_shape()
    }
}
