//! What remediation may do: the classes of action (each with an inverse a runtime records),
//! and one proposed action on one target.

use serde::{Deserialize, Serialize};

use crate::{entity::EntityId, incident::IncidentId, incident::Severity};

/// A kind of action. The phase (observe, assist, autonomous) is set per class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionClass {
    RestartProcess,
    RaiseMemoryLimit,
    ChangeCpuQuota,
    AddReplica,
    RemoveReplica,
    RestoreFileMode,
    RotateLog,
    RestartDns,
    ReapplyCredential,
    EvictPod,
    RolloutRestart,
    Scale,
    PatchLimits,
    Rollback,
    CordonNode,
    /// Have the workload's certificate re-issued by its issuer and served.
    RenewCertificate,
    /// Raise the rate limit on the workload's egress (a token bucket on its interface).
    RaiseBandwidthLimit,
}

impl ActionClass {
    pub const ALL: [Self; 17] = [
        Self::RestartProcess,
        Self::RaiseMemoryLimit,
        Self::ChangeCpuQuota,
        Self::AddReplica,
        Self::RemoveReplica,
        Self::RestoreFileMode,
        Self::RotateLog,
        Self::RestartDns,
        Self::ReapplyCredential,
        Self::EvictPod,
        Self::RolloutRestart,
        Self::Scale,
        Self::PatchLimits,
        Self::Rollback,
        Self::CordonNode,
        Self::RenewCertificate,
        Self::RaiseBandwidthLimit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RestartProcess => "restart_process",
            Self::RaiseMemoryLimit => "raise_memory_limit",
            Self::ChangeCpuQuota => "change_cpu_quota",
            Self::AddReplica => "add_replica",
            Self::RemoveReplica => "remove_replica",
            Self::RestoreFileMode => "restore_file_mode",
            Self::RotateLog => "rotate_log",
            Self::RestartDns => "restart_dns",
            Self::ReapplyCredential => "reapply_credential",
            Self::EvictPod => "evict_pod",
            Self::RolloutRestart => "rollout_restart",
            Self::Scale => "scale",
            Self::PatchLimits => "patch_limits",
            Self::Rollback => "rollback",
            Self::CordonNode => "cordon_node",
            Self::RenewCertificate => "renew_certificate",
            Self::RaiseBandwidthLimit => "raise_bandwidth_limit",
        }
    }

    /// Whether the action takes replicas out of service while it runs (a restart, an
    /// eviction, a rollout): those count against the blast radius and may not take a
    /// workload's last healthy replica from its dependents.
    pub fn disrupts(self) -> bool {
        matches!(
            self,
            Self::RestartProcess
                | Self::RemoveReplica
                | Self::RestartDns
                | Self::EvictPod
                | Self::RolloutRestart
                | Self::Rollback
                | Self::CordonNode
        )
    }
}

/// One action a playbook proposes for an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRequest {
    pub incident: IncidentId,
    pub class: ActionClass,
    /// The workload acted on.
    pub target: EntityId,
    /// Replicas of the target it disrupts at once (0 for one that disrupts none).
    pub replicas: u32,
    /// The diagnosis's confidence and the incident's severity, for the gates.
    pub confidence: f64,
    pub severity: Severity,
}
