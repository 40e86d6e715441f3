//! Antenna arrays: the [`ArrayGeometry`] trait, its validation and the virtual aperture.
//!
//! The concrete layouts ([`Qar50`](crate::Qar50), [`BoundaryArray`](crate::BoundaryArray),
//! [`CustomArray`](crate::CustomArray)) live in `layouts.rs`; dead channels in
//! [`ChannelMask`](crate::ChannelMask).

use nalgebra::Point3;

use crate::{ChannelMask, RadarError, Result};

/// A MIMO array: transmitter and receiver positions (m, radar space: array plane z = 0,
/// boresight +z). Every TX/RX pair is one channel of a [`SignalCube`](crate::SignalCube).
///
/// Only [`tx`](ArrayGeometry::tx) and [`rx`](ArrayGeometry::rx) are required; the provided
/// methods have defaults that suit any array. Implementations outside this crate are checked by
/// [`validate_array`] before a simulation uses them.
pub trait ArrayGeometry: Send + Sync {
    /// Transmitter positions (m).
    fn tx(&self) -> &[Point3<f64>];
    /// Receiver positions (m).
    fn rx(&self) -> &[Point3<f64>];

    /// Dead channels, if any. `None` (the default) means every TX/RX pair works. Dead channels
    /// read zero in a simulated [`SignalCube`](crate::SignalCube) (no signal, no noise).
    fn channel_mask(&self) -> Option<&ChannelMask> {
        None
    }

    /// Number of channels (TX/RX pairs), dead ones included.
    fn n_channels(&self) -> usize {
        self.tx().len() * self.rx().len()
    }

    /// The array centre (m): the centroid of all TX and RX positions. For the QAR50 layout this
    /// is the origin. Visibility is tested from this point (docs/physics.md §3). The origin for an
    /// array without elements.
    fn centre(&self) -> Point3<f64> {
        let all = self.tx().iter().chain(self.rx());
        let n = self.tx().len() + self.rx().len();
        if n == 0 {
            return Point3::origin();
        }
        Point3::from(all.fold(nalgebra::Vector3::zeros(), |s, p| s + p.coords) / n as f64)
    }
}

impl<A: ArrayGeometry + ?Sized> ArrayGeometry for &A {
    fn tx(&self) -> &[Point3<f64>] {
        (**self).tx()
    }
    fn rx(&self) -> &[Point3<f64>] {
        (**self).rx()
    }
    fn channel_mask(&self) -> Option<&ChannelMask> {
        (**self).channel_mask()
    }
    fn n_channels(&self) -> usize {
        (**self).n_channels()
    }
    fn centre(&self) -> Point3<f64> {
        (**self).centre()
    }
}
impl<A: ArrayGeometry + ?Sized> ArrayGeometry for Box<A> {
    fn tx(&self) -> &[Point3<f64>] {
        (**self).tx()
    }
    fn rx(&self) -> &[Point3<f64>] {
        (**self).rx()
    }
    fn channel_mask(&self) -> Option<&ChannelMask> {
        (**self).channel_mask()
    }
    fn n_channels(&self) -> usize {
        (**self).n_channels()
    }
    fn centre(&self) -> Point3<f64> {
        (**self).centre()
    }
}
impl<A: ArrayGeometry + ?Sized> ArrayGeometry for std::sync::Arc<A> {
    fn tx(&self) -> &[Point3<f64>] {
        (**self).tx()
    }
    fn rx(&self) -> &[Point3<f64>] {
        (**self).rx()
    }
    fn channel_mask(&self) -> Option<&ChannelMask> {
        (**self).channel_mask()
    }
    fn n_channels(&self) -> usize {
        (**self).n_channels()
    }
    fn centre(&self) -> Point3<f64> {
        (**self).centre()
    }
}

/// Checks any array (ours or a third party's): at least one TX and one RX, every coordinate
/// finite, no two transmitters (or two receivers) at the same place, and a channel mask, if
/// any, of shape `[n_tx, n_rx]`. A TX and an RX may share a position (a monostatic pair).
pub fn validate_array(array: &dyn ArrayGeometry) -> Result<()> {
    validate_elements("TX", array.tx())?;
    validate_elements("RX", array.rx())?;
    if let Some(mask) = array.channel_mask() {
        let expected = (array.tx().len(), array.rx().len());
        if mask.shape() != expected {
            return Err(RadarError::Shape {
                what: "channel mask [tx, rx]",
                expected: format!("{expected:?} (the array's TX and RX counts)"),
                actual: format!("{:?}", mask.shape()),
            });
        }
    }
    Ok(())
}

/// Positions closer than this (m) count as the same place.
const COINCIDENT_M: f64 = 1e-9;

/// Checks one kind of element: non-empty, finite, no duplicates.
pub(crate) fn validate_elements(kind: &'static str, positions: &[Point3<f64>]) -> Result<()> {
    if positions.is_empty() {
        return Err(RadarError::config(
            "array",
            format!("no {kind} elements: an array needs at least one TX and one RX"),
        ));
    }
    if let Some((i, p)) = positions
        .iter()
        .enumerate()
        .find(|(_, p)| !p.coords.iter().all(|c| c.is_finite()))
    {
        return Err(RadarError::config(
            "array",
            format!(
                "{kind} element {i} has a non-finite position {:?} m",
                p.coords.as_slice()
            ),
        ));
    }
    // Sort by x so duplicates only need comparing with close neighbours: O(n log n).
    let mut order: Vec<usize> = (0..positions.len()).collect();
    order.sort_by(|&a, &b| positions[a].x.total_cmp(&positions[b].x));
    for (k, &a) in order.iter().enumerate() {
        for &b in order[k + 1..].iter() {
            if positions[b].x - positions[a].x > COINCIDENT_M {
                break;
            }
            if (positions[a] - positions[b]).norm() <= COINCIDENT_M {
                let (i, j) = (a.min(b), a.max(b));
                return Err(RadarError::config(
                    "array",
                    format!(
                        "{kind} elements {i} and {j} share the position {:?} m",
                        positions[i].coords.as_slice()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The virtual aperture: the midpoint (p_t + p_r)/2 of every channel (m), TX-major (index
/// `t·n_rx + r`, the order of a [`SignalCube`](crate::SignalCube)'s first two axes). Dead
/// channels are included; check [`ArrayGeometry::channel_mask`] to skip them.
pub fn virtual_aperture(array: &dyn ArrayGeometry) -> Vec<Point3<f64>> {
    array
        .tx()
        .iter()
        .flat_map(|t| array.rx().iter().map(move |r| nalgebra::center(t, r)))
        .collect()
}
