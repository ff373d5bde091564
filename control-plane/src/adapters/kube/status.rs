//! What an IncidentReport's status says: the incident (phase, kind, root cause, when), the
//! latest diagnosis once made (class, confidence, route, why, what to do, what it cited), and
//! the steps of its remediation actions.

use serde_json::json;

use super::report::phase;
use crate::domain::{
    diagnose::Diagnosis,
    incident::{Details, Incident, IncidentKind},
};

pub fn rfc3339(unix_ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(unix_ns))
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// How sure Vigil is of the root cause: the ranking's top score for anomalies, certain for
/// the kernel's own attribution, unknown for someone else's alert.
fn confidence(incident: &Incident) -> Option<f64> {
    match incident.kind {
        // The kernel's own attribution, and the workload's own cgroup files.
        IncidentKind::OomKill
        | IncidentKind::CrashLoop
        | IncidentKind::MemoryPressure
        | IncidentKind::CpuThrottling
        | IncidentKind::ProcessKilled
        | IncidentKind::CertificateExpiry
        | IncidentKind::ExecFailure
        | IncidentKind::DiskPressure => Some(1.0),
        IncidentKind::ServiceAnomaly => match incident.details() {
            Details::ServiceAnomaly(a) => a.root_causes.first().map(|r| r.score),
            _ => None,
        },
        IncidentKind::Alert => None,
    }
}

/// What a report's status says of a diagnosis.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub class: Option<&'static str>,
    pub confidence: f64,
    pub route: &'static str,
    pub explanation: String,
    pub recommended_actions: Vec<String>,
    /// The runbooks and postmortems the diagnosis drew on.
    pub citations: Vec<serde_json::Value>,
}

impl From<&Diagnosis> for Verdict {
    fn from(d: &Diagnosis) -> Self {
        Self {
            class: d.class.map(|c| c.id()),
            confidence: d.confidence,
            route: d.route.as_str(),
            explanation: d.explanation.clone(),
            recommended_actions: d.recommended_actions.clone(),
            citations: d
                .citations
                .iter()
                .map(|c| json!({"id": c.id, "title": c.title, "kind": c.kind}))
                .collect(),
        }
    }
}

/// What a report's status says of its incident, once made its diagnosis, and the steps of
/// its actions (`book`). Every field Vigil owns is in every write: a server-side apply drops
/// the fields it leaves out.
pub fn report_status(
    incident: &Incident,
    verdict: Option<&Verdict>,
    steps: &[serde_json::Value],
) -> serde_json::Value {
    let mut status = json!({
        "phase": phase(incident.status),
        "incidentId": incident.id,
        "faultClass": verdict.and_then(|v| v.class).unwrap_or(incident.kind.as_str()),
        "incidentKind": incident.kind.as_str(),
        "rootCause": incident.workload_key,
        "actions": steps,
        "message": incident.summary,
        "openedAt": rfc3339(incident.opened_unix_ns),
    });
    match verdict {
        Some(v) => {
            status["confidence"] = json!(v.confidence);
            status["route"] = json!(v.route);
            status["diagnosis"] = json!(v.explanation);
            status["recommendedActions"] = json!(v.recommended_actions);
            status["citations"] = json!(v.citations);
        }
        None => {
            if let Some(c) = confidence(incident) {
                status["confidence"] = json!(c);
            }
        }
    }
    if let Some(t) = incident.resolved_unix_ns {
        status["resolvedAt"] = json!(rfc3339(t));
    }
    status
}
