//! What diagnosis reads and writes: the sources its evidence tools read (kernel events, metric
//! samples, the service graph, workload logs), and where diagnoses are kept.

use std::sync::Arc;

use super::model::Diagnosis;
use crate::{
    detection::ports::GraphView, entity::EntityId, event::ports::EventStore, incident::IncidentId,
    interval::ports::IntervalStore, store::StoreError,
};

/// A workload's recent log lines (Kubernetes pod logs; locally a configured file).
pub trait LogSource: Send + Sync {
    /// At most `max_lines` of the newest lines, oldest first; empty when none are known.
    /// Lines the source can date before `since_unix_ns` are left out: an error logged by the
    /// previous fault is not evidence of this one. Undated lines are kept.
    fn tail(
        &self,
        entity: &EntityId,
        since_unix_ns: i64,
        max_lines: usize,
    ) -> Result<Vec<String>, StoreError>;
}

/// Nothing configured: no workload has logs.
pub struct NoLogs;

impl LogSource for NoLogs {
    fn tail(&self, _: &EntityId, _: i64, _: usize) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
}

/// Everything the read-only tools may read. None of it is written by a tool.
#[derive(Clone)]
pub struct Sources {
    pub events: Arc<dyn EventStore>,
    pub samples: Arc<dyn IntervalStore>,
    pub graph: Arc<dyn GraphView>,
    pub logs: Arc<dyn LogSource>,
}

/// Where diagnoses are kept: the latest per incident.
pub trait DiagnosisStore: Send + Sync {
    fn save_diagnosis(&self, diagnosis: &Diagnosis) -> Result<(), StoreError>;
    fn diagnosis(&self, incident: IncidentId) -> Result<Option<Diagnosis>, StoreError>;
}
