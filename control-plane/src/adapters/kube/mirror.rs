//! Vigil's incidents mirrored into `IncidentReport` objects by server-side apply: the spec
//! and the status subresource each under the `vigil-control-plane` field manager, so what
//! others add to a report is left alone. The status carries the latest diagnosis (class,
//! confidence, route, why, what to do, what it cited) once one is made, and every step of
//! its remediation actions. A report someone else handed Vigil gets the same status (its
//! spec stays theirs). Writes leave the ingest path through a bounded queue and are retried
//! with backoff; only the leader writes.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
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
    book::ReportBook,
    leader::Leadership,
    report::{apply_status, IncidentReport, FIELD_MANAGER, INCIDENT_LABEL},
    status::Verdict,
};
use crate::domain::{
    clock::{Clock, SystemClock},
    diagnose::Diagnosis,
    incident::{ports::IncidentChange, Details, Incident, IncidentId},
    observe::Observer,
    remediate::ActionRecord,
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

/// The label that marks an incident taken from someone else's report (`<ns>/<name>`).
pub const REPORT_LABEL: &str = "vigil_report";

/// The name of the report someone else handed Vigil this incident with (see `reconcile`),
/// in the mirror's namespace; `None` for Vigil's own incidents.
pub fn handed_report(incident: &Incident) -> Option<String> {
    match incident.details() {
        Details::Alert(a) => a.labels.get(REPORT_LABEL).map(|r| {
            r.rsplit_once('/')
                .map_or(r.as_str(), |(_, n)| n)
                .to_string()
        }),
        _ => None,
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

/// Which report a write goes to: Vigil's own (spec and status), or the one someone else
/// handed Vigil the incident with (status only: the spec is theirs).
enum Report {
    Own,
    Handed(String),
}

struct Write {
    report: Report,
    incident: Incident,
    status: serde_json::Value,
}

pub struct KubeMirror {
    queue: mpsc::Sender<Write>,
    book: Arc<ReportBook>,
    dropped: AtomicU64,
}

impl KubeMirror {
    /// Starts the writer task; it stops when the mirror is dropped.
    pub fn start(api: Api<IncidentReport>, leadership: Leadership, book: ReportBook) -> Self {
        let (queue, mut rx) = mpsc::channel::<Write>(QUEUE);
        tokio::spawn(async move {
            while let Some(w) = rx.recv().await {
                if !leadership.is_leader() {
                    debug!(
                        id = %w.incident.id,
                        "not the leader: IncidentReport left to the leader"
                    );
                    continue;
                }
                write(&api, &w).await;
            }
        });
        Self {
            queue,
            book: Arc::new(book),
            dropped: AtomicU64::new(0),
        }
    }

    /// What the reports' statuses are composed from, shared with the reconciler.
    pub fn book(&self) -> Arc<ReportBook> {
        self.book.clone()
    }

    fn enqueue(&self, incident: &Incident) {
        let report = match handed_report(incident) {
            Some(name) => Report::Handed(name),
            None => Report::Own,
        };
        let status = self.book.status(incident);
        let w = Write {
            report,
            incident: incident.clone(),
            status,
        };
        if self.queue.try_send(w).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            warn!(
                id = %incident.id,
                dropped_total = n,
                "IncidentReport queue full: this change is not mirrored"
            );
        }
    }
}

async fn write(api: &Api<IncidentReport>, w: &Write) {
    let (name, object) = match &w.report {
        Report::Own => (report_name(w.incident.id), Some(report_object(&w.incident))),
        Report::Handed(name) => (name.clone(), None),
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut attempt = 0;
    loop {
        let spec = match &object {
            Some(o) => api
                .patch(&name, &params, &Patch::Apply(o))
                .await
                .map(|_| ()),
            None => Ok(()),
        };
        let result = match spec {
            Ok(()) => apply_status(api, &name, &w.status).await,
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
        self.book.incident(incident);
        self.enqueue(incident);
    }

    fn diagnosed(&self, incident: &Incident, diagnosis: &Diagnosis, _took_secs: f64) {
        self.book.verdict(incident, Verdict::from(diagnosis));
        self.enqueue(incident);
    }

    fn action(&self, record: &ActionRecord) {
        if let Some(incident) = self.book.action(record, SystemClock.now_unix_ns()) {
            self.enqueue(&incident);
        }
    }
}
