//! The limits every action is held to, and the phase each class of action is in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::action::ActionClass;
use crate::incident::Severity;

/// How far Vigil may go with a class of action. Promotion is explicit config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Decide and log, never act.
    Observe,
    /// Act once an approver says so.
    Assist,
    /// Act within every limit.
    Autonomous,
}

/// Which workloads may be acted on: by namespace and by label. A deny always wins; a
/// non-empty allow-list admits only what it names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scope {
    pub allow_namespaces: Vec<String>,
    pub deny_namespaces: Vec<String>,
    /// `key=value` pairs.
    pub allow_labels: Vec<String>,
    pub deny_labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// At most this fraction of a workload's replicas disrupted at once (at least one).
    pub max_replica_fraction: f64,
    /// At most this fraction of the fleet's workloads acted on per window (at least one).
    pub max_fleet_fraction: f64,
    /// Actions executed per window, fleet-wide.
    pub max_actions_per_window: u32,
    pub window_ns: i64,
    /// After an action on a target, no other on it for this long.
    pub cooldown_ns: i64,
    pub scope: Scope,
    /// Below this diagnosis confidence nothing is acted on.
    pub min_confidence: f64,
    /// Below this severity nothing is acted on.
    pub min_severity: Severity,
    /// Each class's phase; a class not named is observed only.
    pub phases: BTreeMap<ActionClass, Phase>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_replica_fraction: 0.25,
            max_fleet_fraction: 0.10,
            max_actions_per_window: 5,
            window_ns: 3_600_000_000_000,
            cooldown_ns: 600_000_000_000,
            scope: Scope::default(),
            min_confidence: 0.6,
            min_severity: Severity::Warning,
            phases: BTreeMap::new(),
        }
    }
}

impl Policy {
    pub fn phase(&self, class: ActionClass) -> Phase {
        self.phases.get(&class).copied().unwrap_or(Phase::Observe)
    }

    /// Replicas of a workload of `replicas` that may be disrupted at once.
    pub fn replica_budget(&self, replicas: u32) -> u32 {
        ((f64::from(replicas) * self.max_replica_fraction).floor() as u32).max(1)
    }

    /// Workloads of a fleet of `size` that may be acted on per window.
    pub fn fleet_budget(&self, size: usize) -> usize {
        ((size as f64 * self.max_fleet_fraction).floor() as usize).max(1)
    }
}
