//! `[audit]`: where the key that signs the audit log's checkpoints lives, and how often a
//! checkpoint is signed.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::audit::CheckpointPolicy;
use vigil_config_file::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The Ed25519 signing key (created on first start, mode 0600); its public half is written
    /// beside it with `.pub` appended. Default: `audit-ed25519.key` beside the store file.
    pub key_path: Option<PathBuf>,
    /// A checkpoint after this many records…
    pub checkpoint_every_records: u64,
    /// …or after this long with records unsigned, whichever comes first.
    pub checkpoint_every_secs: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        let d = CheckpointPolicy::default();
        Self {
            key_path: None,
            checkpoint_every_records: d.every_records,
            checkpoint_every_secs: u64::try_from(d.every_ns / 1_000_000_000).unwrap_or(60),
        }
    }
}

impl AuditConfig {
    pub fn key_path(&self, store_path: &Path) -> PathBuf {
        self.key_path.clone().unwrap_or_else(|| {
            store_path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or_else(|| Path::new("."))
                .join("audit-ed25519.key")
        })
    }

    pub fn policy(&self) -> CheckpointPolicy {
        CheckpointPolicy {
            every_records: self.checkpoint_every_records,
            every_ns: i64::try_from(self.checkpoint_every_secs)
                .unwrap_or(i64::MAX / 1_000_000_000)
                .saturating_mul(1_000_000_000),
        }
    }

    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        if self.checkpoint_every_records == 0 {
            return Err(ConfigError::invalid(
                origin,
                "audit.checkpoint_every_records",
                "must be at least 1",
            ));
        }
        if self.checkpoint_every_secs == 0 {
            return Err(ConfigError::invalid(
                origin,
                "audit.checkpoint_every_secs",
                "must be positive",
            ));
        }
        Ok(())
    }
}
