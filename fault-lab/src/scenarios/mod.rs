//! Fault scenarios.
