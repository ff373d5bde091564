//! What remediation reads and writes: its actions' records (so cooldowns, rate limits and
//! approvals survive a restart), the fleet it judges blast radius on, and the runtimes that
//! act.

use std::collections::BTreeMap;

use super::{
    action::ActionClass,
    fleet::Workload,
    playbook::Step,
    record::{ActionId, ActionRecord, ActionState, Applied},
};
use crate::{entity::EntityId, incident::IncidentId, store::StoreError};

pub trait RemediationStore: Send + Sync {
    /// Stores a new action and gives it its id.
    fn insert_action(&self, record: &ActionRecord) -> Result<ActionId, StoreError>;
    fn update_action(&self, record: &ActionRecord) -> Result<(), StoreError>;
    fn action(&self, id: ActionId) -> Result<Option<ActionRecord>, StoreError>;
    /// Actions decided at or after `since_unix_ns`, of `incident` if given, oldest first.
    fn actions(
        &self,
        incident: Option<IncidentId>,
        since_unix_ns: i64,
    ) -> Result<Vec<ActionRecord>, StoreError>;
    /// Actions in one of `states`, whenever decided.
    fn actions_in(&self, states: &[ActionState]) -> Result<Vec<ActionRecord>, StoreError>;
}

/// The fleet as blast radius is judged on it: replicas, health, scope labels, dependents.
pub trait FleetView: Send + Sync {
    fn fleet(&self) -> Result<BTreeMap<EntityId, Workload>, StoreError>;

    /// A workload an incident names that `fleet` does not list: how to judge it, or `None`
    /// to refuse it as unknown (a view that lists every workload, as a cluster's does).
    fn unlisted(&self, _target: &EntityId) -> Option<Workload> {
        None
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the {runtime} runtime cannot {action} here: {why}")]
    Unsupported {
        runtime: &'static str,
        action: &'static str,
        why: String,
    },
    /// The system acted on said no and means it (a PodDisruptionBudget answering an eviction
    /// with 429): not retried, since the refusal is what protects the workload.
    #[error("{action} on {target} was refused: {why}")]
    Refused {
        action: &'static str,
        target: EntityId,
        why: String,
    },
    #[error("{action} on {target} failed: {why}")]
    Failed {
        action: &'static str,
        target: EntityId,
        why: String,
    },
}

/// Where actions run. Every apply records its inverse; what cannot be undone is not applied.
pub trait Runtime: Send + Sync {
    fn name(&self) -> &'static str;
    fn supports(&self, class: ActionClass) -> bool;
    fn apply(&self, target: &EntityId, step: &Step) -> Result<Applied, RuntimeError>;
    fn undo(&self, target: &EntityId, applied: &Applied) -> Result<(), RuntimeError>;
}

/// Whether this control plane may act on a target now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Taken (or already held) by this control plane.
    Taken,
    /// Someone else holds it: another control-plane replica, or a controller taking the same
    /// lock.
    HeldBy(String),
}

#[derive(Debug, thiserror::Error)]
#[error("the lock on {target}: {why}")]
pub struct LockError {
    pub target: EntityId,
    pub why: String,
}

/// One remediation per target across everything that might act on it (a Lease per target in
/// a cluster). Taken before an action runs and held until its verification ends; an action
/// whose lock cannot be taken, or cannot be known to be free, does not run.
pub trait TargetLock: Send + Sync {
    /// Takes `target` for `for_ns` (renewed if already held here).
    fn acquire(&self, target: &EntityId, for_ns: i64) -> Result<Grant, LockError>;
    fn release(&self, target: &EntityId) -> Result<(), LockError>;
}

/// One control plane with its own store: the store's record of actions being verified is the
/// lock (a target with one is refused by the `lock` guardrail), so this grants every request.
pub struct StoreLock;

impl TargetLock for StoreLock {
    fn acquire(&self, _: &EntityId, _: i64) -> Result<Grant, LockError> {
        Ok(Grant::Taken)
    }
    fn release(&self, _: &EntityId) -> Result<(), LockError> {
        Ok(())
    }
}

/// No runtime configured: every action is decided and logged, none can run.
pub struct NoRuntime;

impl Runtime for NoRuntime {
    fn name(&self) -> &'static str {
        "none"
    }
    fn supports(&self, _: ActionClass) -> bool {
        false
    }
    fn apply(&self, _: &EntityId, step: &Step) -> Result<Applied, RuntimeError> {
        Err(RuntimeError::Unsupported {
            runtime: "none",
            action: step.action.as_str(),
            why: "no runtime is configured ([remediation] runtime)".into(),
        })
    }
    fn undo(&self, _: &EntityId, _: &Applied) -> Result<(), RuntimeError> {
        Err(RuntimeError::Unsupported {
            runtime: "none",
            action: "undo",
            why: "no runtime is configured ([remediation] runtime)".into(),
        })
    }
}
