//! Test fixtures built independently of the crate under test and of radar-sim's simulator:
//! the QAR50 layout written out from docs/physics.md §1, analytic point-target signals, and
//! measurements on images (peak, −3 dB width, correlation).

use nalgebra::Point3;
use ndarray::Array3;
use num_complex::{Complex32, Complex64};
use radar_sim::{ArrayGeometry, FrequencySweep, SPEED_OF_LIGHT, SignalCube};
use rayon::prelude::*;

/// An array given by its element positions (m).
#[derive(Debug, Clone)]
pub struct TestArray {
    pub tx: Vec<Point3<f64>>,
    pub rx: Vec<Point3<f64>>,
}

impl ArrayGeometry for TestArray {
    fn tx(&self) -> &[Point3<f64>] {
        &self.tx
    }
    fn rx(&self) -> &[Point3<f64>] {
        &self.rx
    }
}

impl TestArray {
    /// The QAR50-like layout of docs/physics.md §1: TX on the vertical edges x = ±70.5 mm at
    /// y = −66 … 66 mm every 3 mm, plus end elements at (±72, ±69) mm; RX on the horizontal
    /// edges y = ±70.5 mm at x = −69 … 69 mm every 3 mm.
    pub fn qar50() -> Self {
        let mm = 1e-3;
        let mut tx = Vec::new();
        for x in [-70.5, 70.5] {
            for i in 0..45 {
                tx.push(Point3::new(x * mm, (-66.0 + 3.0 * i as f64) * mm, 0.0));
            }
            let x_end = 72.0f64.copysign(x);
            tx.push(Point3::new(x_end * mm, -69.0 * mm, 0.0));
            tx.push(Point3::new(x_end * mm, 69.0 * mm, 0.0));
        }
        let mut rx = Vec::new();
        for y in [-70.5, 70.5] {
            for i in 0..47 {
                rx.push(Point3::new((-69.0 + 3.0 * i as f64) * mm, y * mm, 0.0));
            }
        }
        Self { tx, rx }
    }

    /// Every `step`-th TX and RX.
    pub fn thinned(&self, step: usize) -> Self {
        Self {
            tx: self.tx.iter().step_by(step).copied().collect(),
            rx: self.rx.iter().step_by(step).copied().collect(),
        }
    }
}

/// A point scatterer: position (m) and complex reflectivity.
#[derive(Debug, Clone, Copy)]
pub struct Scatterer {
    pub position: Point3<f64>,
    pub amplitude: Complex64,
}

impl Scatterer {
    pub fn unit(x: f64, y: f64, z: f64) -> Self {
        Self {
            position: Point3::new(x, y, z),
            amplitude: Complex64::new(1.0, 0.0),
        }
    }
}

/// The ideal signal of point scatterers, s(t, r, f) = Σ_h a_h·exp(−j2πf(d_t + d_r)/c), in
/// `f64` (frequency steps by an exact phasor recurrence), rounded to `f32` at the end.
pub fn point_signal(
    array: &TestArray,
    sweep: &FrequencySweep,
    scatterers: &[Scatterer],
) -> SignalCube {
    let n_freq = sweep.steps();
    let (n_tx, n_rx) = (array.tx.len(), array.rx.len());
    let mut data = vec![Complex32::new(0.0, 0.0); n_tx * n_rx * n_freq];
    data.par_chunks_mut(n_freq)
        .enumerate()
        .for_each(|(pair, out)| {
            let (t, r) = (pair / n_rx, pair % n_rx);
            let mut sum = vec![Complex64::new(0.0, 0.0); n_freq];
            for s in scatterers {
                let path = (s.position - array.tx[t]).norm() + (s.position - array.rx[r]).norm();
                let phasor = |hz: f64| {
                    let turns = hz * path / SPEED_OF_LIGHT;
                    Complex64::from_polar(1.0, -std::f64::consts::TAU * (turns - turns.round()))
                };
                let mut current = s.amplitude * phasor(sweep.start_hz());
                let step = phasor(sweep.step_hz());
                for value in sum.iter_mut() {
                    *value += current;
                    current *= step;
                }
            }
            for (o, s) in out.iter_mut().zip(&sum) {
                *o = Complex32::new(s.re as f32, s.im as f32);
            }
        });
    SignalCube::new(Array3::from_shape_vec((n_tx, n_rx, n_freq), data).unwrap())
}

/// |⟨a, b⟩| / (‖a‖·‖b‖) over all voxels.
pub fn correlation(a: &Array3<Complex32>, b: &Array3<Complex32>) -> f64 {
    let (mut ab, mut aa, mut bb) = (Complex64::new(0.0, 0.0), 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (
            Complex64::new(x.re as f64, x.im as f64),
            Complex64::new(y.re as f64, y.im as f64),
        );
        ab += x.conj() * y;
        aa += x.norm_sqr();
        bb += y.norm_sqr();
    }
    ab.norm() / (aa * bb).sqrt()
}

/// ‖a − b‖ / ‖b‖ over all voxels.
pub fn relative_error(a: &Array3<Complex32>, reference: &Array3<Complex32>) -> f64 {
    let (mut diff, mut norm) = (0.0, 0.0);
    for (x, y) in a.iter().zip(reference) {
        diff += ((x - y).norm() as f64).powi(2);
        norm += (y.norm() as f64).powi(2);
    }
    (diff / norm).sqrt()
}

/// The full width (in coordinate units) at −3 dB of the main lobe of a sampled magnitude
/// profile: from the peak outwards to the first sample below −3 dB on each side, the crossing
/// found by linear interpolation in dB. `None` if a side never drops below −3 dB.
pub fn minus_3db_width(coordinates: &[f64], magnitudes: &[f32]) -> Option<f64> {
    let peak = magnitudes
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))?
        .0;
    let db: Vec<f64> = magnitudes
        .iter()
        .map(|&m| 20.0 * (m as f64 / magnitudes[peak] as f64).log10())
        .collect();
    let crossing = |inside: usize, outside: usize| {
        let f = (-3.0 - db[inside]) / (db[outside] - db[inside]);
        coordinates[inside] + f * (coordinates[outside] - coordinates[inside])
    };
    let right = (peak + 1..db.len()).find(|&i| db[i] < -3.0)?;
    let left = (0..peak).rev().find(|&i| db[i] < -3.0)?;
    Some(crossing(right - 1, right) - crossing(left + 1, left))
}

/// Three scatterers of different strengths and phases, one off the grid's voxels.
pub fn three_targets() -> Vec<Scatterer> {
    vec![
        Scatterer::unit(0.0, 0.0, 0.25),
        Scatterer {
            position: Point3::new(0.0093, -0.0051, 0.2563),
            amplitude: Complex64::from_polar(0.6, 1.1),
        },
        Scatterer {
            position: Point3::new(-0.012, 0.008, 0.243),
            amplitude: Complex64::from_polar(0.3, -2.0),
        },
    ]
}
