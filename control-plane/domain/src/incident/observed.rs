//! `ObservedIncidents` wraps the incident store: every create, merge, reopen and resolve is
//! reported once it is stored, whichever use case (kernel rules, detection, alerts) made it.

use std::sync::Arc;

use super::{
    kind::{IncidentId, IncidentKind},
    model::{EvidenceRef, Finding, Incident},
    ports::{IncidentChange, IncidentQuery, IncidentStore},
};
use crate::{observe::Observer, store::StoreError};

/// An incident store that reports each stored change to an observer.
pub struct ObservedIncidents {
    inner: Arc<dyn IncidentStore>,
    observer: Arc<dyn Observer>,
}

impl ObservedIncidents {
    pub fn new(inner: Arc<dyn IncidentStore>, observer: Arc<dyn Observer>) -> Self {
        Self { inner, observer }
    }

    /// Reports the incident as it is now stored.
    fn report(
        &self,
        id: IncidentId,
        change: fn(Incident) -> IncidentChange,
    ) -> Result<(), StoreError> {
        if let Some(incident) = self.inner.get(id)? {
            self.observer.incident(&change(incident));
        }
        Ok(())
    }
}

impl IncidentStore for ObservedIncidents {
    fn find_open(
        &self,
        kind: IncidentKind,
        node: &str,
        workload_key: &str,
    ) -> Result<Option<Incident>, StoreError> {
        self.inner.find_open(kind, node, workload_key)
    }

    fn create(&self, finding: &Finding) -> Result<Incident, StoreError> {
        let incident = self.inner.create(finding)?;
        self.observer.incident(&IncidentChange::Opened {
            incident: incident.clone(),
            finding: Box::new(finding.clone()),
        });
        Ok(incident)
    }

    fn add_occurrence(&self, id: IncidentId, finding: &Finding) -> Result<Incident, StoreError> {
        let incident = self.inner.add_occurrence(id, finding)?;
        self.observer
            .incident(&IncidentChange::Updated(incident.clone()));
        Ok(incident)
    }

    fn resolve(&self, id: IncidentId, at_unix_ns: i64) -> Result<(), StoreError> {
        self.inner.resolve(id, at_unix_ns)?;
        self.report(id, IncidentChange::Resolved)
    }

    fn reopen(&self, id: IncidentId, at_unix_ns: i64) -> Result<(), StoreError> {
        self.inner.reopen(id, at_unix_ns)?;
        self.report(id, IncidentChange::Reopened)
    }

    fn list(&self, query: &IncidentQuery) -> Result<Vec<Incident>, StoreError> {
        self.inner.list(query)
    }

    fn get(&self, id: IncidentId) -> Result<Option<Incident>, StoreError> {
        self.inner.get(id)
    }

    fn evidence(&self, id: IncidentId) -> Result<Vec<EvidenceRef>, StoreError> {
        self.inner.evidence(id)
    }
}
