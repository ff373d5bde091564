//! Alertmanager's webhook (version 4) translated into the domain's `ExternalAlert`s. The whole
//! payload is checked before any alert reaches the domain, so a bad one is refused whole.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::domain::alerts::{AlertSource, ExternalAlert};

/// Alertmanager's webhook body, version 4.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    #[serde(default)]
    pub receiver: String,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: AlertStatus,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    pub starts_at: String,
    #[serde(default)]
    pub ends_at: String,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("unsupported Alertmanager webhook version {0:?}: Vigil reads version \"4\" (Alertmanager ≥ 0.6)")]
    Version(String),
    #[error("alert {index} has an empty fingerprint: Alertmanager always sets one, so this is not its payload")]
    NoFingerprint { index: usize },
    #[error("alert {fingerprint} has startsAt {value:?}, not an RFC 3339 time")]
    BadTime { fingerprint: String, value: String },
}

/// RFC 3339 (`2026-11-25T03:14:15.123Z`, offsets allowed) to Unix nanoseconds.
pub fn rfc3339_ns(s: &str) -> Option<i64> {
    let t: jiff::Timestamp = s.parse().ok()?;
    i64::try_from(t.as_nanosecond()).ok()
}

impl WebhookPayload {
    /// The payload's alerts in the domain's terms, or why the payload is not Alertmanager's.
    pub fn alerts(&self) -> Result<Vec<ExternalAlert>, WebhookError> {
        if self.version != "4" {
            return Err(WebhookError::Version(self.version.clone()));
        }
        self.alerts
            .iter()
            .enumerate()
            .map(|(index, a)| {
                if a.fingerprint.is_empty() {
                    return Err(WebhookError::NoFingerprint { index });
                }
                let starts_unix_ns =
                    rfc3339_ns(&a.starts_at).ok_or_else(|| WebhookError::BadTime {
                        fingerprint: a.fingerprint.clone(),
                        value: a.starts_at.clone(),
                    })?;
                Ok(ExternalAlert {
                    source: AlertSource::Alertmanager,
                    fingerprint: a.fingerprint.clone(),
                    firing: a.status == AlertStatus::Firing,
                    labels: a.labels.clone(),
                    annotations: a.annotations.clone(),
                    starts_unix_ns,
                    starts_at: a.starts_at.clone(),
                    ends_at: a.ends_at.clone(),
                    generator_url: a.generator_url.clone(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        assert_eq!(rfc3339_ns("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
        assert_eq!(
            rfc3339_ns("1970-01-01T01:00:00+01:00"),
            Some(0),
            "offsets are honoured"
        );
        assert_eq!(rfc3339_ns("yesterday"), None);
    }
}
