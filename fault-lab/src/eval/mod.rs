//! Measuring a run: what Vigil detected, how fast, whether it named the right fault and the
//! right target, and how long the path took to be healthy again.

pub mod acting;
pub mod cases;
pub mod report;
pub mod runner;
pub mod vigil;

use serde::{Deserialize, Serialize};

use crate::scenarios::FaultClass;

/// The incident Vigil opened for a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Detection {
    pub incident_id: i64,
    pub kind: String,
    pub workload_key: String,
    pub title: String,
    /// When it was opened, or reopened, for this run.
    pub opened_unix_ms: u64,
    /// Opened for this run (rather than reopened after it had resolved).
    #[serde(default = "opened_anew")]
    pub new: bool,
    /// `critical` or `warning`.
    #[serde(default)]
    pub severity: String,
}

fn opened_anew() -> bool {
    true
}

/// What the fault did to the end-to-end path while it was in (requests through nginx).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Impact {
    pub requests: u32,
    pub failures: u32,
    pub p50_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

/// One scenario run: one JSON record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub scenario: String,
    pub class: FaultClass,
    pub target: String,
    pub intensity: f64,
    pub duration_ms: u64,
    pub injected_unix_ms: u64,
    pub teardown_unix_ms: u64,
    /// End-to-end requests during the fault, against `baseline_ms`.
    pub impact: Impact,
    /// Requests straight to the target when it serves HTTP (an app replica): nginx retries
    /// the other replica, so a replica's own failure may not show end to end.
    pub target_impact: Option<Impact>,
    pub baseline_ms: f64,
    /// The incident judged for the run (see the runner).
    pub detection: Option<Detection>,
    /// Other incidents the run claimed (opened or reopened in its window).
    #[serde(default)]
    pub also: Vec<Detection>,
    /// Fault start → incident open (one clock: the control plane's and the lab's are the
    /// same host clock).
    pub detection_latency_ms: Option<u64>,
    /// The fault class Vigil's diagnosis names, if it names one.
    pub diagnosed_class: Option<FaultClass>,
    /// The diagnosis's confidence and route (`remediation`, or `review` below the gate).
    #[serde(default)]
    pub diagnosis: Option<vigil::Diagnosed>,
    pub classification_correct: bool,
    /// The service Vigil's top-1 root cause points at.
    pub localized: Option<String>,
    pub localization_correct: bool,
    pub expected_action: String,
    /// What Vigil's remediation chose (its playbook's first action for the judged incident).
    pub action: Option<String>,
    /// What became of it (with the default observe phase: logged, never run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen: Option<vigil::Chosen>,
    pub remediation_correct: bool,
    /// Teardown (the lab's own undo of the fault) → healthy end to end.
    pub recovery_ms: Option<u64>,
    /// Injection → the target and the end-to-end path serving again after Vigil's own
    /// action, with the fault still in, for an action its verifier judged recovered; `None`
    /// when no action of Vigil's ran, or it did not bring the target back.
    #[serde(default)]
    pub recovered_by_vigil_ms: Option<u64>,
    pub error: Option<String>,
}
