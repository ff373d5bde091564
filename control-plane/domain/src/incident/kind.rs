//! The incident's vocabulary: its number, kind, status and severity.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An incident's number, as the store assigned it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct IncidentId(pub i64);

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    OomKill,
    CrashLoop,
    /// Correlated metric anomalies (baseline thresholds and isolation forests), localized to
    /// a ranked root cause.
    ServiceAnomaly,
    /// Raised elsewhere (Alertmanager, an IncidentReport), enriched with Vigil's evidence.
    Alert,
    /// A workload's working set held near its memory limit (before the OOM killer acts).
    MemoryPressure,
    /// A workload throttled by its CPU quota in a large share of periods.
    CpuThrottling,
    /// A service's main process killed by another process's signal.
    ProcessKilled,
    /// A TLS endpoint's certificate near or past its end.
    CertificateExpiry,
    /// A service's program could not be executed (missing, not executable, not permitted).
    ExecFailure,
    /// A data filesystem full, or filling fast enough to be full within the warning horizon.
    DiskPressure,
}

impl IncidentKind {
    pub const ALL: [Self; 10] = [
        Self::OomKill,
        Self::CrashLoop,
        Self::ServiceAnomaly,
        Self::Alert,
        Self::MemoryPressure,
        Self::CpuThrottling,
        Self::ProcessKilled,
        Self::CertificateExpiry,
        Self::ExecFailure,
        Self::DiskPressure,
    ];

    /// Kinds a rule opens and owns (on kernel events, or on resource readings against fixed
    /// limits): quiet-resolved, and anomalies upstream of them join them.
    pub fn is_kernel_rule(self) -> bool {
        matches!(
            self,
            Self::OomKill
                | Self::CrashLoop
                | Self::MemoryPressure
                | Self::CpuThrottling
                | Self::ProcessKilled
                | Self::CertificateExpiry
                | Self::ExecFailure
                | Self::DiskPressure
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OomKill => "oom_kill",
            Self::CrashLoop => "crash_loop",
            Self::ServiceAnomaly => "service_anomaly",
            Self::Alert => "alert",
            Self::MemoryPressure => "memory_pressure",
            Self::CpuThrottling => "cpu_throttling",
            Self::ProcessKilled => "process_killed",
            Self::CertificateExpiry => "certificate_expiry",
            Self::ExecFailure => "exec_failure",
            Self::DiskPressure => "disk_pressure",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    Open,
    Resolved,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Open, Self::Resolved]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: [Self; 2] = [Self::Warning, Self::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}
