//! The `[diagnosis.vector]` section: retrieval by embeddings in PostgreSQL with pgvector,
//! for corpora too large for the in-memory full-text index. Absent, tantivy indexes the
//! corpus directory.

use std::time::Duration;

use serde::Deserialize;

use vigil_config_file::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorConfig {
    /// `postgres://user@host:port/db` (or `host=… user=…`); with a password in it, prefer
    /// `postgres_url_env`.
    #[serde(default)]
    pub postgres_url: Option<String>,
    /// The environment variable holding the connection string.
    #[serde(default)]
    pub postgres_url_env: Option<String>,
    /// An OpenAI-compatible API's base (`POST {url}/embeddings`).
    #[serde(default = "defaults::embeddings_url")]
    pub embeddings_url: String,
    pub model: String,
    /// The environment variable holding the embeddings API key; none for a local endpoint.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// The model's vector size (text-embedding-3-small: 1536).
    pub dimensions: usize,
    /// Hits less similar (cosine) than this are left out.
    #[serde(default = "defaults::min_similarity")]
    pub min_similarity: f64,
    #[serde(default = "defaults::timeout_secs")]
    pub timeout_secs: u64,
}

mod defaults {
    pub fn embeddings_url() -> String {
        "https://api.openai.com/v1".into()
    }
    pub fn min_similarity() -> f64 {
        0.25
    }
    pub fn timeout_secs() -> u64 {
        30
    }
}

/// pgvector's HNSW index takes vectors of at most this many dimensions.
const MAX_DIMENSIONS: usize = 2_000;

impl VectorConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |field, reason: &str| Err(ConfigError::invalid(origin, field, reason));
        if self.postgres_url.is_some() == self.postgres_url_env.is_some() {
            return bad(
                "diagnosis.vector.postgres_url",
                "set exactly one of postgres_url and postgres_url_env",
            );
        }
        if !(self.embeddings_url.starts_with("http://")
            || self.embeddings_url.starts_with("https://"))
        {
            return bad(
                "diagnosis.vector.embeddings_url",
                "must be an http:// or https:// URL, the API's base (e.g. https://api.openai.com/v1)",
            );
        }
        if self.model.trim().is_empty() {
            return bad("diagnosis.vector.model", "must name the embedding model");
        }
        if !(1..=MAX_DIMENSIONS).contains(&self.dimensions) {
            return bad(
                "diagnosis.vector.dimensions",
                "must be the model's vector size, 1 to 2000 (pgvector's HNSW limit)",
            );
        }
        if !(-1.0..=1.0).contains(&self.min_similarity) {
            return bad(
                "diagnosis.vector.min_similarity",
                "must be a cosine similarity in [-1, 1]",
            );
        }
        if self.timeout_secs == 0 {
            return bad("diagnosis.vector.timeout_secs", "must be positive");
        }
        Ok(())
    }
}
