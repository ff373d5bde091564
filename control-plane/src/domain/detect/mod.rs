//! Anomaly detectors on metric series.

pub mod likelihood;
pub mod robust;
