//! Anomaly detectors on metric series.

pub mod baseline;
pub mod conformal;
pub mod correlate;
pub mod features;
pub mod forest;
pub mod likelihood;
pub mod robust;
pub mod rootcause;
pub mod univariate;
