//! Checking a log: every record hashes to its hash, links to the one before, and follows it in
//! sequence; every checkpoint is signed by the trusted key and matches the log at its size; the
//! log is no shorter than any checkpoint says it was. Whatever was edited, reordered or cut off
//! is named by its sequence number.

use ed25519_dalek::{Signature, VerifyingKey};
use serde::Serialize;

use super::{
    hex,
    model::{AuditRecord, Checkpoint, GENESIS},
};

/// One way the log is not what was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Tamper {
    /// Record `seq` says something other than what was hashed when it was written.
    Edited { seq: u64 },
    /// Record `seq` does not follow the record before it (moved, or one removed before it).
    Unlinked { seq: u64 },
    /// The sequence jumps: `expected` was next, `found` came.
    OutOfSequence { expected: u64, found: u64 },
    /// A checkpoint's signature does not verify with the trusted key.
    BadSignature { size: u64 },
    /// The log at a checkpoint's size does not end in the hash the checkpoint signed.
    CheckpointMismatch { size: u64 },
    /// A signed checkpoint counted more records than the log has: its tail was cut off.
    Truncated { checkpoint_size: u64, log_size: u64 },
}

impl std::fmt::Display for Tamper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Edited { seq } => write!(f, "record {seq} was edited: its content no longer hashes to its hash"),
            Self::Unlinked { seq } => write!(f, "record {seq} does not follow the record before it (reordered, or one before it removed)"),
            Self::OutOfSequence { expected, found } => write!(f, "record {expected} is missing or out of place: record {found} came instead"),
            Self::BadSignature { size } => write!(f, "the checkpoint at {size} records is not signed by the trusted key"),
            Self::CheckpointMismatch { size } => write!(f, "the log's first {size} records do not end in the hash their checkpoint signed"),
            Self::Truncated { checkpoint_size, log_size } => write!(f, "the log has {log_size} records but a signed checkpoint counted {checkpoint_size}: its tail was removed"),
        }
    }
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub records: u64,
    pub checkpoints: usize,
    /// The largest checkpoint that held: records up to it are signed.
    pub signed_through: u64,
    pub problems: Vec<Tamper>,
}

impl Verification {
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Parses a hex Ed25519 public key.
pub fn public_key(hex: &str) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(&hex::decode::<32>(hex)?).ok()
}

fn signed_by(c: &Checkpoint, key: &VerifyingKey) -> bool {
    let Some(sig) = hex::decode::<64>(&c.signature) else {
        return false;
    };
    let message = Checkpoint::message(c.size, &c.head_hash, c.at_unix_ns, &c.public_key);
    // The key named in the checkpoint must be the trusted one, and must have signed it.
    public_key(&c.public_key).is_some_and(|k| k == *key)
        && key
            .verify_strict(&message, &Signature::from_bytes(&sig))
            .is_ok()
}

/// Checks `records` (as stored, in order) against `checkpoints`, trusting `key`.
pub fn verify(
    records: &[AuditRecord],
    checkpoints: &[Checkpoint],
    key: &VerifyingKey,
) -> Verification {
    let mut problems = Vec::new();
    // The chain: hash over content, link to the one before, no gap.
    let mut prev_hash = GENESIS.to_string();
    let mut hash_at: Vec<String> = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let expected = i as u64 + 1;
        if r.seq != expected {
            problems.push(Tamper::OutOfSequence {
                expected,
                found: r.seq,
            });
        }
        if r.content_hash() != r.hash {
            problems.push(Tamper::Edited { seq: r.seq });
        }
        if r.prev_hash != prev_hash {
            problems.push(Tamper::Unlinked { seq: r.seq });
        }
        prev_hash = r.hash.clone();
        hash_at.push(r.hash.clone());
    }
    let log_size = records.len() as u64;
    let mut signed_through = 0;
    for c in checkpoints {
        if !signed_by(c, key) {
            problems.push(Tamper::BadSignature { size: c.size });
            continue;
        }
        if c.size > log_size {
            problems.push(Tamper::Truncated {
                checkpoint_size: c.size,
                log_size,
            });
            continue;
        }
        let at = usize::try_from(c.size).ok().and_then(|s| s.checked_sub(1));
        let head = at
            .and_then(|i| hash_at.get(i))
            .map_or(GENESIS, String::as_str);
        if head != c.head_hash {
            problems.push(Tamper::CheckpointMismatch { size: c.size });
            continue;
        }
        signed_through = signed_through.max(c.size);
    }
    Verification {
        records: log_size,
        checkpoints: checkpoints.len(),
        signed_through,
        problems,
    }
}
