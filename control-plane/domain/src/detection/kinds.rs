//! What kind of trouble a piece of evidence is, so correlation can tell one fault spreading
//! from two faults that happen to be near each other in the service graph.
//!
//! Two families. *Consequences* are how any fault further down a call path shows to the
//! callers above it: failed or unanswered requests, slow requests, refused or reset
//! connections. They say little about the cause, so they may join whatever incident they lie
//! upstream of. *Causes* name a mechanism — DNS failing, permissions refused, a disk full,
//! memory or CPU exhausted, packets lost, a process dying — and a second, different cause is a
//! second fault even on the same workload.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{entity::SubjectClass, incident::evidence::AnomalyEvidence, incident::IncidentKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// Requests failing or left unanswered (consequence).
    Errors,
    /// Requests, round trips or syscalls slower than usual (consequence).
    Latency,
    /// Connections refused, reset or failing (consequence: a dead or overloaded server).
    Connectivity,
    /// Packets lost on the way (retransmits).
    Loss,
    Dns,
    /// Permission refused (EACCES, EPERM).
    Permission,
    /// Space exhausted or the disk slow (ENOSPC, block-IO latency, filesystem usage).
    Storage,
    /// CPU: scheduling delay, throttling, CPU pressure.
    Cpu,
    /// Memory: usage near the limit, memory pressure, OOM kills.
    Memory,
    /// Processes dying: crashes, kills, crash loops.
    Process,
    /// Certificates: expired or about to.
    Certificate,
}

impl EvidenceKind {
    /// Whether this is how any fault below shows to callers, rather than a cause of its own.
    pub fn is_consequence(self) -> bool {
        matches!(self, Self::Errors | Self::Latency | Self::Connectivity)
    }

    /// The kind of evidence one feature of one subject class is.
    pub fn of_feature(class: SubjectClass, feature: &str) -> Self {
        match (class, feature) {
            (_, "dns_failures_per_s") => Self::Dns,
            (_, "retransmits_per_s") => Self::Loss,
            (_, "syscall_errors_permission_per_s") => Self::Permission,
            (_, "syscall_errors_space_per_s" | "block_io_p99_us") => Self::Storage,
            (_, f) if f.starts_with("disk_") || f.starts_with("io_pressure") => Self::Storage,
            (_, "runqueue_p99_us" | "node_runqueue_p99_us") => Self::Cpu,
            (_, f) if f.starts_with("cpu_") || f.starts_with("throttled") => Self::Cpu,
            (_, f) if f.starts_with("memory_") => Self::Memory,
            (_, f) if f.starts_with("cert") => Self::Certificate,
            (_, "connect_failures_per_s" | "resets_per_s" | "resets_received_per_s")
            | (_, "syscall_errors_network_per_s") => Self::Connectivity,
            (_, f) if f.ends_with("_p99_us") || f == "rtt_us" => Self::Latency,
            // Error ratios, unanswered and stuck requests, and anything new: a symptom.
            _ => Self::Errors,
        }
    }

    /// The kinds of evidence an incident from a kernel-event rule stands for.
    pub fn of_incident(kind: IncidentKind) -> &'static [Self] {
        match kind {
            IncidentKind::OomKill => &[Self::Memory, Self::Process],
            IncidentKind::CrashLoop => &[Self::Process],
            IncidentKind::MemoryPressure => &[Self::Memory],
            IncidentKind::CpuThrottling => &[Self::Cpu],
            IncidentKind::ProcessKilled => &[Self::Process],
            IncidentKind::CertificateExpiry => &[Self::Certificate],
            IncidentKind::ExecFailure => &[Self::Process],
            IncidentKind::DiskPressure => &[Self::Storage],
            IncidentKind::ServiceAnomaly | IncidentKind::Alert => &[],
        }
    }
}

/// The kinds of evidence in one anomaly: its fired features, or for an anomaly only the
/// isolation forest found, the features that drove it.
pub fn kinds_of(a: &AnomalyEvidence) -> BTreeSet<EvidenceKind> {
    let fired: BTreeSet<EvidenceKind> = a
        .features
        .iter()
        .filter(|f| f.fired)
        .map(|f| EvidenceKind::of_feature(a.class, &f.feature))
        .collect();
    if !fired.is_empty() {
        return fired;
    }
    let crossed = a
        .features
        .iter()
        .map(|f| EvidenceKind::of_feature(a.class, &f.feature));
    let drivers = a
        .forest
        .iter()
        .flat_map(|f| &f.drivers)
        .map(|d| EvidenceKind::of_feature(a.class, &d.feature));
    crossed.chain(drivers).collect()
}

/// Whether every kind is a consequence (nothing in it names a cause).
pub fn only_consequences(kinds: &BTreeSet<EvidenceKind>) -> bool {
    kinds.iter().all(|k| k.is_consequence())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_fall_into_their_kind() {
        let w = SubjectClass::Workload;
        let e = SubjectClass::Edge;
        assert_eq!(
            EvidenceKind::of_feature(w, "dns_failures_per_s"),
            EvidenceKind::Dns
        );
        assert_eq!(
            EvidenceKind::of_feature(e, "request_p99_us"),
            EvidenceKind::Latency
        );
        assert_eq!(
            EvidenceKind::of_feature(e, "error_ratio"),
            EvidenceKind::Errors
        );
        assert_eq!(
            EvidenceKind::of_feature(w, "syscall_errors_permission_per_s"),
            EvidenceKind::Permission
        );
        assert_eq!(
            EvidenceKind::of_feature(w, "memory_limit_ratio"),
            EvidenceKind::Memory
        );
        assert!(EvidenceKind::of_feature(e, "connect_failures_per_s").is_consequence());
        assert!(!EvidenceKind::of_feature(e, "retransmits_per_s").is_consequence());
    }
}
