//! # facenet
//!
//! Encoders and a learned renderer in candle. It maps images to vectors and back and knows
//! nothing of radar or faces.
