//! Antenna arrays.

use nalgebra::Point3;

/// A MIMO array: transmitter and receiver positions (m, radar space: array plane z = 0,
/// boresight +z). Every TX/RX pair is one channel of a [`SignalCube`](crate::SignalCube).
pub trait ArrayGeometry: Send + Sync {
    /// Transmitter positions (m).
    fn tx(&self) -> &[Point3<f64>];
    /// Receiver positions (m).
    fn rx(&self) -> &[Point3<f64>];
}

impl<A: ArrayGeometry + ?Sized> ArrayGeometry for &A {
    fn tx(&self) -> &[Point3<f64>] {
        (**self).tx()
    }
    fn rx(&self) -> &[Point3<f64>] {
        (**self).rx()
    }
}
impl<A: ArrayGeometry + ?Sized> ArrayGeometry for Box<A> {
    fn tx(&self) -> &[Point3<f64>] {
        (**self).tx()
    }
    fn rx(&self) -> &[Point3<f64>] {
        (**self).rx()
    }
}
impl<A: ArrayGeometry + ?Sized> ArrayGeometry for std::sync::Arc<A> {
    fn tx(&self) -> &[Point3<f64>] {
        (**self).tx()
    }
    fn rx(&self) -> &[Point3<f64>] {
        (**self).rx()
    }
}
