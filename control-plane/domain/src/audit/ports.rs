//! Where the audit log is kept, and what signs its checkpoints.

use super::model::{AuditRecord, Checkpoint};
use crate::store::StoreError;

/// Append-only storage of records and checkpoints.
pub trait AuditStore: Send + Sync {
    /// Appends `record`; fails if its `seq` is taken (two writers never both succeed).
    fn append_record(&self, record: &AuditRecord) -> Result<(), StoreError>;
    /// Records with `seq > after_seq`, in order, at most `limit`.
    fn records(&self, after_seq: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError>;
    /// The record with the highest `seq`.
    fn last_record(&self) -> Result<Option<AuditRecord>, StoreError>;
    fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError>;
    /// Every checkpoint, by size.
    fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError>;
}

/// An Ed25519 key that signs checkpoints; the private half never leaves the adapter.
pub trait Signer: Send + Sync {
    fn public_key(&self) -> [u8; 32];
    fn sign(&self, message: &[u8]) -> [u8; 64];
}
