//! Dataset generation: N faces drawn as PHYSICS.md §2 says, rendered by the physics renderer,
//! written chunk by chunk. Sample i depends on (config, seed, i) alone, so any shard or any
//! resumed run produces exactly the bytes one uninterrupted run would.

use std::path::Path;

use morphable::{MorphableModel, SamplingConfig};
use ndarray::{Array2, Array3};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    Dataset, DatasetWriter, FORMAT_VERSION, ImageInfo, Manifest, ModelIdentity, SampleArrays,
    shard_range,
};
use crate::render::z_range;
use crate::{
    AbsFitError, FaceDistribution, FaceParams, ImagingConfig, ParamLayout, PhysicsRenderer,
    Progress, Result,
};

/// Everything that defines a dataset. Two datasets with equal configs (and models) are
/// identical, byte for byte.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetConfig {
    /// Number of samples N.
    pub n_samples: usize,
    /// Base seed.
    pub seed: u64,
    /// Fraction of samples held out for validation (the last ones): 0.15 in the paper.
    pub validation_fraction: f64,
    /// How faces are drawn.
    pub sampling: SamplingConfig,
    /// The parameter layout (its coefficient counts match `sampling`), including the ranges the
    /// rendering parameters are drawn from.
    pub layout: ParamLayout,
    /// How faces are imaged.
    pub imaging: ImagingConfig,
}

impl DatasetConfig {
    /// Checks the config on its own and against a model.
    pub fn validate(&self, model: &dyn MorphableModel) -> Result<()> {
        self.distribution().validate()?;
        self.imaging.validate()?;
        if self.sampling.n_shape > model.n_shape()
            || self.sampling.n_expression > model.n_expression()
        {
            return Err(AbsFitError::config(
                "dataset",
                format!(
                    "sampling draws {} + {} coefficients; model '{}' has {} + {}",
                    self.sampling.n_shape,
                    self.sampling.n_expression,
                    model.name(),
                    model.n_shape(),
                    model.n_expression()
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.validation_fraction) {
            return Err(AbsFitError::config(
                "dataset",
                format!(
                    "validation fraction {} must lie in [0, 1)",
                    self.validation_fraction
                ),
            ));
        }
        if self.n_samples == 0 {
            return Err(AbsFitError::config("dataset", "0 samples"));
        }
        Ok(())
    }

    /// Samples in the training split: the first ⌊N·(1 − validation)⌉.
    pub fn n_train(&self) -> usize {
        ((self.n_samples as f64) * (1.0 - self.validation_fraction)).round() as usize
    }

    /// The distribution the faces are drawn from.
    pub fn distribution(&self) -> FaceDistribution {
        FaceDistribution {
            sampling: self.sampling,
            layout: self.layout,
            seed: self.seed,
        }
    }

    /// Face i and the seed of its simulation: a pure function of (seed, i).
    pub fn draw(&self, index: usize) -> (FaceParams, u64) {
        self.distribution().draw(index)
    }

    /// The manifest of this dataset (or of the samples `range` of it) for `model`.
    pub fn manifest(&self, model: &dyn MorphableModel, range: (usize, usize)) -> Result<Manifest> {
        let (height, width) = self.imaging.image_shape();
        let (z_near_m, z_far_m) = z_range(&self.imaging.grid);
        Ok(Manifest {
            format_version: FORMAT_VERSION,
            settings: serde_json::to_value(self).map_err(|e| {
                AbsFitError::config("dataset", format!("cannot serialise the config: {e}"))
            })?,
            model: ModelIdentity::of(model)?,
            seed: self.seed,
            n_samples: self.n_samples,
            range,
            n_train: self.n_train(),
            layout: self.layout,
            param_names: self.layout.names(),
            image: ImageInfo {
                height,
                width,
                z_near_m,
                z_far_m,
            },
        })
    }
}

/// Where and how much to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Generate only shard `i` of `n` (contiguous sample ranges that merge by concatenation).
    pub shard: Option<(usize, usize)>,
    /// Samples per chunk file: the unit of resumption.
    pub chunk_size: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            shard: None,
            chunk_size: 16,
        }
    }
}

/// Generates (or resumes, or simply opens if it is complete) the dataset of `config` in `dir`.
/// A directory holding another dataset is refused. Progress is reported in samples.
pub fn generate<M: MorphableModel>(
    model: &M,
    config: &DatasetConfig,
    dir: &Path,
    options: &GenerateOptions,
    progress: &mut dyn Progress,
) -> Result<Dataset> {
    config.validate(model)?;
    let range = match options.shard {
        Some((i, n)) => shard_range(config.n_samples, i, n)?,
        None => (0, config.n_samples),
    };
    let writer = DatasetWriter::open(dir, config.manifest(model, range)?, options.chunk_size)?;
    let pending = writer.pending_chunks();
    let total = (range.1 - range.0) as u64;
    let todo: u64 = pending.iter().map(|c| c.len() as u64).sum();
    progress.start("generating samples", total, total - todo);
    if !pending.is_empty() {
        let renderer = PhysicsRenderer::new(model, config.layout, config.imaging.clone())?;
        for chunk in pending {
            let arrays = render_chunk(&renderer, config, chunk.clone())?;
            writer.write_chunk(&chunk, &arrays)?;
            progress.advance(chunk.len() as u64);
        }
    }
    progress.finish();
    writer.finish()
}

/// Renders samples `range` in parallel.
fn render_chunk<M: MorphableModel>(
    renderer: &PhysicsRenderer<M>,
    config: &DatasetConfig,
    range: std::ops::Range<usize>,
) -> Result<SampleArrays> {
    let (h, w) = config.imaging.image_shape();
    let samples = range
        .clone()
        .into_par_iter()
        .map(|i| {
            let (face, seed) = config.draw(i);
            let products = renderer.image_products(&face, seed)?;
            Ok((
                config.layout.to_vector(&face),
                products.level_db().db().clone(),
                products.depth_m().depth_m().clone(),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let n = range.len();
    let p = config.layout.len();
    let mut arrays = SampleArrays {
        params: Array2::zeros((n, p)),
        level_db: Array3::zeros((n, h, w)),
        depth_m: Array3::zeros((n, h, w)),
    };
    for (k, (params, level, depth)) in samples.into_iter().enumerate() {
        arrays
            .params
            .row_mut(k)
            .assign(&ndarray::ArrayView1::from(&params));
        arrays
            .level_db
            .index_axis_mut(ndarray::Axis(0), k)
            .assign(&level);
        arrays
            .depth_m
            .index_axis_mut(ndarray::Axis(0), k)
            .assign(&depth);
    }
    Ok(arrays)
}
