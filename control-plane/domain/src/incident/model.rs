//! Incidents: what an operator is told about, and the findings that open and update them.

use serde::{Deserialize, Serialize};

use super::{
    details::Details,
    kind::{IncidentId, IncidentKind, IncidentStatus, Severity},
    stage::Stage,
};
use crate::entity::EntityId;

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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
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
    pub attributes: Attributes,
}

impl Incident {
    pub fn stages(&self) -> &[Stage] {
        &self.attributes.stages
    }

    pub fn details(&self) -> &Details {
        &self.attributes.details
    }
}
