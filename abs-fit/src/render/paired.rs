//! Two renderers of the same images side by side: the images of two independent realisations
//! of a noisy renderer, for the unbiased speckle loss of [`crate::FitConfig::paired_realisations`].

use candle_core::Tensor;

use super::Renderer;
use crate::{AbsFitError, Result};

/// Renders a batch with two renderers and stacks their images along the channels: (B, 2C, H,
/// W), the first renderer's C channels, then the second's. With two realisations of the same
/// noisy renderer (e.g. [`super::DifferentiablePhysicsRenderer`]s with different seeds) the
/// two halves are independent draws of the same expected image, which a fit with
/// [`crate::FitConfig::paired_realisations`] compares with its target as (r₁ − t)·(r₂ − t).
pub struct PairedRenderer<A, B> {
    first: A,
    second: B,
    name: String,
    shape: (usize, usize, usize),
}

impl<A: Renderer, B: Renderer> PairedRenderer<A, B> {
    /// The pair of `first` and `second`. Errors: renderers whose images differ in shape.
    pub fn new(first: A, second: B) -> Result<Self> {
        let (a, b) = (first.image_shape(), second.image_shape());
        if a != b {
            return Err(AbsFitError::Shape {
                what: "paired renderer images",
                expected: format!("the second renderer's images as the first's, {a:?}"),
                actual: format!("{b:?}"),
            });
        }
        Ok(Self {
            name: format!("{}+{}", first.name(), second.name()),
            shape: (2 * a.0, a.1, a.2),
            first,
            second,
        })
    }
}

impl<A: Renderer, B: Renderer> Renderer for PairedRenderer<A, B> {
    fn name(&self) -> &str {
        &self.name
    }
    fn render(&self, params: &Tensor) -> Result<Tensor> {
        let first = self.first.render(params)?;
        let second = self.second.render(params)?.to_dtype(first.dtype())?;
        Ok(Tensor::cat(&[first, second], 1)?)
    }
    fn is_differentiable(&self) -> bool {
        self.first.is_differentiable() && self.second.is_differentiable()
    }
    fn image_shape(&self) -> (usize, usize, usize) {
        self.shape
    }
}
