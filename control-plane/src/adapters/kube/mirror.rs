//! Vigil's incidents mirrored into `IncidentReport` objects by server-side apply: the spec
//! and the status subresource each under the `vigil-control-plane` field manager, so what
//! others add to a report is left alone. The status carries the latest diagnosis (class,
//! confidence, route, why, what to do) once one is made. Writes leave the ingest path
//! through a bounded queue and are retried with backoff; only the leader writes.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::Duration,
};

use kube::{
    api::{Patch, PatchParams},
    Api, Resource,
};
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{
    leader::Leadership,
    report::{apply_status, phase, IncidentReport, FIELD_MANAGER, INCIDENT_LABEL},
};
use crate::domain::{
    diagnose::Diagnosis,
    incident::{ports::IncidentChange, Details, Incident, IncidentId, IncidentKind},
    observe::Observer,
};

/// Changes waiting to be written; beyond this the newest are dropped (and counted).
const QUEUE: usize = 4096;
const RETRIES: [Duration; 3] = [
    Duration::from_millis(200),
    Duration::from_secs(1),
    Duration::from_secs(5),
];

/// The report's object name for an incident.
pub fn report_name(incident_id: IncidentId) -> String {
    format!("vigil-incident-{incident_id}")
}

fn rfc3339(unix_ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(unix_ns))
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The label that marks an incident taken from someone else's report (`<ns>/<name>`).
pub const REPORT_LABEL: &str = "vigil_report";

/// Reports handed to Vigil by others are their own mirror (see `reconcile`).
pub fn from_report(incident: &Incident) -> bool {
    matches!(incident.details(), Details::Alert(a) if a.labels.contains_key(REPORT_LABEL))
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

/// The report object Vigil applies for an incident (its spec; the status goes separately).
fn report_object(incident: &Incident) -> serde_json::Value {
    json!({
        "apiVersion": IncidentReport::api_version(&()),
        "kind": IncidentReport::kind(&()),
        "metadata": {
            "name": report_name(incident.id),
            "labels": {
                INCIDENT_LABEL: incident.id.to_string(),
                "app.kubernetes.io/managed-by": "vigil",
            },
        },
        "spec": {
            "title": incident.title,
            "summary": incident.summary,
            "severity": incident.severity.as_str(),
            "target": incident.workload_key,
            "node": incident.node,
            "source": "vigil",
        },
    })
}

/// What a report's status says of a diagnosis.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub class: Option<&'static str>,
    pub confidence: f64,
    pub route: &'static str,
    pub explanation: String,
    pub recommended_actions: Vec<String>,
}

impl From<&Diagnosis> for Verdict {
    fn from(d: &Diagnosis) -> Self {
        Self {
            class: d.class.map(|c| c.id()),
            confidence: d.confidence,
            route: d.route.as_str(),
            explanation: d.explanation.clone(),
            recommended_actions: d.recommended_actions.clone(),
        }
    }
}

/// What a report's status says of its incident and, once made, its diagnosis. Every field
/// Vigil owns is in every write: a server-side apply drops the fields it leaves out.
pub fn report_status(incident: &Incident, verdict: Option<&Verdict>) -> serde_json::Value {
    let mut status = json!({
        "phase": phase(incident.status),
        "incidentId": incident.id,
        "faultClass": verdict.and_then(|v| v.class).unwrap_or(incident.kind.as_str()),
        "incidentKind": incident.kind.as_str(),
        "rootCause": incident.workload_key,
        "actions": [],
        "message": incident.summary,
        "openedAt": rfc3339(incident.opened_unix_ns),
    });
    match verdict {
        Some(v) => {
            status["confidence"] = json!(v.confidence);
            status["route"] = json!(v.route);
            status["diagnosis"] = json!(v.explanation);
            status["recommendedActions"] = json!(v.recommended_actions);
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

/// Latest verdicts kept for the status writes; past this many the map starts over (a
/// verdict lost so is written again at the incident's next diagnosis).
const MAX_VERDICTS: usize = 10_000;

type Write = (Incident, Option<Verdict>);

pub struct KubeMirror {
    queue: mpsc::Sender<Write>,
    verdicts: Mutex<HashMap<IncidentId, Verdict>>,
    dropped: AtomicU64,
}

impl KubeMirror {
    /// Starts the writer task; it stops when the mirror is dropped.
    pub fn start(api: Api<IncidentReport>, leadership: Leadership) -> Self {
        let (queue, mut rx) = mpsc::channel::<Write>(QUEUE);
        tokio::spawn(async move {
            while let Some((incident, verdict)) = rx.recv().await {
                if !leadership.is_leader() {
                    debug!(
                        id = %incident.id,
                        "not the leader: IncidentReport left to the leader"
                    );
                    continue;
                }
                write(&api, &incident, verdict.as_ref()).await;
            }
        });
        Self {
            queue,
            verdicts: Mutex::new(HashMap::new()),
            dropped: AtomicU64::new(0),
        }
    }

    fn lock_verdicts(&self) -> std::sync::MutexGuard<'_, HashMap<IncidentId, Verdict>> {
        self.verdicts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn enqueue(&self, incident: &Incident, verdict: Option<Verdict>) {
        if self.queue.try_send((incident.clone(), verdict)).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            warn!(
                id = %incident.id,
                dropped_total = n,
                "IncidentReport queue full: this change is not mirrored"
            );
        }
    }
}

async fn write(api: &Api<IncidentReport>, incident: &Incident, verdict: Option<&Verdict>) {
    let name = report_name(incident.id);
    let (object, status) = (report_object(incident), report_status(incident, verdict));
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut attempt = 0;
    loop {
        let result = match api.patch(&name, &params, &Patch::Apply(&object)).await {
            Ok(_) => apply_status(api, &name, &status).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => return,
            Err(e) if attempt < RETRIES.len() => {
                debug!(%name, error = %e, "writing the IncidentReport failed; retrying");
                tokio::time::sleep(RETRIES[attempt]).await;
                attempt += 1;
            }
            Err(e) => {
                warn!(%name, error = %e, "cannot write the IncidentReport (is the CRD installed? `vigil crdgen | kubectl apply -f -`; RBAC: patch incidentreports and incidentreports/status)");
                return;
            }
        }
    }
}

impl Observer for KubeMirror {
    fn incident(&self, change: &IncidentChange) {
        let incident = change.incident();
        if from_report(incident) {
            return;
        }
        let verdict = self.lock_verdicts().get(&incident.id).cloned();
        self.enqueue(incident, verdict);
    }

    fn diagnosed(&self, incident: &Incident, diagnosis: &Diagnosis, _took_secs: f64) {
        if from_report(incident) {
            return;
        }
        let verdict = Verdict::from(diagnosis);
        {
            let mut verdicts = self.lock_verdicts();
            if verdicts.len() >= MAX_VERDICTS {
                verdicts.clear();
            }
            verdicts.insert(incident.id, verdict.clone());
        }
        self.enqueue(incident, Some(verdict));
    }
}
