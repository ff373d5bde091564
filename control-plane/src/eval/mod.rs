//! Evaluation against public labelled data (not used by the running control plane).

pub mod nab;
pub mod rca;
pub mod synthetic;
