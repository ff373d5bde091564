//! An alert in the domain's terms, whatever system raised it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::incident::IncidentId;

/// Who raised an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertSource {
    /// A Prometheus alerting rule, through Alertmanager's webhook.
    Alertmanager,
    /// An IncidentReport created in the cluster by a person or a tool.
    IncidentReport,
}

impl AlertSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alertmanager => "alertmanager",
            Self::IncidentReport => "incident_report",
        }
    }
}

/// One alert as its source reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalAlert {
    pub source: AlertSource,
    /// The alert's identity across notifications (Alertmanager's fingerprint, a report's uid):
    /// how a resolution finds what it resolves.
    pub fingerprint: String,
    pub firing: bool,
    /// Labels name the alert (`alertname`), its workload (`service`, `pod`, …), its node
    /// (`node`, `instance`) and `severity`.
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_unix_ns: i64,
    /// As the source wrote them (RFC 3339), kept for the record.
    pub starts_at: String,
    pub ends_at: String,
    pub generator_url: String,
}

/// What one delivery of alerts did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AlertOutcome {
    pub opened: Vec<IncidentId>,
    pub updated: Vec<IncidentId>,
    pub resolved: Vec<IncidentId>,
}
