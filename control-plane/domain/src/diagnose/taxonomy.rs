//! The fault taxonomy: one fixed list of what can be wrong, with machine-readable ids that the
//! fault lab, the playbooks, the API, the IncidentReport status and the metrics all use.
//!
//! Classes are *causes*. A few are generic (`dependency_down`, `dependency_errors`,
//! `app_errors`, `app_latency`): what is left when no specific cause is in evidence. A
//! specific class names the generic symptoms it produces (`explains`), so a tool that only saw
//! the symptom agrees with the cause rather than contradicting it.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultClass {
    OomKill,
    MemoryPressure,
    CrashLoop,
    ProcessKilled,
    /// A change that does not run: an exec failure, a new binary or config then failures.
    BadDeploy,
    /// A dependency refuses or resets connections.
    DependencyDown,
    /// A dependency answers with L7 errors.
    DependencyErrors,
    NetworkLoss,
    NetworkLatency,
    Partition,
    DnsFailure,
    BandwidthSaturation,
    CpuThrottling,
    DiskFull,
    IoLatency,
    /// EACCES/EPERM from the kernel.
    PermissionDenied,
    /// Authentication refused: Redis WRONGPASS/NOAUTH, SQLSTATE class 28, HTTP 401/403.
    CredentialFailure,
    CertificateExpiry,
    /// Fewer replicas running than the workload needs.
    ReplicaShortage,
    /// 5xx with healthy dependencies.
    AppErrors,
    AppLatency,
}

impl FaultClass {
    pub const ALL: [Self; 21] = [
        Self::OomKill,
        Self::MemoryPressure,
        Self::CrashLoop,
        Self::ProcessKilled,
        Self::BadDeploy,
        Self::DependencyDown,
        Self::DependencyErrors,
        Self::NetworkLoss,
        Self::NetworkLatency,
        Self::Partition,
        Self::DnsFailure,
        Self::BandwidthSaturation,
        Self::CpuThrottling,
        Self::DiskFull,
        Self::IoLatency,
        Self::PermissionDenied,
        Self::CredentialFailure,
        Self::CertificateExpiry,
        Self::ReplicaShortage,
        Self::AppErrors,
        Self::AppLatency,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Self::OomKill => "oom_kill",
            Self::MemoryPressure => "memory_pressure",
            Self::CrashLoop => "crash_loop",
            Self::ProcessKilled => "process_killed",
            Self::BadDeploy => "bad_deploy",
            Self::DependencyDown => "dependency_down",
            Self::DependencyErrors => "dependency_errors",
            Self::NetworkLoss => "network_loss",
            Self::NetworkLatency => "network_latency",
            Self::Partition => "partition",
            Self::DnsFailure => "dns_failure",
            Self::BandwidthSaturation => "bandwidth_saturation",
            Self::CpuThrottling => "cpu_throttling",
            Self::DiskFull => "disk_full",
            Self::IoLatency => "io_latency",
            Self::PermissionDenied => "permission_denied",
            Self::CredentialFailure => "credential_failure",
            Self::CertificateExpiry => "certificate_expiry",
            Self::ReplicaShortage => "replica_shortage",
            Self::AppErrors => "app_errors",
            Self::AppLatency => "app_latency",
        }
    }

    pub fn parse(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.id() == id)
    }

    /// Every id, for error messages that list the valid ones.
    pub fn ids() -> String {
        Self::ALL.map(Self::id).join(", ")
    }

    /// What is left when no specific cause is in evidence.
    pub fn is_generic(self) -> bool {
        matches!(
            self,
            Self::DependencyDown | Self::DependencyErrors | Self::AppErrors | Self::AppLatency
        )
    }

    /// The generic symptoms this cause produces: a vote for one of them is consistent with
    /// this class, not a disagreement.
    pub fn explains(self, symptom: Self) -> bool {
        use FaultClass::*;
        if self == symptom {
            return true;
        }
        let produces: &[FaultClass] = match self {
            // An OOM kill repeated is a crash loop; held near the limit first, pressure. A
            // cgroup at its limit reclaims its own page cache and reads it back from disk (and
            // the dying process's pages are written out): block IO slows with it.
            OomKill => &[
                MemoryPressure,
                CrashLoop,
                IoLatency,
                DependencyDown,
                DependencyErrors,
                AppErrors,
                AppLatency,
            ],
            // A deploy that does not run loops at every start.
            BadDeploy => &[
                CrashLoop,
                DependencyDown,
                DependencyErrors,
                AppErrors,
                AppLatency,
            ],
            // A replica that dies or restarts is a replica short while it does: its peers
            // carry its load (slower, as with too few replicas), and a restarted process
            // serves its first requests cold and costs the CPU it starts on.
            CrashLoop | ProcessKilled => &[DependencyDown, DependencyErrors, AppErrors, AppLatency],
            // The replicas left carry the load: slower, or failing.
            ReplicaShortage => &[DependencyDown, DependencyErrors, AppErrors, AppLatency],
            // Reclaim at the limit is refaults from disk: slower block IO.
            MemoryPressure => &[IoLatency, AppLatency, DependencyErrors],
            CpuThrottling | IoLatency => &[AppLatency, DependencyErrors],
            // Lost packets are lost lookups too: the resolver's queries time out.
            NetworkLoss => &[AppLatency, DependencyErrors, AppErrors, DnsFailure],
            NetworkLatency => &[AppLatency, DependencyErrors, AppErrors],
            // A full link's queue is a slow path: round trips grow (steady on an edge whose
            // traffic keeps the queue at one fill) before and while it drops.
            BandwidthSaturation => &[NetworkLatency, AppLatency, DependencyErrors, AppErrors],
            Partition => &[
                DependencyDown,
                DependencyErrors,
                AppErrors,
                AppLatency,
                DnsFailure,
            ],
            DnsFailure => &[DependencyDown, DependencyErrors, AppErrors, AppLatency],
            DiskFull | PermissionDenied | CredentialFailure | CertificateExpiry => {
                &[DependencyErrors, AppErrors, DependencyDown]
            }
            DependencyDown => &[AppErrors, DependencyErrors],
            DependencyErrors => &[AppErrors],
            AppErrors | AppLatency => &[],
        };
        produces.contains(&symptom)
    }

    /// One line an operator reads: what this class means.
    pub fn about(self) -> &'static str {
        match self {
            Self::OomKill => "the kernel's OOM killer ended a process at its memory limit",
            Self::MemoryPressure => "the working set is held near the memory limit",
            Self::CrashLoop => "the program exits again at every start",
            Self::ProcessKilled => "another process killed the service's process",
            Self::BadDeploy => "a new binary or config does not run, or fails once it does",
            Self::DependencyDown => "a dependency refuses or resets connections",
            Self::DependencyErrors => "a dependency answers with errors",
            Self::NetworkLoss => "packets are lost: retransmissions without a dead peer",
            Self::NetworkLatency => "the network path is slow: round trips grew",
            Self::Partition => "two services cannot reach each other at all",
            Self::DnsFailure => "name lookups fail",
            Self::BandwidthSaturation => "egress is capped: throughput flat, queues and RTT grow",
            Self::CpuThrottling => "the CPU quota runs out in most periods",
            Self::DiskFull => "writes fail for lack of space",
            Self::IoLatency => "block IO is slow",
            Self::PermissionDenied => "the kernel refuses access (EACCES/EPERM)",
            Self::CredentialFailure => "authentication is refused (a revoked or expired secret)",
            Self::CertificateExpiry => "a TLS certificate is near or past its end",
            Self::ReplicaShortage => "fewer replicas run than the workload needs",
            Self::AppErrors => "the service itself answers with errors",
            Self::AppLatency => "the service itself is slow",
        }
    }

    /// What an operator should do first: the action remediation would choose.
    pub fn recommended_actions(self) -> &'static [&'static str] {
        match self {
            Self::OomKill => &[
                "raise the memory limit, or find what grew (heap, cache)",
                "roll back if a new version started it",
            ],
            Self::MemoryPressure => &["raise the memory limit before the OOM killer acts"],
            Self::CrashLoop => &[
                "read the last exit and the workload's logs",
                "roll back the config or binary that changed",
            ],
            Self::ProcessKilled => &[
                "find who sent the signal (killed_by) and why",
                "restart the workload if it did not come back",
            ],
            Self::BadDeploy => &["roll back the deployment to the last revision that ran"],
            Self::DependencyDown => &["restart or fail over the dependency that refuses"],
            Self::DependencyErrors => &["look at the failing dependency's own incident"],
            Self::NetworkLoss | Self::Partition | Self::NetworkLatency => &[
                "reroute traffic away from the affected path or node",
                "check network policy, firewall rules and the node's interfaces",
            ],
            Self::DnsFailure => &["restore the missing DNS record or the resolver's config"],
            Self::BandwidthSaturation => &["raise the bandwidth limit or shed the bulk traffic"],
            Self::CpuThrottling => &["raise the CPU limit (quota)"],
            Self::DiskFull => &["free disk space (logs, temp files) or grow the volume"],
            Self::IoLatency => &["move the workload off the slow device, or reduce its IO"],
            Self::PermissionDenied => &["restore the file's or socket's permissions"],
            Self::CredentialFailure => &["rotate the credential in the client's secret"],
            Self::CertificateExpiry => &["renew the certificate and reload the server"],
            Self::ReplicaShortage => &["scale the workload back to its minimum replicas"],
            Self::AppErrors => &["read the service's logs; roll back if it changed"],
            Self::AppLatency => &["profile the service; scale out if it is saturated"],
        }
    }
}

impl fmt::Display for FaultClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for c in FaultClass::ALL {
            assert_eq!(FaultClass::parse(c.id()), Some(c));
            assert!(seen.insert(c.id()), "{c} twice");
        }
        assert_eq!(FaultClass::parse("packet_loss"), None);
    }

    #[test]
    fn specific_causes_explain_generic_symptoms_but_not_each_other() {
        use FaultClass::*;
        assert!(CredentialFailure.explains(DependencyErrors));
        assert!(ProcessKilled.explains(DependencyDown));
        assert!(!ProcessKilled.explains(DnsFailure));
        assert!(!NetworkLoss.explains(Partition));
        assert!(BandwidthSaturation.explains(NetworkLatency));
        assert!(!NetworkLatency.explains(BandwidthSaturation));
        assert!(!AppErrors.explains(CredentialFailure));
        for c in FaultClass::ALL {
            assert!(c.explains(c));
            assert!(!c.recommended_actions().is_empty());
        }
    }
}
