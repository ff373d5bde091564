//! Anomaly detectors on metric series.

pub mod conformal;
pub mod likelihood;
pub mod robust;
pub mod univariate;
