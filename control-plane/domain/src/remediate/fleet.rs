//! What the guardrails read about the world: the fleet's workloads (replicas, health,
//! namespace, labels, who depends on them), what was done lately, and what is in progress.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::action::ActionClass;
use crate::entity::EntityId;

/// One workload as the fleet knows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    pub replicas: u32,
    /// Replicas serving now.
    pub healthy: u32,
    /// This replica (the one an incident names) is known not to serve now: disrupting it
    /// takes no healthy endpoint away from its dependents.
    #[serde(default)]
    pub down: bool,
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Workloads that call it (from the live service graph).
    pub dependents: BTreeSet<EntityId>,
}

/// An action executed earlier (kept in the store, so limits survive a restart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Executed {
    pub class: ActionClass,
    pub target: EntityId,
    pub replicas: u32,
    pub at_unix_ns: i64,
}

/// Everything a decision is made against.
#[derive(Debug, Clone, Default)]
pub struct World {
    pub fleet: BTreeMap<EntityId, Workload>,
    /// Executed actions, any order.
    pub history: Vec<Executed>,
    /// Targets with a remediation in progress (a Lease in a cluster, a row locally).
    pub locked: BTreeSet<EntityId>,
}
