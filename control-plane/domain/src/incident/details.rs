//! What each kind of incident carries beyond its headline, as types: every producer writes them
//! the same way and every reader (the API, exporters, diagnosis) reads them without guessing.
//! The store and the API serialise them; nothing in the domain handles JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    evidence::{AnomalyEvidence, RootCause, Symptom},
    kind::{IncidentId, IncidentKind},
};
use crate::{
    entity::{EntityId, Subject},
    event::{EventKind, ProcessRef, WorkloadRef},
};

/// Per-kind content, serialised as the variant's own fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Details {
    OomKill(OomKillDetails),
    CrashLoop(CrashLoopDetails),
    ServiceAnomaly(AnomalyDetails),
    Alert(AlertDetails),
    MemoryPressure(PressureDetails),
    CpuThrottling(PressureDetails),
    ProcessKilled(KillDetails),
    CertificateExpiry(CertificateDetails),
    ExecFailure(ExecFailureDetails),
    DiskPressure(PressureDetails),
}

impl Details {
    pub fn kind(&self) -> IncidentKind {
        match self {
            Self::OomKill(_) => IncidentKind::OomKill,
            Self::CrashLoop(_) => IncidentKind::CrashLoop,
            Self::ServiceAnomaly(_) => IncidentKind::ServiceAnomaly,
            Self::Alert(_) => IncidentKind::Alert,
            Self::MemoryPressure(_) => IncidentKind::MemoryPressure,
            Self::CpuThrottling(_) => IncidentKind::CpuThrottling,
            Self::ProcessKilled(_) => IncidentKind::ProcessKilled,
            Self::CertificateExpiry(_) => IncidentKind::CertificateExpiry,
            Self::ExecFailure(_) => IncidentKind::ExecFailure,
            Self::DiskPressure(_) => IncidentKind::DiskPressure,
        }
    }

    /// Subjects the incident covers beyond its root cause (an anomaly's entities).
    pub fn covers(&self, entity: &EntityId) -> bool {
        match self {
            Self::ServiceAnomaly(a) => a.entities.keys().any(|s| s.entities().contains(&entity)),
            _ => false,
        }
    }
}

/// The task that was running when the OOM killer was invoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSummary {
    pub pid: u32,
    pub comm: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OomKillDetails {
    /// The kernel's `oom_kill` event (victim pid, comm, RSS by kind).
    pub victim: EventKind,
    pub trigger: TaskSummary,
    pub workload: WorkloadRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrashLoopDetails {
    pub restarts_in_window: u32,
    pub window_secs: u64,
    /// How the latest restart ended (exit code or signal).
    pub last_exit: EventKind,
    pub last_pid: u32,
    pub comm: String,
    pub workload: WorkloadRef,
    /// When the loop's first counted exit came: the loop began there, not at the exit that
    /// made it one, and its diagnosis must see every exit that did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_exit_unix_ns: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyDetails {
    /// Ranked candidates, most likely first.
    pub root_causes: Vec<RootCause>,
    /// Every subject of the group with its strongest anomaly score.
    pub entities: BTreeMap<Subject, f64>,
    pub first_anomaly_unix_ns: Option<i64>,
    /// When the current episode (the opening, or the latest reopening) was reported.
    pub episode_started_unix_ns: i64,
    /// The strongest symptoms, one per (subject, feature).
    pub symptoms: Vec<Symptom>,
    /// Anomalies as they came, window by window (capped).
    pub timeline: Vec<AnomalyEvidence>,
}

/// What a service tried to run and why the kernel refused it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecFailureDetails {
    pub filename: String,
    pub errno: u32,
    pub errno_name: String,
    /// Who tried to start it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ProcessRef>,
    pub workload: WorkloadRef,
}

/// The certificate an endpoint serves, and how long it has left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertificateDetails {
    pub endpoint: String,
    pub subject: String,
    pub issuer: String,
    pub not_after_unix: i64,
    /// `not_after_unix` as a date (UTC).
    pub not_after: String,
    /// Negative once expired.
    pub days_left: f64,
}

/// Who killed a service's main process, and with what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KillDetails {
    pub pid: u32,
    pub comm: String,
    pub signal: u32,
    pub killed_by: ProcessRef,
    pub workload: WorkloadRef,
}

/// A resource reading held past its limit: what, how far, since when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PressureDetails {
    pub workload: EntityId,
    /// The measure, as the workload feature is named (`memory_limit_ratio`,
    /// `throttled_ratio`).
    pub measure: String,
    /// The latest reading and the limit it is judged against, as ratios.
    pub value: f64,
    pub threshold: f64,
    /// When it crossed, and how long it has held since.
    pub since_unix_ns: i64,
    pub held_secs: u64,
    /// The raw numbers behind the ratio, in their units (`memory_working_set_bytes`,
    /// `memory_limit_bytes`, `cpu_throttled_us` …).
    pub readings: BTreeMap<String, f64>,
}

/// An open incident of Vigil's own that an alert is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelatedIncident {
    pub id: IncidentId,
    pub kind: IncidentKind,
    pub title: String,
}

/// What Vigil itself saw on an alert's entity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VigilContext {
    pub related_incidents: Vec<RelatedIncident>,
    /// Kernel events on the entity recently, by kind.
    pub recent_events: BTreeMap<String, u64>,
    /// Everything that transitively depends on it.
    pub dependents: Vec<EntityId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertDetails {
    pub alertname: String,
    /// Fingerprint → still firing, for every alert merged into the incident.
    pub alerts: BTreeMap<String, bool>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// As the source wrote them (RFC 3339).
    pub starts_at: String,
    pub ends_at: String,
    pub generator_url: String,
    pub vigil: VigilContext,
}
