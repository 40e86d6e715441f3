//! Tests: statismo.
