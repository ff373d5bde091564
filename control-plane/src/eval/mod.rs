//! Evaluation against public labelled data (not used by the running control plane).

pub mod nab;
pub mod rca;

/// The synthetic fleet lives with the domain (its unit tests use it); re-exported for the
/// benchmark and the pipeline tests.
pub use vigil_domain::synthetic;
