//! Tests: builtin.
