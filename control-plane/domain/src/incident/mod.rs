//! The incident: the shared core every capability writes to and reads from — its model, the
//! typed details and evidence each kind carries, the stages that produced it, its store port,
//! and the store wrapper that reports every change.

pub mod details;
pub mod evidence;
pub mod kind;
pub mod model;
pub mod observed;
pub mod ports;
pub mod stage;

pub use details::Details;
pub use kind::{IncidentId, IncidentKind, IncidentStatus, Severity};
pub use model::{Attributes, EvidenceRef, Finding, Incident};
pub use stage::Stage;
