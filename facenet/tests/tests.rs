//! Integration tests of `facenet` (one test binary per crate).

mod checkpoints;
mod configs;
mod gradients;
mod reliability;
mod shapes;
mod support;
mod training;
