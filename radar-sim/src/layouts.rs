//! Concrete array layouts: the QAR50 cluster, a generic square boundary array, and arrays from
//! arbitrary positions. All positions in metres, radar space (array plane z = 0, boresight +z).

use nalgebra::Point3;

use crate::array::validate_array;
use crate::{ArrayGeometry, ChannelMask, RadarError, Result};

/// An array from arbitrary TX and RX positions (m), optionally with dead channels.
///
/// ```
/// use nalgebra::Point3;
/// use radar_sim::{ArrayGeometry, CustomArray};
///
/// let array = CustomArray::new(
///     vec![Point3::new(-0.01, 0.0, 0.0), Point3::new(0.01, 0.0, 0.0)],
///     vec![Point3::new(0.0, 0.01, 0.0)],
/// )?;
/// assert_eq!(array.n_channels(), 2);
/// # Ok::<(), radar_sim::RadarError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CustomArray {
    tx: Vec<Point3<f64>>,
    rx: Vec<Point3<f64>>,
    mask: Option<ChannelMask>,
}

impl CustomArray {
    /// An array with these transmitters and receivers (m). Fails on an empty list, a non-finite
    /// coordinate, or two transmitters (or two receivers) at one place (see
    /// [`validate_array`](crate::validate_array)).
    pub fn new(tx: Vec<Point3<f64>>, rx: Vec<Point3<f64>>) -> Result<Self> {
        let array = Self { tx, rx, mask: None };
        validate_array(&array)?;
        Ok(array)
    }

    /// The same array with dead channels; the mask must be `[n_tx, n_rx]`.
    pub fn with_mask(self, mask: ChannelMask) -> Result<Self> {
        let array = Self {
            mask: Some(mask),
            ..self
        };
        validate_array(&array)?;
        Ok(array)
    }

    /// A copy of any array keeping every `factor`-th TX and every `factor`-th RX (indices 0,
    /// factor, 2·factor, …), with the matching part of its channel mask. `factor = 2` on the
    /// QAR50 gives the 47 × 47 array of the quick preset.
    pub fn decimated(array: &dyn ArrayGeometry, factor: usize) -> Result<Self> {
        if factor == 0 {
            return Err(RadarError::config("array decimation", "factor 0"));
        }
        let keep = |n: usize| (0..n).step_by(factor);
        let tx: Vec<_> = keep(array.tx().len()).map(|i| array.tx()[i]).collect();
        let rx: Vec<_> = keep(array.rx().len()).map(|i| array.rx()[i]).collect();
        let decimated = Self::new(tx, rx)?;
        match array.channel_mask() {
            None => Ok(decimated),
            Some(mask) => {
                let (n_tx, n_rx) = (decimated.tx.len(), decimated.rx.len());
                let mut sub = ChannelMask::all_alive(n_tx, n_rx);
                for (t_new, t) in keep(array.tx().len()).enumerate() {
                    for (r_new, r) in keep(array.rx().len()).enumerate() {
                        if !mask.is_alive(t, r) {
                            sub = sub.with_dead_channel(t_new, r_new)?;
                        }
                    }
                }
                decimated.with_mask(sub)
            }
        }
    }
}

impl ArrayGeometry for CustomArray {
    fn tx(&self) -> &[Point3<f64>] {
        &self.tx
    }
    fn rx(&self) -> &[Point3<f64>] {
        &self.rx
    }
    fn channel_mask(&self) -> Option<&ChannelMask> {
        self.mask.as_ref()
    }
}

/// The QAR50-like cluster of docs/physics.md §1 (positions in m, array plane z = 0):
///
/// - 94 TX on the two vertical edges: x = ±70.5 mm, y = −66, −63, …, +66 mm (45 per edge), plus
///   one end element per edge end pulled out to x = ±72.0 mm at y = ±69 mm (47 per edge).
///   Order: the left edge (x < 0) bottom to top, then the right edge bottom to top.
/// - 94 RX on the two horizontal edges: y = ±70.5 mm, x = −69, −66, …, +69 mm (47 per edge).
///   Order: the bottom edge (y < 0) left to right, then the top edge left to right.
///
/// The 8 836 TX/RX midpoints form a 94 × 94 virtual aperture of 1.5 mm pitch over ±69.75 mm;
/// the four pulled-out transmitters shift their virtual rows by 0.75 mm in x.
#[derive(Debug, Clone, PartialEq)]
pub struct Qar50 {
    elements: CustomArray,
}

impl Qar50 {
    /// Element pitch along an edge (m).
    pub const PITCH_M: f64 = 0.003;
    /// |x| of the regular transmitters and |y| of the receivers (m).
    pub const EDGE_M: f64 = 0.0705;
    /// |x| of the four pulled-out end transmitters (m).
    pub const END_X_M: f64 = 0.072;
    /// |y| of the four pulled-out end transmitters (m).
    pub const END_Y_M: f64 = 0.069;
    /// Transmitters (and receivers) in all.
    pub const ELEMENTS: usize = 94;

    /// The cluster with every channel working.
    pub fn new() -> Self {
        let regular = |k: usize| (-66.0 + 3.0 * k as f64) * 1e-3; // 45 positions, −66..=66 mm
        let rx_pos = |k: usize| (-69.0 + 3.0 * k as f64) * 1e-3; // 47 positions, −69..=69 mm
        let tx = [-1.0, 1.0]
            .into_iter()
            .flat_map(|side: f64| {
                let end = |y: f64| Point3::new(side * Self::END_X_M, y, 0.0);
                std::iter::once(end(-Self::END_Y_M))
                    .chain((0..45).map(move |k| Point3::new(side * Self::EDGE_M, regular(k), 0.0)))
                    .chain(std::iter::once(end(Self::END_Y_M)))
            })
            .collect();
        let rx = [-1.0, 1.0]
            .into_iter()
            .flat_map(|side: f64| {
                (0..47).map(move |k| Point3::new(rx_pos(k), side * Self::EDGE_M, 0.0))
            })
            .collect();
        Self {
            elements: CustomArray { tx, rx, mask: None },
        }
    }

    /// The cluster with dead channels; the mask must be 94 × 94.
    pub fn with_mask(self, mask: ChannelMask) -> Result<Self> {
        Ok(Self {
            elements: self.elements.with_mask(mask)?,
        })
    }
}

impl Default for Qar50 {
    fn default() -> Self {
        Self::new()
    }
}

impl ArrayGeometry for Qar50 {
    fn tx(&self) -> &[Point3<f64>] {
        self.elements.tx()
    }
    fn rx(&self) -> &[Point3<f64>] {
        self.elements.rx()
    }
    fn channel_mask(&self) -> Option<&ChannelMask> {
        self.elements.channel_mask()
    }
}

/// A generic square boundary array centred on the origin in the plane z = 0: transmitters on
/// the two vertical edges (x = ±side/2), receivers on the two horizontal edges (y = ±side/2),
/// `elements_per_edge` of each per edge at `pitch`, centred on the edge. So there are
/// 2·`elements_per_edge` TX and as many RX. Order as for [`Qar50`]: left then right edge
/// bottom to top (TX), bottom then top edge left to right (RX).
#[derive(Debug, Clone, PartialEq)]
pub struct BoundaryArray {
    side_m: f64,
    pitch_m: f64,
    elements_per_edge: usize,
    elements: CustomArray,
}

impl BoundaryArray {
    /// A square of side `side_m` (m) with `elements_per_edge` elements at `pitch_m` (m) on each
    /// edge. Side and pitch must be finite and positive, there must be at least one element per
    /// edge, and the elements of an edge must fit strictly inside it: (n − 1)·pitch < side.
    pub fn new(side_m: f64, pitch_m: f64, elements_per_edge: usize) -> Result<Self> {
        if !(side_m.is_finite() && side_m > 0.0) {
            return Err(RadarError::config(
                "boundary array",
                format!("side {side_m} m must be finite and positive"),
            ));
        }
        if !(pitch_m.is_finite() && pitch_m > 0.0) {
            return Err(RadarError::config(
                "boundary array",
                format!("pitch {pitch_m} m must be finite and positive"),
            ));
        }
        if elements_per_edge == 0 {
            return Err(RadarError::config(
                "boundary array",
                "0 elements per edge: at least one is needed",
            ));
        }
        let span = (elements_per_edge - 1) as f64 * pitch_m;
        if span >= side_m {
            return Err(RadarError::config(
                "boundary array",
                format!(
                    "{elements_per_edge} elements at {pitch_m} m pitch span {span} m, which does \
                     not fit inside an edge of {side_m} m"
                ),
            ));
        }
        let half = side_m / 2.0;
        let along = |k: usize| (k as f64 - (elements_per_edge - 1) as f64 / 2.0) * pitch_m;
        let tx = [-half, half]
            .into_iter()
            .flat_map(|x| (0..elements_per_edge).map(move |k| Point3::new(x, along(k), 0.0)))
            .collect();
        let rx = [-half, half]
            .into_iter()
            .flat_map(|y| (0..elements_per_edge).map(move |k| Point3::new(along(k), y, 0.0)))
            .collect();
        Ok(Self {
            side_m,
            pitch_m,
            elements_per_edge,
            elements: CustomArray::new(tx, rx)?,
        })
    }

    /// The same array with dead channels; the mask must be `[n_tx, n_rx]`.
    pub fn with_mask(self, mask: ChannelMask) -> Result<Self> {
        Ok(Self {
            elements: self.elements.with_mask(mask)?,
            ..self
        })
    }

    /// Side of the square (m).
    pub fn side_m(&self) -> f64 {
        self.side_m
    }
    /// Element pitch along an edge (m).
    pub fn pitch_m(&self) -> f64 {
        self.pitch_m
    }
    /// Elements per edge.
    pub fn elements_per_edge(&self) -> usize {
        self.elements_per_edge
    }
}

impl ArrayGeometry for BoundaryArray {
    fn tx(&self) -> &[Point3<f64>] {
        self.elements.tx()
    }
    fn rx(&self) -> &[Point3<f64>] {
        self.elements.rx()
    }
    fn channel_mask(&self) -> Option<&ChannelMask> {
        self.elements.channel_mask()
    }
}
