//! What every use case that opens or changes incidents needs: their store.

use super::{
    kind::{IncidentId, IncidentKind, IncidentStatus},
    model::{EvidenceRef, Finding, Incident},
};
use crate::store::StoreError;

#[derive(Debug, Clone, Default)]
pub struct IncidentQuery {
    pub status: Option<IncidentStatus>,
    pub kind: Option<IncidentKind>,
    pub limit: usize,
}

impl IncidentQuery {
    /// Open incidents of every kind, at most `limit`.
    pub fn open(limit: usize) -> Self {
        Self {
            status: Some(IncidentStatus::Open),
            kind: None,
            limit,
        }
    }
}

pub trait IncidentStore: Send + Sync {
    /// The open incident of this kind for this workload on this node, if any.
    fn find_open(
        &self,
        kind: IncidentKind,
        node: &str,
        workload_key: &str,
    ) -> Result<Option<Incident>, StoreError>;
    fn create(&self, finding: &Finding) -> Result<Incident, StoreError>;
    /// Merges another finding into an open incident.
    fn add_occurrence(&self, id: IncidentId, finding: &Finding) -> Result<Incident, StoreError>;
    fn resolve(&self, id: IncidentId, at_unix_ns: i64) -> Result<(), StoreError>;
    /// Opens a resolved incident again (a recurrence within its cooldown).
    fn reopen(&self, id: IncidentId, at_unix_ns: i64) -> Result<(), StoreError>;
    fn list(&self, query: &IncidentQuery) -> Result<Vec<Incident>, StoreError>;
    fn get(&self, id: IncidentId) -> Result<Option<Incident>, StoreError>;
    fn evidence(&self, id: IncidentId) -> Result<Vec<EvidenceRef>, StoreError>;
}

/// Opens an incident for a rule's `finding`, or merges it into the open one of the same kind,
/// node and workload. Returns the incident and whether it was opened now.
pub fn open_or_update(
    store: &dyn IncidentStore,
    finding: &Finding,
) -> Result<(Incident, bool), StoreError> {
    match store.find_open(finding.kind(), &finding.node, finding.workload_key.as_str())? {
        Some(open) => Ok((store.add_occurrence(open.id, finding)?, false)),
        None => Ok((store.create(finding)?, true)),
    }
}

/// A change in an incident's life, as observers (metrics, traces, the Kubernetes mirror) see
/// it.
#[derive(Debug, Clone)]
pub enum IncidentChange {
    /// Carries the finding that opened it: its stages are the incident's trace.
    Opened {
        incident: Incident,
        finding: Box<Finding>,
    },
    Updated(Incident),
    Reopened(Incident),
    Resolved(Incident),
}

impl IncidentChange {
    pub fn incident(&self) -> &Incident {
        match self {
            Self::Opened { incident, .. }
            | Self::Updated(incident)
            | Self::Reopened(incident)
            | Self::Resolved(incident) => incident,
        }
    }
}
