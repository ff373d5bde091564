//! Telling observers what happens, without the use cases knowing who listens: the Prometheus
//! and OTLP exporters, the Kubernetes mirror and the Slack notifier implement `Observer`
//! (incidents, diagnoses, remediation actions, ingest, anomaly scores); `Observers` fans one
//! report out to every exporter that is switched on.

use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::{
    diagnose::Diagnosis,
    entity::Subject,
    incident::{ports::IncidentChange, Incident},
    remediate::ActionRecord,
};

/// How anomalous a subject looked in the window just judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityScore {
    pub entity: Subject,
    /// Largest robust z-score of its features (0 while learning).
    pub max_z: f64,
    /// The isolation forest's score in [0, 1], once its forest is trained.
    pub forest: Option<f64>,
}

/// What Vigil reports about its own work. Calls run on the ingest and detection paths: they
/// must not block (queue, or update in-memory instruments).
pub trait Observer: Send + Sync {
    fn incident(&self, _change: &IncidentChange) {}
    /// Events newly stored from `node`, by kind.
    fn events_ingested(&self, _node: &str, _kind: &str, _count: u64) {}
    /// Metric intervals newly stored from `node`.
    fn intervals_ingested(&self, _node: &str, _count: u64) {}
    /// Sequence numbers of `node` that never arrived and never will: events its agent lost
    /// (e.g. killed with them buffered or in flight; its restart skips their numbers).
    fn sequence_gap(&self, _node: &str, _missing: u64) {}
    /// Scores of every subject judged in a window.
    fn anomaly_scores(&self, _scores: &[EntityScore]) {}
    /// A diagnosis of `incident` whose verdict (class or route) is new or changed, or the
    /// final one of a resolved incident, and how long it took in seconds.
    fn diagnosed(&self, _incident: &Incident, _diagnosis: &Diagnosis, _took_secs: f64) {}
    /// A remediation action was decided or changed state (waits for an approver, ran, was
    /// verified, rolled back, denied, expired), as now stored.
    fn action(&self, _record: &ActionRecord) {}
}

/// Nobody is listening.
pub struct NoObserver;

impl Observer for NoObserver {}

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
    fn sequence_gap(&self, node: &str, missing: u64) {
        self.each(|o| o.sequence_gap(node, missing));
    }
    fn anomaly_scores(&self, scores: &[EntityScore]) {
        self.each(|o| o.anomaly_scores(scores));
    }
    fn diagnosed(&self, incident: &Incident, diagnosis: &Diagnosis, took_secs: f64) {
        self.each(|o| o.diagnosed(incident, diagnosis, took_secs));
    }
    fn action(&self, record: &ActionRecord) {
        self.each(|o| o.action(record));
    }
}
