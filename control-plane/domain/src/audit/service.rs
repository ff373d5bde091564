//! Appending to the audit log: one writer at a time extends the chain, and a checkpoint is
//! signed every `every_records` records or `every_ns` of time with records unsigned, whichever
//! comes first.

use std::sync::{Arc, Mutex};

use tracing::warn;

use super::{
    hex,
    model::{AuditEntry, AuditRecord, Checkpoint, GENESIS},
    ports::{AuditStore, Signer},
};
use crate::{clock::Clock, store::StoreError};

/// When checkpoints are signed.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    pub every_records: u64,
    pub every_ns: i64,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            every_records: 100,
            every_ns: 60_000_000_000,
        }
    }
}

pub struct AuditParts {
    pub store: Arc<dyn AuditStore>,
    pub signer: Arc<dyn Signer>,
    pub clock: Arc<dyn Clock>,
    pub policy: CheckpointPolicy,
}

/// The chain's end as this writer knows it.
struct Head {
    seq: u64,
    hash: String,
    /// The size and time of the last checkpoint.
    signed: u64,
    signed_at: i64,
}

pub struct AuditLog {
    parts: AuditParts,
    head: Mutex<Head>,
}

impl AuditLog {
    /// Opens the log where the store left it.
    pub fn open(parts: AuditParts) -> Result<Self, StoreError> {
        let last = parts.store.last_record()?;
        let latest = parts
            .store
            .checkpoints()?
            .into_iter()
            .max_by_key(|c| c.size);
        let head = Head {
            seq: last.as_ref().map_or(0, |r| r.seq),
            hash: last.map_or_else(|| GENESIS.to_string(), |r| r.hash),
            signed: latest.as_ref().map_or(0, |c| c.size),
            signed_at: latest.map_or_else(|| parts.clock.now_unix_ns(), |c| c.at_unix_ns),
        };
        Ok(Self {
            parts,
            head: Mutex::new(head),
        })
    }

    /// The public key that signs checkpoints, hex.
    pub fn public_key(&self) -> String {
        hex::encode(&self.parts.signer.public_key())
    }

    /// Appends `entry` as the next record; signs a checkpoint when one is due.
    pub fn append(&self, entry: AuditEntry) -> Result<AuditRecord, StoreError> {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.parts.clock.now_unix_ns();
        let record = AuditRecord::next(entry, head.seq + 1, &head.hash, now);
        self.parts.store.append_record(&record)?;
        head.seq = record.seq;
        head.hash = record.hash.clone();
        if head.seq - head.signed >= self.parts.policy.every_records {
            self.sign(&mut head, now)?;
        }
        Ok(record)
    }

    /// Signs a checkpoint if records are unsigned and the last checkpoint is older than the
    /// policy's time: an idle log's tail is sealed too. Called periodically.
    pub fn checkpoint_if_due(&self) -> Result<Option<Checkpoint>, StoreError> {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.parts.clock.now_unix_ns();
        if head.seq > head.signed && now - head.signed_at >= self.parts.policy.every_ns {
            return self.sign(&mut head, now).map(Some);
        }
        Ok(None)
    }

    /// Signs the current head now (on shutdown, so nothing written is left unsigned).
    pub fn checkpoint_now(&self) -> Result<Option<Checkpoint>, StoreError> {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        if head.seq == head.signed {
            return Ok(None);
        }
        let now = self.parts.clock.now_unix_ns();
        self.sign(&mut head, now).map(Some)
    }

    fn sign(&self, head: &mut Head, now: i64) -> Result<Checkpoint, StoreError> {
        let public_key = self.public_key();
        let message = Checkpoint::message(head.seq, &head.hash, now, &public_key);
        let checkpoint = Checkpoint {
            size: head.seq,
            head_hash: head.hash.clone(),
            at_unix_ns: now,
            public_key,
            signature: hex::encode(&self.parts.signer.sign(&message)),
        };
        if let Err(e) = self.parts.store.save_checkpoint(&checkpoint) {
            // The records stand; the next append or tick tries again.
            warn!(error = %e, size = head.seq, "signing an audit checkpoint failed");
            return Err(e);
        }
        head.signed = head.seq;
        head.signed_at = now;
        Ok(checkpoint)
    }

    /// The records about one incident among the newest `scan` (what an incident's page shows).
    pub fn trail(
        &self,
        incident: crate::incident::IncidentId,
        scan: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let last = self.parts.store.last_record()?.map_or(0, |r| r.seq);
        let after = last.saturating_sub(scan as u64);
        Ok(self
            .parts
            .store
            .records(after, scan)?
            .into_iter()
            .filter(|r| r.incident == Some(incident))
            .collect())
    }

    /// Records after `after_seq`, and every checkpoint.
    pub fn read(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<(Vec<AuditRecord>, Vec<Checkpoint>), StoreError> {
        Ok((
            self.parts.store.records(after_seq, limit)?,
            self.parts.store.checkpoints()?,
        ))
    }
}
