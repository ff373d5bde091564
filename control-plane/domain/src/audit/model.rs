//! What the audit log holds: records chained by their hashes, and signed checkpoints of the
//! chain's length and head.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::canonical;
use crate::incident::IncidentId;

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Which step of the loop a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// What the incident was diagnosed as, from which evidence.
    Diagnosis,
    /// An operator's verdict on a diagnosis.
    Feedback,
    /// A remediation decision, with every policy rule evaluated.
    Decision,
    Approval,
    /// An action's request and the runtime's response.
    Action,
    Verification,
    Rollback,
    /// An API token issued or revoked.
    Access,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Diagnosis => "diagnosis",
            Self::Feedback => "feedback",
            Self::Decision => "decision",
            Self::Approval => "approval",
            Self::Action => "action",
            Self::Verification => "verification",
            Self::Rollback => "rollback",
            Self::Access => "access",
        }
    }
}

/// What a caller appends; the log adds the sequence number, the time and the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub kind: AuditKind,
    pub incident: Option<IncidentId>,
    /// Who did it: `vigil` for Vigil's own steps, an operator's identity otherwise.
    pub actor: String,
    /// One line for people.
    pub summary: String,
    /// The step's details, as they were.
    pub body: Value,
}

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// 1, 2, 3, … with no gaps.
    pub seq: u64,
    pub at_unix_ns: i64,
    pub kind: AuditKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentId>,
    pub actor: String,
    pub summary: String,
    pub body: Value,
    /// The hash of the record before (`GENESIS` for the first).
    pub prev_hash: String,
    /// SHA-256 of this record's canonical JSON without this field, in hex.
    pub hash: String,
}

/// SHA-256 in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    super::hex::encode(&Sha256::digest(bytes))
}

impl AuditRecord {
    /// The record as `entry` after `prev` (its seq and hash), hashed.
    pub fn next(entry: AuditEntry, seq: u64, prev_hash: &str, at_unix_ns: i64) -> Self {
        let mut record = Self {
            seq,
            at_unix_ns,
            kind: entry.kind,
            incident: entry.incident,
            actor: entry.actor,
            summary: entry.summary,
            body: entry.body,
            prev_hash: prev_hash.to_string(),
            hash: String::new(),
        };
        record.hash = record.content_hash();
        record
    }

    /// The hash of what the record says now (equal to `hash` unless it was changed).
    pub fn content_hash(&self) -> String {
        let content = json!({
            "seq": self.seq,
            "at_unix_ns": self.at_unix_ns,
            "kind": self.kind,
            "incident": self.incident,
            "actor": self.actor,
            "summary": self.summary,
            "body": self.body,
            "prev_hash": self.prev_hash,
        });
        sha256_hex(canonical::to_string(&content).as_bytes())
    }
}

/// A signed statement that the log had `size` records ending in `head_hash`. Exported and
/// kept elsewhere, it shows a tail cut off after it was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub size: u64,
    pub head_hash: String,
    pub at_unix_ns: i64,
    /// The Ed25519 public key that signed it, hex.
    pub public_key: String,
    /// The Ed25519 signature over `message()`, hex.
    pub signature: String,
}

impl Checkpoint {
    /// The bytes signed: the checkpoint's canonical JSON without the signature.
    pub fn message(size: u64, head_hash: &str, at_unix_ns: i64, public_key: &str) -> Vec<u8> {
        canonical::to_string(&json!({
            "size": size,
            "head_hash": head_hash,
            "at_unix_ns": at_unix_ns,
            "public_key": public_key,
        }))
        .into_bytes()
    }
}
