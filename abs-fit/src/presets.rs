//! Named points in the one configuration space (DESIGN.md "Presets").
//!
//! | preset  | for                          | dataset                                                        |
//! |---------|------------------------------|----------------------------------------------------------------|
//! | `tiny`  | tests (seconds)              | 24 faces, QAR50 / 2, 16 steps, 48² voxels pooled 3 → 16², 4 mm hits |
//! | `quick` | README main job (≤ 10 min)   | 1400 faces, QAR50 / 2, 32 steps, 64² voxels pooled 2 → 32², 3 mm hits |
//! | `cpu`   | full reproduction (≤ 90 min) | 6000 faces, QAR50 / 2, 48 steps, 64² voxels pooled 2 → 32², 3 mm hits |
//! | `paper` | GPU, the published scale     | 10 000 faces, QAR50, 128 steps, 64² voxels → 64², 2 mm hits |
//!
//! Why these points: a sample's cost grows with channels × frequencies × hits (simulation) and
//! channels × voxels (back-projection). Halving the array keeps its 14 cm aperture — and so the
//! lateral resolution — while dividing channels by 4; its 3 mm virtual pitch puts the grating
//! lobes near 40°, outside the field of view (a factor of 4 would bring them to ~19°, inside).
//! 16–32 steps over the full 10 GHz keep the 15 mm range resolution with a 22–47 cm
//! unambiguous range, enough for a face 25–35 cm away. The voxel grid keeps 4–5 mm voxels so it
//! samples the ≈ 3.5 mm point-spread function instead of aliasing it into speckle; networks get
//! fewer pixels by max-pooling the images. Every preset covers the same 256 mm field of view.

use std::str::FromStr;

use backproject::VoxelGrid;
use morphable::SamplingConfig;
use radar_sim::{FrequencySweep, HitDensity, SimulationConfig};
use serde::{Deserialize, Serialize};

use crate::dataset::DatasetConfig;
use crate::{AbsFitError, ArraySpec, ImagingConfig, ParamLayout, PoseScaling, Result};

/// A named configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Seconds: unit and integration tests.
    Tiny,
    /// Minutes: the README's main job.
    Quick,
    /// About an hour on two CPU cores: the full reproduction.
    Cpu,
    /// The published scale: needs a GPU for training.
    Paper,
}

impl FromStr for Preset {
    type Err = AbsFitError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tiny" => Ok(Self::Tiny),
            "quick" => Ok(Self::Quick),
            "cpu" => Ok(Self::Cpu),
            "paper" => Ok(Self::Paper),
            _ => Err(AbsFitError::config(
                "preset",
                format!("'{s}': choose tiny, quick, cpu or paper"),
            )),
        }
    }
}

impl Preset {
    /// Every preset, smallest first.
    pub const ALL: [Preset; 4] = [Self::Tiny, Self::Quick, Self::Cpu, Self::Paper];

    /// The preset's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tiny => "tiny",
            Self::Quick => "quick",
            Self::Cpu => "cpu",
            Self::Paper => "paper",
        }
    }

    /// The dataset of this preset.
    pub fn dataset(&self) -> Result<DatasetConfig> {
        // (samples, array decimation, sweep steps, grid side in voxels, depth steps, pooling,
        // hit spacing in m)
        let (n_samples, decimation, steps, pixels, depth_steps, pool, spacing) = match self {
            Self::Tiny => (24, 2, 16, 48, 16, 3, 0.004),
            Self::Quick => (1400, 2, 32, 64, 32, 2, 0.003),
            Self::Cpu => (6000, 2, 48, 64, 48, 2, 0.003),
            Self::Paper => (10_000, 1, 128, 64, 64, 1, 0.002),
        };
        let field_of_view_m = 0.256;
        let (z_near_m, z_far_m) = (0.20, 0.36);
        let grid = if *self == Self::Paper {
            VoxelGrid::default_face()
        } else {
            ImagingConfig::centred_grid(
                pixels,
                pixels,
                field_of_view_m / pixels as f64,
                z_near_m,
                depth_steps,
                (z_far_m - z_near_m) / depth_steps as f64,
            )?
        };
        let array = if decimation == 1 {
            ArraySpec::Qar50
        } else {
            ArraySpec::Qar50Decimated { factor: decimation }
        };
        let full = FrequencySweep::qar50();
        let sweep = FrequencySweep::new(full.start_hz(), full.stop_hz(), steps)?;
        let sampling = SamplingConfig::default();
        Ok(DatasetConfig {
            n_samples,
            seed: 2024,
            validation_fraction: 0.15,
            sampling,
            layout: ParamLayout::new(&sampling, PoseScaling::SamplingRange),
            imaging: ImagingConfig {
                array,
                sweep,
                grid,
                simulation: SimulationConfig {
                    hits: HitDensity::Spacing(spacing),
                    ..SimulationConfig::default()
                },
                pool,
                ..ImagingConfig::default()
            },
        })
    }
}
