//! Run times of the physics and the learned renderer, measured in one run.

use std::time::Instant;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::{AbsFitError, Renderer, Result};

/// Per-image render times (seconds per image) of two renderers measured in one run on the same
/// parameters (issue 7: the physics renderer against the learned one).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RenderTimes {
    /// Median wall-clock seconds per image of the physics renderer.
    pub physics_s_per_image: f64,
    /// Median wall-clock seconds per image of the learned renderer.
    pub learned_s_per_image: f64,
}

impl RenderTimes {
    /// How many times faster the learned renderer is (physics time / learned time).
    pub fn speedup(&self) -> f64 {
        self.physics_s_per_image / self.learned_s_per_image
    }
}

/// Times `physics` and `learned` rendering the batch `params` (B, P scaled vectors), each
/// `repeats` times in alternation after one untimed warm-up call each, and returns the median
/// wall-clock seconds of a call divided by B. A renderer's images are forced (copied to host
/// memory) inside the timed region, so lazily evaluated devices are measured too.
///
/// Errors: `repeats` of 0, an empty batch, or a render failure.
pub fn render_times(
    physics: &dyn Renderer,
    learned: &dyn Renderer,
    params: &Tensor,
    repeats: usize,
) -> Result<RenderTimes> {
    if repeats == 0 {
        return Err(AbsFitError::config(
            "render timing",
            "repeats must be at least 1",
        ));
    }
    let batch = match params.dims() {
        [b, _] if *b > 0 => *b,
        dims => {
            return Err(AbsFitError::Shape {
                what: "render timing parameters",
                expected: "(B, P) with B ≥ 1".into(),
                actual: format!("{dims:?}"),
            });
        }
    };
    let once = |renderer: &dyn Renderer| -> Result<f64> {
        let start = Instant::now();
        let images = renderer.render(params)?;
        images
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?;
        Ok(start.elapsed().as_secs_f64())
    };
    once(physics)?;
    once(learned)?;
    let (mut p, mut l) = (Vec::with_capacity(repeats), Vec::with_capacity(repeats));
    for _ in 0..repeats {
        p.push(once(physics)?);
        l.push(once(learned)?);
    }
    Ok(RenderTimes {
        physics_s_per_image: median(&mut p) / batch as f64,
        learned_s_per_image: median(&mut l) / batch as f64,
    })
}

/// The median of non-empty finite values (the mean of the middle two for an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}
