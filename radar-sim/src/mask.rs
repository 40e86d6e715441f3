//! Dead channels.

use crate::{RadarError, Result};

/// Which channels (TX/RX pairs) of an array work, as an `n_tx × n_rx` table. A dead element
/// kills its whole row (TX) or column (RX); a single broken pair can be marked too.
///
/// Attach a mask to an array with `with_mask` ([`CustomArray::with_mask`](crate::CustomArray::with_mask)
/// and friends); simulations then write zeros (no signal, no noise) to dead channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelMask {
    n_tx: usize,
    n_rx: usize,
    /// Row-major `[tx, rx]`: `true` where the channel works.
    alive: Vec<bool>,
}

impl ChannelMask {
    /// Every channel of an `n_tx × n_rx` array working.
    pub fn all_alive(n_tx: usize, n_rx: usize) -> Self {
        Self {
            n_tx,
            n_rx,
            alive: vec![true; n_tx * n_rx],
        }
    }

    /// `[n_tx, n_rx]`.
    pub fn shape(&self) -> (usize, usize) {
        (self.n_tx, self.n_rx)
    }

    /// Marks transmitter `tx` dead (every channel it drives).
    pub fn with_dead_tx(mut self, tx: usize) -> Result<Self> {
        self.check("TX", tx, self.n_tx)?;
        self.alive[tx * self.n_rx..(tx + 1) * self.n_rx].fill(false);
        Ok(self)
    }

    /// Marks receiver `rx` dead (every channel it hears).
    pub fn with_dead_rx(mut self, rx: usize) -> Result<Self> {
        self.check("RX", rx, self.n_rx)?;
        for t in 0..self.n_tx {
            self.alive[t * self.n_rx + rx] = false;
        }
        Ok(self)
    }

    /// Marks the single channel `(tx, rx)` dead.
    pub fn with_dead_channel(mut self, tx: usize, rx: usize) -> Result<Self> {
        self.check("TX", tx, self.n_tx)?;
        self.check("RX", rx, self.n_rx)?;
        self.alive[tx * self.n_rx + rx] = false;
        Ok(self)
    }

    /// Whether channel `(tx, rx)` works; `false` outside the table.
    pub fn is_alive(&self, tx: usize, rx: usize) -> bool {
        tx < self.n_tx && rx < self.n_rx && self.alive[tx * self.n_rx + rx]
    }

    /// The working channels of transmitter `tx`, one flag per receiver (empty outside the table).
    pub fn row(&self, tx: usize) -> &[bool] {
        if tx < self.n_tx {
            &self.alive[tx * self.n_rx..(tx + 1) * self.n_rx]
        } else {
            &[]
        }
    }

    /// Number of working channels.
    pub fn n_alive(&self) -> usize {
        self.alive.iter().filter(|&&a| a).count()
    }

    fn check(&self, kind: &str, index: usize, count: usize) -> Result<()> {
        if index < count {
            Ok(())
        } else {
            Err(RadarError::config(
                "channel mask",
                format!("{kind} index {index} is out of range: the array has {count}"),
            ))
        }
    }
}
