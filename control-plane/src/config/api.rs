//! `[api]`: what one request to the REST API, MCP or the console may cost.

use serde::Deserialize;
use vigil_config_file::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Largest request body (413 beyond it).
    pub max_body_bytes: usize,
    /// Largest total of a request's header names and values (431 beyond it).
    pub max_header_bytes: usize,
    /// A request not answered within this is cut off (408): a client that sends its body
    /// slowly holds a connection no longer. Live streams (the console's, MCP's) are exempt.
    pub request_timeout_secs: u64,
    /// Requests per second each token may make on average (429 beyond it, with
    /// `Retry-After`), and how many it may make at once after a quiet spell.
    pub requests_per_second: f64,
    pub burst: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_header_bytes: 16 << 10,
            request_timeout_secs: 30,
            requests_per_second: 100.0,
            burst: 500,
        }
    }
}

impl ApiConfig {
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |field, reason: &str| Err(ConfigError::invalid(origin, field, reason));
        if self.max_body_bytes == 0 {
            return bad(
                "api.max_body_bytes",
                "must be more than 0 (1048576 is the default)",
            );
        }
        if self.max_header_bytes < 1024 {
            return bad(
                "api.max_header_bytes",
                "must be at least 1024 (a browser's headers alone take several hundred bytes)",
            );
        }
        if self.request_timeout_secs == 0 {
            return bad(
                "api.request_timeout_secs",
                "must be more than 0 (30 is the default)",
            );
        }
        if !(self.requests_per_second.is_finite() && self.requests_per_second > 0.0) {
            return bad(
                "api.requests_per_second",
                "must be a number above 0 (100 is the default)",
            );
        }
        if self.burst == 0 {
            return bad("api.burst", "must be at least 1 (500 is the default)");
        }
        Ok(())
    }
}
