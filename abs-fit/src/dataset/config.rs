//! What defines a dataset: [`DatasetConfig`], written into every manifest and read back from it
//! by [`Dataset::config`].

use morphable::{MorphableModel, SamplingConfig};
use serde::{Deserialize, Serialize};

use super::{Dataset, FORMAT_VERSION, ImageInfo, Manifest, ModelIdentity};
use crate::{
    AbsFitError, FaceDistribution, FaceParams, ImagingConfig, ParamLayout, PoseScales, PoseScaling,
    Result,
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
    /// Scales the layout's pose columns by `scaling` for this config's sampling ranges (the
    /// presets use [`PoseScaling::SamplingRange`], the paper's protocol).
    pub fn set_pose_scaling(&mut self, scaling: PoseScaling) {
        self.layout.pose_scales = PoseScales::new(scaling, &self.sampling);
    }

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
        if self.n_samples > Self::MAX_SAMPLES {
            return Err(AbsFitError::config(
                "dataset",
                format!(
                    "{} samples is more than {} ({})",
                    self.n_samples,
                    Self::MAX_SAMPLES,
                    human_bytes(self.bytes_per_sample() * Self::MAX_SAMPLES as u64)
                ),
            ));
        }
        Ok(())
    }

    /// The most samples a dataset may hold (the paper uses 10 000).
    pub const MAX_SAMPLES: usize = 10_000_000;

    /// Bytes one sample takes in the dataset's arrays (parameters, dB level, depth; f32).
    pub fn bytes_per_sample(&self) -> u64 {
        let (h, w) = self.imaging.image_shape();
        4 * (self.layout.len() + 2 * h * w) as u64
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
        let (z_near_m, z_far_m) = self.imaging.depth_range_m();
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

/// `bytes` as "12.3 GB".
pub(crate) fn human_bytes(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", units[unit])
}

impl Dataset {
    /// The configuration the dataset was generated from, read back from its manifest: the one
    /// place where a manifest's settings become a [`DatasetConfig`] again.
    pub fn config(&self) -> Result<DatasetConfig> {
        serde_json::from_value(self.manifest().settings.clone()).map_err(|e| {
            AbsFitError::dataset(
                self.dir(),
                format!("the manifest's settings are not a dataset configuration: {e}"),
            )
        })
    }
}
