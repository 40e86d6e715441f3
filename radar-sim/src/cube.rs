//! The simulated (or measured) signal.

use ndarray::Array3;
use num_complex::Complex32;

use std::path::Path;

use crate::{ArrayGeometry, FrequencySweep, RadarError, Result, npy};

/// Complex baseband samples s(t, r, f) indexed `[tx, rx, frequency]`, complex f32.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalCube {
    data: Array3<Complex32>,
}

impl SignalCube {
    /// Wraps an array indexed `[tx, rx, frequency]`.
    pub fn new(data: Array3<Complex32>) -> Self {
        Self { data }
    }
    /// An all-zero cube.
    pub fn zeros(n_tx: usize, n_rx: usize, n_freq: usize) -> Self {
        Self::new(Array3::zeros((n_tx, n_rx, n_freq)))
    }
    /// Number of transmitters.
    pub fn n_tx(&self) -> usize {
        self.data.dim().0
    }
    /// Number of receivers.
    pub fn n_rx(&self) -> usize {
        self.data.dim().1
    }
    /// Number of frequency steps.
    pub fn n_freq(&self) -> usize {
        self.data.dim().2
    }
    /// The samples, `[tx, rx, frequency]`.
    pub fn data(&self) -> &Array3<Complex32> {
        &self.data
    }
    /// The samples, mutable.
    pub fn data_mut(&mut self) -> &mut Array3<Complex32> {
        &mut self.data
    }
    /// Unwraps the samples.
    pub fn into_data(self) -> Array3<Complex32> {
        self.data
    }
    /// Checks that the cube's dimensions match an array and a sweep.
    pub fn check_matches(&self, array: &dyn ArrayGeometry, sweep: &FrequencySweep) -> Result<()> {
        let expected = (array.tx().len(), array.rx().len(), sweep.steps());
        if self.data.dim() != expected {
            return Err(RadarError::Shape {
                what: "signal cube [tx, rx, frequency]",
                expected: format!("{expected:?} (array and sweep)"),
                actual: format!("{:?}", self.data.dim()),
            });
        }
        Ok(())
    }

    /// The relative (Frobenius) error ‖self − reference‖₂/‖reference‖₂ over every sample,
    /// accumulated in f64. Fails on a shape mismatch; infinite for a zero reference unless both
    /// are zero.
    pub fn relative_error(&self, reference: &SignalCube) -> Result<f64> {
        if self.data.dim() != reference.data.dim() {
            return Err(RadarError::Shape {
                what: "signal cubes compared [tx, rx, frequency]",
                expected: format!("{:?} (the reference)", reference.data.dim()),
                actual: format!("{:?}", self.data.dim()),
            });
        }
        let (mut diff, mut norm) = (0.0f64, 0.0f64);
        for (a, b) in self.data.iter().zip(reference.data.iter()) {
            let (a, b) = (
                num_complex::Complex64::new(a.re.into(), a.im.into()),
                num_complex::Complex64::new(b.re.into(), b.im.into()),
            );
            diff += (a - b).norm_sqr();
            norm += b.norm_sqr();
        }
        Ok(match (diff, norm) {
            (0.0, _) => 0.0,
            (_, 0.0) => f64::INFINITY,
            _ => (diff / norm).sqrt(),
        })
    }

    /// Writes the cube as a `.npy` file of complex64 (`<c8`), shape `(n_tx, n_rx, n_freq)`.
    pub fn write_npy(&self, path: impl AsRef<Path>) -> Result<()> {
        npy::write_npy(path, &self.data)
    }

    /// Reads a cube from a `.npy` file of complex64, shape `(n_tx, n_rx, n_freq)`.
    pub fn read_npy(path: impl AsRef<Path>) -> Result<Self> {
        npy::read_npy(path).map(Self::new)
    }
}
