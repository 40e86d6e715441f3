//! Where networks train and run, as a small value that configs can copy, compare and serialise.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::error::{FacenetError, Result};

/// A candle device by name: `cpu`, or `cuda` / `cuda:N` (GPU N, which needs the crate's `cuda`
/// feature).
///
/// ```
/// use facenet::ComputeDevice;
///
/// assert_eq!("cuda:1".parse::<ComputeDevice>()?, ComputeDevice::Cuda(1));
/// assert_eq!("cuda".parse::<ComputeDevice>()?, ComputeDevice::Cuda(0));
/// assert!(ComputeDevice::Cpu.open()?.is_cpu());
/// assert!("tpu".parse::<ComputeDevice>().is_err());
/// # Ok::<(), facenet::FacenetError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComputeDevice {
    /// The CPU (candle's CPU backend and this crate's fused CPU kernels).
    #[default]
    Cpu,
    /// CUDA GPU with this ordinal.
    Cuda(usize),
}

impl ComputeDevice {
    /// The candle device.
    ///
    /// # Errors
    /// [`FacenetError::Config`] if the device cannot be opened: no such GPU, or a build without
    /// the `cuda` feature.
    pub fn open(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(ordinal) => Device::new_cuda(ordinal).map_err(|e| {
                FacenetError::config(
                    "ComputeDevice",
                    "cuda",
                    format!(
                        "cannot open {self}: {e} (GPUs need a build with `--features cuda` and \
                         a CUDA driver)"
                    ),
                )
            }),
        }
    }
}

impl fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(ordinal) => write!(f, "cuda:{ordinal}"),
        }
    }
}

impl FromStr for ComputeDevice {
    type Err = FacenetError;

    fn from_str(s: &str) -> Result<Self> {
        let unknown = || {
            FacenetError::config(
                "ComputeDevice",
                "name",
                format!("unknown device '{s}', expected cpu, cuda or cuda:N"),
            )
        };
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(unknown),
        }
    }
}
