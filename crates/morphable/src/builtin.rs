//! The built-in face model (being written).
