//! The `[diagnosis]` section: the confidence gate, how often open incidents are diagnosed
//! again, where workloads' logs are when no cluster serves them, and where the runbooks and
//! postmortems are, and the optional LLM second opinion.

use std::{collections::BTreeMap, path::PathBuf};

use serde::Deserialize;

use super::{llm::LlmConfig, vector::VectorConfig};
use crate::domain::diagnose::DiagnosisPolicy;
use vigil_config_file::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiagnosisConfig {
    /// Below this confidence an incident goes to a human's review, not to remediation.
    pub gate: f64,
    /// An open incident is diagnosed again this often, as its evidence grows.
    pub refresh_secs: u64,
    /// Workload key → log file, for the `workload_logs` tool off Kubernetes.
    pub logs: BTreeMap<String, PathBuf>,
    /// The runbook and postmortem directory; by default `corpus/` beside the store, seeded
    /// with the starter runbooks.
    pub corpus: Option<PathBuf>,
    /// The LLM second opinion; none by default.
    pub llm: Option<LlmConfig>,
    /// Retrieval by embeddings in PostgreSQL (pgvector); none: tantivy in memory.
    pub vector: Option<VectorConfig>,
}

impl Default for DiagnosisConfig {
    fn default() -> Self {
        Self {
            gate: DiagnosisPolicy::default().gate,
            refresh_secs: 3,
            logs: BTreeMap::new(),
            corpus: None,
            llm: None,
            vector: None,
        }
    }
}

impl DiagnosisConfig {
    /// The corpus directory: configured, or `corpus/` beside the store file.
    pub fn corpus_dir(&self, store_path: &std::path::Path) -> PathBuf {
        self.corpus.clone().unwrap_or_else(|| {
            store_path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or_else(|| std::path::Path::new("."))
                .join("corpus")
        })
    }

    pub fn policy(&self) -> DiagnosisPolicy {
        DiagnosisPolicy {
            gate: self.gate,
            refresh_ns: i64::try_from(self.refresh_secs.saturating_mul(1_000_000_000))
                .unwrap_or(i64::MAX),
            ..DiagnosisPolicy::default()
        }
    }

    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        if !(self.gate > 0.0 && self.gate <= 1.0) {
            return Err(ConfigError::invalid(
                origin,
                "diagnosis.gate",
                "must be in (0, 1]: the confidence below which incidents go to review",
            ));
        }
        if self.refresh_secs == 0 {
            return Err(ConfigError::invalid(
                origin,
                "diagnosis.refresh_secs",
                "must be positive",
            ));
        }
        if let Some(llm) = &self.llm {
            llm.validate(origin)?;
        }
        if let Some(vector) = &self.vector {
            vector.validate(origin)?;
        }
        Ok(())
    }
}
