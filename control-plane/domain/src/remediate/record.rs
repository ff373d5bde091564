//! An action's life as it is kept: proposed and decided, maybe approved, run with its inverse
//! recorded, verified, maybe rolled back.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{action::ActionRequest, engine::Verdict, playbook::Step, policy::Phase};
use crate::diagnose::taxonomy::FaultClass;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActionId(pub i64);

impl std::fmt::Display for ActionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    /// Observe phase: decided and logged, never run.
    Observed,
    /// A guardrail refused it (or no runtime can undo it).
    Refused,
    /// Assist phase: waiting for an approver until it expires.
    PendingApproval,
    Denied,
    /// Nobody approved it in time: nothing ran.
    Expired,
    /// Run; its incident's signals are being watched.
    Verifying,
    /// The signals recovered.
    Recovered,
    /// The signals did not change: a human takes over.
    Escalated,
    /// The signals got worse: the inverse ran.
    RolledBack,
    /// The runtime refused or failed it (nothing to undo), or the rollback failed.
    Failed,
}

impl ActionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Observed => "observed",
            Self::Refused => "refused",
            Self::PendingApproval => "pending_approval",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Verifying => "verifying",
            Self::Recovered => "recovered",
            Self::Escalated => "escalated",
            Self::RolledBack => "rolled_back",
            Self::Failed => "failed",
        }
    }

    /// Whether the action ran (counts against rate limits and cooldowns).
    pub fn ran(self) -> bool {
        matches!(
            self,
            Self::Verifying | Self::Recovered | Self::Escalated | Self::RolledBack
        )
    }
}

/// What a runtime did, and how to take it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    pub detail: String,
    /// What the runtime needs to undo it (the old limit, the old mode, the replica removed).
    pub inverse: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub id: ActionId,
    pub request: ActionRequest,
    /// The diagnosed class whose playbook proposed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_class: Option<FaultClass>,
    pub step: Step,
    pub phase: Phase,
    pub verdict: Verdict,
    pub state: ActionState,
    pub decided_unix_ns: i64,
    /// Until when an approval is taken (assist phase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_unix_ns: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executed_unix_ns: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Applied>,
    /// The incident's occurrences when the action ran, against which it is verified.
    #[serde(default)]
    pub occurrences_at_action: u64,
    /// Why it ended as it did (a refusal, a failure, the verification).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub outcome: String,
}
