//! What diagnosis reads and writes: the sources its evidence tools read (kernel events, metric
//! samples, the service graph, workload logs, rollouts of the workload's controller), and
//! where diagnoses are kept.

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

/// Log sources asked in order: the first that knows the entity answers (configured files
/// before the cluster's pod logs, so an operator's explicit choice wins).
pub struct FirstLogs(pub Vec<Arc<dyn LogSource>>);

impl LogSource for FirstLogs {
    fn tail(
        &self,
        entity: &EntityId,
        since_unix_ns: i64,
        max_lines: usize,
    ) -> Result<Vec<String>, StoreError> {
        for source in &self.0 {
            let lines = source.tail(entity, since_unix_ns, max_lines)?;
            if !lines.is_empty() {
                return Ok(lines);
            }
        }
        Ok(Vec::new())
    }
}

/// A new revision of the controller that runs a workload (on Kubernetes a Deployment's
/// ReplicaSet): what an operator means by "what was deployed".
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// The controller, as `Deployment default/checkout`.
    pub controller: String,
    pub revision: u64,
    /// When the revision was created (the rollout began).
    pub at_unix_ns: i64,
    /// The revision's container images, and those of the revision before it (empty when it
    /// is the first).
    pub images: Vec<String>,
    pub previous_images: Vec<String>,
    /// Whether the entity runs this revision (its pod belongs to it).
    pub runs_it: bool,
}

/// Rollouts of the controller behind an entity.
pub trait ChangeSource: Send + Sync {
    /// Revisions of the entity's controller created at or after `since_unix_ns`, oldest
    /// first; empty when the entity has no controller this source knows.
    fn rollouts(&self, entity: &EntityId, since_unix_ns: i64) -> Result<Vec<Rollout>, StoreError>;
}

/// No cluster: nothing is rolled out by a controller Vigil can see.
pub struct NoChanges;

impl ChangeSource for NoChanges {
    fn rollouts(&self, _: &EntityId, _: i64) -> Result<Vec<Rollout>, StoreError> {
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
    pub changes: Arc<dyn ChangeSource>,
}

/// Where diagnoses are kept: the latest per incident.
pub trait DiagnosisStore: Send + Sync {
    fn save_diagnosis(&self, diagnosis: &Diagnosis) -> Result<(), StoreError>;
    fn diagnosis(&self, incident: IncidentId) -> Result<Option<Diagnosis>, StoreError>;
}
