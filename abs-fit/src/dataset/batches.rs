//! Network inputs from a dataset: amplitude, depth or amplitude-depth images for a dynamic
//! range D drawn per example, assembled into seeded, shuffled batches.

use backproject::DynamicRange;
use candle_core::{Device, Tensor};
use ndarray::{Array2, ArrayView2, Axis};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::Dataset;
use crate::{AbsFitError, Result};

/// Writes the network input of one sample into `out` ((C, H, W)): from its dB level and depth
/// (m) images, for dynamic range `d_db`, with depths normalised over `(z_near, z_far)`
/// (docs/physics.md §4).
pub fn write_input_image(
    level_db: ArrayView2<f32>,
    depth_m: ArrayView2<f32>,
    kind: InputKind,
    d_db: f32,
    (z_near_m, z_far_m): (f64, f64),
    out: &mut [f32],
) -> Result<()> {
    let range = DynamicRange::new(d_db)?;
    let hw = level_db.len();
    if depth_m.dim() != level_db.dim() || out.len() != kind.channels() * hw {
        return Err(AbsFitError::Shape {
            what: "input image",
            expected: format!(
                "{} values from level {:?} and depth of the same shape",
                kind.channels() * hw,
                level_db.dim()
            ),
            actual: format!("{} values, depth {:?}", out.len(), depth_m.dim()),
        });
    }
    let amplitude = level_db.iter().map(|&l| range.amplitude(l));
    let normalised = level_db
        .iter()
        .zip(depth_m.iter())
        .map(|(&l, &z)| range.depth(l, z, z_near_m, z_far_m));
    let (first, second) = out.split_at_mut(hw);
    match kind {
        InputKind::Amplitude => first.iter_mut().zip(amplitude).for_each(|(o, v)| *o = v),
        InputKind::Depth => first.iter_mut().zip(normalised).for_each(|(o, v)| *o = v),
        InputKind::AmplitudeDepth => {
            first.iter_mut().zip(amplitude).for_each(|(o, v)| *o = v);
            second.iter_mut().zip(normalised).for_each(|(o, v)| *o = v);
        }
    }
    Ok(())
}

/// What a network sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputKind {
    /// One channel: A = clip((L + D)/D, 0, 1).
    Amplitude,
    /// One channel: normalised depth (z_far − z*)/(z_far − z_near) where L ≥ −D, else 0.
    Depth,
    /// Two channels: amplitude, then depth.
    AmplitudeDepth,
}

impl InputKind {
    /// Every kind, in Table 1's order.
    pub const ALL: [InputKind; 3] = [Self::Amplitude, Self::Depth, Self::AmplitudeDepth];

    /// Number of channels.
    pub fn channels(&self) -> usize {
        match self {
            Self::AmplitudeDepth => 2,
            _ => 1,
        }
    }
    /// A short name for files and tables.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Amplitude => "amplitude",
            Self::Depth => "depth",
            Self::AmplitudeDepth => "amplitude-depth",
        }
    }

    /// The paper's name in Table 1's rows: "Amplitude", "Depth" or "Amp.-Depth".
    pub fn paper_name(&self) -> &'static str {
        match self {
            Self::Amplitude => "Amplitude",
            Self::Depth => "Depth",
            Self::AmplitudeDepth => "Amp.-Depth",
        }
    }
}

/// How the dynamic range D is chosen per example.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum RangePolicy {
    /// Always D (dB): 20 dB to evaluate encoders, 15 dB to train the learned renderer.
    Fixed(f32),
    /// D ~ U(lo, hi) dB per example and epoch: [15, 30] dB to train encoders.
    Uniform(f32, f32),
}

/// The dynamic range (dB) at which the paper evaluates encoders (Table 1): 20 dB.
pub const EVALUATION_RANGE_DB: f32 = 20.0;

impl RangePolicy {
    /// The paper's training policy, D ~ U(15, 30) dB.
    pub const TRAIN: RangePolicy = RangePolicy::Uniform(15.0, 30.0);
    /// The paper's evaluation policy, D = [`EVALUATION_RANGE_DB`].
    pub const EVALUATE: RangePolicy = RangePolicy::Fixed(EVALUATION_RANGE_DB);

    fn validate(&self) -> Result<()> {
        let ok = match *self {
            Self::Fixed(d) => d.is_finite() && d > 0.0,
            Self::Uniform(lo, hi) => lo.is_finite() && hi.is_finite() && lo > 0.0 && hi >= lo,
        };
        if ok {
            Ok(())
        } else {
            Err(AbsFitError::config(
                "dynamic range policy",
                format!("{self:?}: ranges must be finite, positive and increasing"),
            ))
        }
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> f32 {
        match *self {
            Self::Fixed(d) => d,
            Self::Uniform(lo, hi) if hi > lo => rng.random_range(lo..hi),
            Self::Uniform(lo, _) => lo,
        }
    }
}

/// How batches are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BatchConfig {
    /// Examples per batch (the last batch may be smaller).
    pub batch_size: usize,
    /// Input images.
    pub input: InputKind,
    /// Dynamic range per example.
    pub range: RangePolicy,
    /// Shuffle the rows each epoch.
    pub shuffle: bool,
    /// Seed of the shuffle and of the D draws; epoch e uses stream e.
    pub seed: u64,
}

/// One batch, laid out as the networks want it.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Dataset rows of the examples.
    pub rows: Vec<usize>,
    /// Images, (B, C, H, W) row-major.
    pub inputs: Vec<f32>,
    /// Scaled parameters, (B, P) row-major, with the dynamic-range column set to the D that was
    /// applied to the inputs.
    pub params: Vec<f32>,
    /// (B, C, H, W).
    pub input_shape: [usize; 4],
    /// P.
    pub n_params: usize,
}

impl Dataset {
    /// Writes the input image of row `row` for dynamic range `d_db` into `out` ((C, H, W)).
    pub fn write_input(
        &self,
        row: usize,
        kind: InputKind,
        d_db: f32,
        out: &mut [f32],
    ) -> Result<()> {
        if row >= self.len() {
            return Err(AbsFitError::config(
                "dataset row",
                format!("row {row} is past the {} samples held", self.len()),
            ));
        }
        let info = self.manifest().image;
        let arrays = self.arrays();
        write_input_image(
            arrays.level_db.index_axis(Axis(0), row),
            arrays.depth_m.index_axis(Axis(0), row),
            kind,
            d_db,
            (info.z_near_m, info.z_far_m),
            out,
        )
    }

    /// The input images (B, C, H, W) of `rows` of kind `kind` at dynamic range `d_db`, as one f32
    /// tensor on the CPU.
    pub fn input_images(&self, rows: &[usize], kind: InputKind, d_db: f32) -> Result<Tensor> {
        let info = self.manifest().image;
        let size = kind.channels() * info.height * info.width;
        let mut values = vec![0.0f32; rows.len() * size];
        for (&row, image) in rows.iter().zip(values.chunks_exact_mut(size)) {
            self.write_input(row, kind, d_db, image)?;
        }
        let shape = (rows.len(), kind.channels(), info.height, info.width);
        Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
    }

    /// The true scaled parameters (N × P) of `rows` with the dynamic-range column at `d_db`.
    pub fn params_at_range(&self, rows: &[usize], d_db: f32) -> Result<Array2<f32>> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.len()) {
            return Err(AbsFitError::config(
                "dataset rows",
                format!("row {bad} is past the {} samples held", self.len()),
            ));
        }
        let p = self.manifest().layout.len();
        let values = rows
            .iter()
            .flat_map(|&row| self.params_with_range(row, d_db))
            .collect();
        Array2::from_shape_vec((rows.len(), p), values)
            .map_err(|e| AbsFitError::config("dataset rows", e.to_string()))
    }

    /// The scaled parameters of a row with the dynamic-range column replaced by `d_db`.
    pub fn params_with_range(&self, row: usize, d_db: f32) -> Vec<f32> {
        let mut p = self.arrays().params.row(row).to_vec();
        self.manifest()
            .layout
            .set_dynamic_range(&mut p, f64::from(d_db));
        p
    }

    /// The batches of one epoch over `rows` (local row indices, e.g. [`Dataset::train_rows`]).
    /// Deterministic: the same config, rows and epoch give the same batches.
    pub fn batches(&self, rows: &[usize], config: &BatchConfig, epoch: u64) -> Result<Vec<Batch>> {
        config.range.validate()?;
        if config.batch_size == 0 {
            return Err(AbsFitError::config("batch size", "must be at least 1"));
        }
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.len()) {
            return Err(AbsFitError::config(
                "batch rows",
                format!("row {bad} is past the {} samples held", self.len()),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(epoch);
        let mut order = rows.to_vec();
        if config.shuffle {
            order.shuffle(&mut rng);
        }
        let info = self.manifest().image;
        let c = config.input.channels();
        let chw = c * info.height * info.width;
        let p = self.manifest().layout.len();
        order
            .chunks(config.batch_size)
            .map(|chunk| {
                let b = chunk.len();
                let mut inputs = vec![0.0; b * chw];
                let mut params = Vec::with_capacity(b * p);
                for (&row, out) in chunk.iter().zip(inputs.chunks_mut(chw)) {
                    let d = config.range.draw(&mut rng);
                    self.write_input(row, config.input, d, out)?;
                    params.extend(self.params_with_range(row, d));
                }
                Ok(Batch {
                    rows: chunk.to_vec(),
                    inputs,
                    params,
                    input_shape: [b, c, info.height, info.width],
                    n_params: p,
                })
            })
            .collect()
    }
}
