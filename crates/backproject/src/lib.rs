//! # backproject
//!
//! Back-projection imaging of near-field MIMO radar signals (PHYSICS.md §4).
