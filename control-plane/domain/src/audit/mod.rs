//! The audit log: every step Vigil takes on an incident (diagnosis, decision with each policy
//! rule, approval, action, verification, rollback) and every operator's word on it, appended as
//! canonical JSON records chained by SHA-256, with Ed25519-signed checkpoints of the chain's
//! size and head. An edited, reordered or removed record, or a tail cut off after a checkpoint,
//! is found by `verify`.

pub mod canonical;
pub mod hex;
pub mod model;
pub mod ports;
pub mod service;
pub mod trail;
pub mod verify;

#[cfg(test)]
mod tests;

pub use model::{AuditEntry, AuditKind, AuditRecord, Checkpoint};
pub use service::{AuditLog, AuditParts, CheckpointPolicy};
pub use trail::AuditTrail;
pub use verify::{verify, Tamper, Verification};
