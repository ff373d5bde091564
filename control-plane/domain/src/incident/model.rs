//! Incidents: what an operator is told about, and the findings that open and update them.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{details::Details, stage::Stage};
use crate::entity::EntityId;

/// An incident's number, as the store assigned it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct IncidentId(pub i64);

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    OomKill,
    CrashLoop,
    /// Correlated metric anomalies (baseline thresholds and isolation forests), localized to
    /// a ranked root cause.
    ServiceAnomaly,
    /// Raised elsewhere (Alertmanager, an IncidentReport), enriched with Vigil's evidence.
    Alert,
}

impl IncidentKind {
    pub const ALL: [Self; 4] = [
        Self::OomKill,
        Self::CrashLoop,
        Self::ServiceAnomaly,
        Self::Alert,
    ];

    /// Kinds a kernel-event rule opens and owns: quiet-resolved, and anomalies next to them
    /// join them.
    pub fn is_kernel_rule(self) -> bool {
        matches!(self, Self::OomKill | Self::CrashLoop)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OomKill => "oom_kill",
            Self::CrashLoop => "crash_loop",
            Self::ServiceAnomaly => "service_anomaly",
            Self::Alert => "alert",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
        [Self::Open, Self::Resolved]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: [Self; 2] = [Self::Warning, Self::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A reference to the kernel event that is evidence for an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRef {
    pub node: String,
    pub seq: u64,
}

/// An incident's structured content: what its kind carries, and the stages that produced it.
/// Serialised as one object (the details' fields and `stages`), as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attributes {
    #[serde(flatten)]
    pub details: Details,
    pub stages: Vec<Stage>,
}

/// What a rule, detection or an alert observed: one piece of evidence for an incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub severity: Severity,
    pub node: String,
    pub workload_key: EntityId,
    pub title: String,
    pub summary: String,
    pub time_unix_ns: i64,
    pub evidence: Vec<EvidenceRef>,
    pub details: Details,
    /// The pipeline that produced it, in order (detect, correlate, localize, …).
    pub stages: Vec<Stage>,
}

impl Finding {
    pub fn kind(&self) -> IncidentKind {
        self.details.kind()
    }

    pub fn with_stages(mut self, stages: impl Into<Vec<Stage>>) -> Self {
        self.stages = stages.into();
        self
    }

    /// Detection latency: how long its `detect` stage took, from the first evidence to the
    /// finding.
    pub fn detection_seconds(&self) -> Option<f64> {
        self.stages
            .iter()
            .find(|s| s.stage == "detect")
            .map(|d| (d.end_unix_ns - d.start_unix_ns) as f64 / 1e9)
    }

    /// Its content as an incident stores it.
    pub fn attributes(&self) -> Attributes {
        Attributes {
            details: self.details.clone(),
            stages: self.stages.clone(),
        }
    }
}

/// An incident; `A` is its attributes (a store reading a row has the rest before them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident<A = Attributes> {
    pub id: IncidentId,
    pub kind: IncidentKind,
    pub status: IncidentStatus,
    pub severity: Severity,
    pub node: String,
    pub workload_key: EntityId,
    pub title: String,
    pub summary: String,
    pub opened_unix_ns: i64,
    pub updated_unix_ns: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_unix_ns: Option<i64>,
    /// Findings merged into this incident (the first opened it).
    pub occurrences: u64,
    pub attributes: A,
}

impl Incident<()> {
    pub fn with_attributes(self, attributes: Attributes) -> Incident {
        Incident {
            id: self.id,
            kind: self.kind,
            status: self.status,
            severity: self.severity,
            node: self.node,
            workload_key: self.workload_key,
            title: self.title,
            summary: self.summary,
            opened_unix_ns: self.opened_unix_ns,
            updated_unix_ns: self.updated_unix_ns,
            resolved_unix_ns: self.resolved_unix_ns,
            occurrences: self.occurrences,
            attributes,
        }
    }
}

impl Incident {
    pub fn stages(&self) -> &[Stage] {
        &self.attributes.stages
    }

    pub fn details(&self) -> &Details {
        &self.attributes.details
    }
}
