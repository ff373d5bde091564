//! Vigil's fault lab: a real microservice testbed on one machine, guarded fault scenarios
//! with a TTL, and the harness that measures what Vigil detects, diagnoses and fixes.
//!
//! Everything the lab creates is named `vigil-lab-…`; the guard in [`names`] refuses any
//! other target before a fault touches it.

pub mod delay;
pub mod error;
pub mod eval;
pub mod names;
pub mod redis;
pub mod scenarios;
pub mod state;
pub mod sys;
pub mod testbed;

pub use error::LabError;
