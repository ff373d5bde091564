//! Anomaly scores that are comparable across metrics and services.
//!
//! A raw σ count is not: a metric that was flat before a fault (σ ≈ 0) turns the smallest
//! move into 10⁴–10⁹ σ and outranks the service whose latency and errors really changed.
//! Here each metric is judged on the scale where its kind's noise is even (`kind`), against
//! a spread that never falls below its own resolution or what its peers usually show
//! (`scale`), as a bounded tail probability of a sustained move (`evidence`); a service adds
//! up the evidence of its strongest metrics (`combine`).

pub mod combine;
pub mod evidence;
pub mod kind;
pub mod scale;

pub use combine::{combine, CombineConfig, ServiceEvidence};
pub use evidence::{judge, Before, EvidenceConfig, MetricEvidence};
pub use kind::MetricKind;
pub use scale::{PeerFloors, Reference};
