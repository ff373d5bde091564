//! The controller for IncidentReports that others create (a person with kubectl, a chat bot,
//! another tool): Vigil takes the report as an incident on its target, enriched like an
//! alert, and answers in the report's status; it keeps the status in step with the incident
//! (resolution). kube-runtime's Controller drives it: reconcile, error policy, requeues.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use kube::{
    runtime::{controller::Action, watcher, Controller},
    Api, Resource, ResourceExt,
};
use serde_json::json;
use tracing::{info, warn};

use super::{
    leader::Leadership,
    mirror::report_status,
    report::{apply_status, phase, IncidentReport, INCIDENT_LABEL},
};
use crate::{
    domain::alerts::{Alert, AlertError, AlertService, AlertStatus, WebhookPayload},
    ports::{IncidentStore, StoreError},
};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("the report has no namespace or name")]
    Unnamed,
    #[error(transparent)]
    Alert(#[from] AlertError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the report's status: {0}")]
    Kube(#[from] kube::Error),
    #[error("reconcile task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

pub struct Context {
    pub api: Api<IncidentReport>,
    pub alerts: Arc<AlertService>,
    pub incidents: Arc<dyn IncidentStore>,
    pub leadership: Leadership,
    /// Failures in a row, by report: the retry delay doubles with each.
    pub failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        api: Api<IncidentReport>,
        alerts: Arc<AlertService>,
        incidents: Arc<dyn IncidentStore>,
        leadership: Leadership,
    ) -> Self {
        Self {
            api,
            alerts,
            incidents,
            leadership,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Retry delay after `failures` failures in a row: 2 s doubling, at most 5 min.
pub fn backoff(failures: u32) -> Duration {
    let secs = 2u64.saturating_mul(1u64 << failures.saturating_sub(1).min(16));
    Duration::from_secs(secs.min(300))
}

/// How often a linked report's status is compared with its incident.
const RESYNC: Duration = Duration::from_secs(15);
/// How soon a follower looks again (it costs no API call): a new leader picks reports up
/// within this.
const FOLLOWER_RETRY: Duration = Duration::from_secs(2);

/// Vigil's own reports are written by the mirror, not reconciled.
fn is_vigils(report: &IncidentReport) -> bool {
    report.labels().contains_key(INCIDENT_LABEL) || report.spec.source == "vigil"
}

/// A report handed to Vigil, as the alert it amounts to.
fn as_alert(report: &IncidentReport, ns: &str, name: &str) -> WebhookPayload {
    let mut labels = BTreeMap::from([
        ("alertname".to_string(), name.to_string()),
        ("severity".to_string(), report.spec.severity.clone()),
        ("vigil_report".to_string(), format!("{ns}/{name}")),
    ]);
    if !report.spec.target.is_empty() {
        labels.insert("vigil_entity".into(), report.spec.target.clone());
    }
    if !report.spec.node.is_empty() {
        labels.insert("node".into(), report.spec.node.clone());
    }
    let started = report
        .meta()
        .creation_timestamp
        .as_ref()
        .map_or_else(|| jiff::Timestamp::now().to_string(), |t| t.0.to_string());
    WebhookPayload {
        version: "4".into(),
        group_key: String::new(),
        receiver: "incidentreport".into(),
        alerts: vec![Alert {
            status: AlertStatus::Firing,
            labels,
            annotations: BTreeMap::from([
                ("summary".to_string(), report.spec.title.clone()),
                ("description".to_string(), report.spec.summary.clone()),
            ]),
            starts_at: started,
            ends_at: String::new(),
            generator_url: String::new(),
            fingerprint: report.uid().unwrap_or_else(|| format!("{ns}/{name}")),
        }],
    }
}

pub async fn reconcile(
    report: Arc<IncidentReport>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let action = reconcile_report(&report, &ctx).await?;
    ctx.failures().remove(&report.name_any());
    Ok(action)
}

async fn reconcile_report(
    report: &IncidentReport,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    if is_vigils(report) {
        return Ok(Action::await_change());
    }
    if !ctx.leadership.is_leader() {
        return Ok(Action::requeue(FOLLOWER_RETRY));
    }
    let (Some(ns), name) = (report.namespace(), report.name_any()) else {
        return Err(ReconcileError::Unnamed);
    };
    if report.spec.title.trim().is_empty() {
        apply_status(
            &ctx.api,
            &name,
            &json!({"phase": "Invalid", "message": "spec.title is empty: say what went wrong", "actions": []}),
        )
        .await?;
        return Ok(Action::await_change());
    }
    let linked = report.status.as_ref().and_then(|s| s.incident_id);
    let id = match linked {
        Some(id) => Some(id),
        None => {
            let payload = as_alert(report, &ns, &name);
            let alerts = ctx.alerts.clone();
            let outcome = tokio::task::spawn_blocking(move || alerts.receive(&payload)).await??;
            outcome.opened.first().or(outcome.updated.first()).copied()
        }
    };
    let store = ctx.incidents.clone();
    let incident = match id {
        Some(id) => tokio::task::spawn_blocking(move || store.get(id)).await??,
        None => None,
    };
    let Some(incident) = incident else {
        return Ok(Action::requeue(RESYNC));
    };
    if linked.is_none() {
        info!(report = %name, incident = incident.id, "IncidentReport taken as an incident");
    }
    let current = report.status.as_ref();
    let phase = phase(incident.status);
    if current.map(|s| (s.phase.as_str(), s.incident_id)) != Some((phase, Some(incident.id))) {
        apply_status(&ctx.api, &name, &report_status(&incident)).await?;
    }
    Ok(Action::requeue(RESYNC))
}

pub fn error_policy(
    report: Arc<IncidentReport>,
    error: &ReconcileError,
    _: Arc<Context>,
) -> Action {
    warn!(report = %report.name_any(), %error, "reconciling an IncidentReport failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the controller until the stream ends.
pub async fn run(ctx: Context) {
    let api = ctx.api.clone();
    Controller::new(api, watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(ctx))
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "IncidentReport controller");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn retries_back_off_exponentially_up_to_five_minutes() {
        let secs: Vec<u64> = [1, 2, 3, 4, 8, 9, 40]
            .map(|n| backoff(n).as_secs())
            .to_vec();
        assert_eq!(secs, [2, 4, 8, 16, 256, 300, 300]);
        assert_eq!(backoff(0), Duration::from_secs(2));
    }
}
