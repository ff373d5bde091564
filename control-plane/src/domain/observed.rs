//! Telling observers what happens, without the use cases knowing who listens.
//!
//! `ObservedIncidents` wraps the incident store: every create, merge, reopen and resolve is
//! reported once it is stored, whichever use case (kernel rules, detection, Alertmanager)
//! made it. `Observers` fans one report out to every exporter.

use std::sync::{Arc, RwLock};

use super::incident::{EvidenceRef, Finding, Incident, IncidentKind};
use crate::ports::{
    EntityScore, IncidentChange, IncidentQuery, IncidentStore, Observer, StoreError,
};

/// Every exporter that is switched on. Exporters may join after the services that report to
/// them are built (the Prometheus exporter reads the service graph it is told about).
#[derive(Default)]
pub struct Observers(RwLock<Vec<Arc<dyn Observer>>>);

impl Observers {
    pub fn add(&self, observer: Arc<dyn Observer>) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(observer);
    }

    fn each(&self, f: impl Fn(&dyn Observer)) {
        for o in self.0.read().unwrap_or_else(|p| p.into_inner()).iter() {
            f(o.as_ref());
        }
    }
}

impl Observer for Observers {
    fn incident(&self, change: &IncidentChange) {
        self.each(|o| o.incident(change));
    }
    fn events_ingested(&self, node: &str, kind: &str, count: u64) {
        self.each(|o| o.events_ingested(node, kind, count));
    }
    fn intervals_ingested(&self, node: &str, count: u64) {
        self.each(|o| o.intervals_ingested(node, count));
    }
    fn anomaly_scores(&self, scores: &[EntityScore]) {
        self.each(|o| o.anomaly_scores(scores));
    }
}

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
    fn report(&self, id: i64, change: fn(Incident) -> IncidentChange) -> Result<(), StoreError> {
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
            finding: finding.clone(),
        });
        Ok(incident)
    }

    fn add_occurrence(&self, id: i64, finding: &Finding) -> Result<Incident, StoreError> {
        let incident = self.inner.add_occurrence(id, finding)?;
        self.observer
            .incident(&IncidentChange::Updated(incident.clone()));
        Ok(incident)
    }

    fn resolve(&self, id: i64, at_unix_ns: i64) -> Result<(), StoreError> {
        self.inner.resolve(id, at_unix_ns)?;
        self.report(id, IncidentChange::Resolved)
    }

    fn reopen(&self, id: i64, at_unix_ns: i64) -> Result<(), StoreError> {
        self.inner.reopen(id, at_unix_ns)?;
        self.report(id, IncidentChange::Reopened)
    }

    fn list(&self, query: &IncidentQuery) -> Result<Vec<Incident>, StoreError> {
        self.inner.list(query)
    }

    fn get(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        self.inner.get(id)
    }

    fn evidence(&self, id: i64) -> Result<Vec<EvidenceRef>, StoreError> {
        self.inner.evidence(id)
    }
}
