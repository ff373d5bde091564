//! Incidents: what an operator is told about.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    OomKill,
    CrashLoop,
    /// Correlated metric anomalies (tiers 1 and 2), localized to a ranked root cause.
    ServiceAnomaly,
}

impl IncidentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OomKill => "oom_kill",
            Self::CrashLoop => "crash_loop",
            Self::ServiceAnomaly => "service_anomaly",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "oom_kill" => Some(Self::OomKill),
            "crash_loop" => Some(Self::CrashLoop),
            "service_anomaly" => Some(Self::ServiceAnomaly),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    Open,
    Resolved,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(Self::Open),
            "resolved" => Some(Self::Resolved),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "warning" => Some(Self::Warning),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }
}

/// A reference to the event that is evidence for an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceRef {
    pub node: String,
    pub seq: u64,
}

/// What a rule observed: one piece of evidence for an incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub kind: IncidentKind,
    pub severity: Severity,
    pub node: String,
    pub workload_key: String,
    pub title: String,
    pub summary: String,
    pub time_unix_ns: i64,
    pub evidence: Vec<EvidenceRef>,
    /// Structured facts (victim pid, signal, restart count, ...).
    pub attributes: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    pub id: i64,
    pub kind: IncidentKind,
    pub status: IncidentStatus,
    pub severity: Severity,
    pub node: String,
    pub workload_key: String,
    pub title: String,
    pub summary: String,
    pub opened_unix_ns: i64,
    pub updated_unix_ns: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_unix_ns: Option<i64>,
    /// Findings merged into this incident (the first opened it).
    pub occurrences: u64,
    pub attributes: serde_json::Value,
}
