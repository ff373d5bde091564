//! The controller for IncidentReports that others create (a person with kubectl, a chat bot,
//! another tool): Vigil takes the report as an incident on its target, enriched like an
//! alert, and answers in the report's status; it keeps the status in step with the incident
//! (resolution). kube-runtime's Controller drives it: reconcile, error policy, requeues.
//!
//! A failing reconcile is retried per report with exponential backoff (2 s doubling, at most
//! 5 min by default); a success resets that report's count.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use futures::StreamExt;
use kube::{
    runtime::{controller::Action, watcher, Controller},
    Api, Resource, ResourceExt,
};
use serde_json::json;
use tracing::{info, instrument, warn};

use super::{
    book::ReportBook,
    leader::Leadership,
    mirror::REPORT_LABEL,
    report::{apply_status, phase, IncidentReport, INCIDENT_LABEL},
};
use vigil_config_file::error_chain as chain;

use crate::{
    adapters::alertmanager::rfc3339_ns,
    domain::{
        alerts::{AlertError, AlertService, AlertSource, ExternalAlert},
        clock::Clock,
        incident::{ports::IncidentStore, IncidentId},
        store::StoreError,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("the report has no namespace or name")]
    Unnamed,
    #[error("taking the report as an incident")]
    Alert(#[from] AlertError),
    #[error("reading its incident")]
    Store(#[from] StoreError),
    #[error("writing the report's status")]
    Kube(#[from] kube::Error),
    #[error("the reconcile task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// Retry delays after failures: `base` doubling per failure in a row, at most `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The delay after `failures` failures in a row (the first failure waits `base`).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// How often a linked report's status is compared with its incident.
const RESYNC: Duration = Duration::from_secs(15);
/// How soon a follower looks again (it costs no API call): a new leader picks reports up
/// within this.
const FOLLOWER_RETRY: Duration = Duration::from_secs(2);

pub struct Context {
    pub api: Api<IncidentReport>,
    pub alerts: Arc<AlertService>,
    pub incidents: Arc<dyn IncidentStore>,
    pub leadership: Leadership,
    pub clock: Arc<dyn Clock>,
    pub backoff: Backoff,
    /// How often a linked report is compared with its incident.
    pub resync: Duration,
    /// What a report's status holds beyond its incident (the mirror's, shared in a cluster).
    pub book: Arc<ReportBook>,
    /// Failures in a row, by report: the retry delay doubles with each.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        api: Api<IncidentReport>,
        alerts: Arc<AlertService>,
        incidents: Arc<dyn IncidentStore>,
        leadership: Leadership,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            api,
            alerts,
            incidents,
            leadership,
            clock,
            backoff: Backoff::default(),
            resync: RESYNC,
            book: Arc::new(ReportBook::default()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn failures(&self) -> MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Failures in a row of the report named `name` (0 after a success).
    pub fn failures_of(&self, name: &str) -> u32 {
        self.failures().get(name).copied().unwrap_or(0)
    }

    /// Counts a failure of `name`; returns how long to wait before retrying it.
    fn failed(&self, name: &str) -> Duration {
        let mut failures = self.failures();
        let n = failures.entry(name.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        self.backoff.delay(*n)
    }
}

/// Vigil's own reports are written by the mirror, not reconciled.
fn is_vigils(report: &IncidentReport) -> bool {
    report.labels().contains_key(INCIDENT_LABEL) || report.spec.source == "vigil"
}

/// A report handed to Vigil, as the alert it amounts to.
pub fn as_alert(report: &IncidentReport, ns: &str, name: &str, now_unix_ns: i64) -> ExternalAlert {
    let mut labels = BTreeMap::from([
        ("alertname".to_string(), name.to_string()),
        ("severity".to_string(), report.spec.severity.clone()),
        (REPORT_LABEL.to_string(), format!("{ns}/{name}")),
    ]);
    if !report.spec.target.is_empty() {
        labels.insert("vigil_entity".into(), report.spec.target.clone());
    }
    if !report.spec.node.is_empty() {
        labels.insert("node".into(), report.spec.node.clone());
    }
    let created = report
        .meta()
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string());
    let starts_unix_ns = created
        .as_deref()
        .and_then(rfc3339_ns)
        .unwrap_or(now_unix_ns);
    ExternalAlert {
        source: AlertSource::IncidentReport,
        fingerprint: report.uid().unwrap_or_else(|| format!("{ns}/{name}")),
        firing: true,
        labels,
        annotations: BTreeMap::from([
            ("summary".to_string(), report.spec.title.clone()),
            ("description".to_string(), report.spec.summary.clone()),
        ]),
        starts_unix_ns,
        starts_at: created.unwrap_or_default(),
        ends_at: String::new(),
        generator_url: String::new(),
    }
}

#[instrument(skip_all, fields(report = %report.name_any()))]
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
    let linked = report
        .status
        .as_ref()
        .and_then(|s| s.incident_id)
        .map(IncidentId);
    let id = match linked {
        Some(id) => Some(id),
        None => {
            let alert = as_alert(report, &ns, &name, ctx.clock.now_unix_ns());
            let alerts = ctx.alerts.clone();
            let outcome = tokio::task::spawn_blocking(move || alerts.receive(&[alert])).await??;
            outcome.opened.first().or(outcome.updated.first()).copied()
        }
    };
    let store = ctx.incidents.clone();
    let incident = match id {
        Some(id) => tokio::task::spawn_blocking(move || store.get(id)).await??,
        None => None,
    };
    let Some(incident) = incident else {
        return Ok(Action::requeue(ctx.resync));
    };
    if linked.is_none() {
        info!(report = %name, incident = %incident.id, "IncidentReport taken as an incident");
    }
    let current = report.status.as_ref();
    let phase = phase(incident.status);
    if current.map(|s| (s.phase.as_str(), s.incident_id)) != Some((phase, Some(incident.id.0))) {
        apply_status(&ctx.api, &name, &ctx.book.status(&incident)).await?;
    }
    Ok(Action::requeue(ctx.resync))
}

/// A failed reconcile is retried after this report's backoff, which grows with each failure
/// in a row (a success resets it, in `reconcile`).
pub fn error_policy(
    report: Arc<IncidentReport>,
    error: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    let name = report.name_any();
    let delay = ctx.failed(&name);
    let error = chain(error);
    warn!(report = %name, %error, retry_in_ms = delay.as_millis() as u64, "reconciling an IncidentReport failed; retrying");
    Action::requeue(delay)
}

/// Runs the controller until the stream ends.
pub async fn run(ctx: Arc<Context>) {
    let api = ctx.api.clone();
    Controller::new(api, watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                let error = chain(&e);
                warn!(%error, "IncidentReport controller");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::Backoff;
    use std::time::Duration;

    #[test]
    fn retries_back_off_exponentially_up_to_five_minutes() {
        let b = Backoff::default();
        let secs: Vec<u64> = [1, 2, 3, 4, 8, 9, 40]
            .map(|n| b.delay(n).as_secs())
            .to_vec();
        assert_eq!(secs, [2, 4, 8, 16, 256, 300, 300]);
        assert_eq!(b.delay(0), Duration::from_secs(2));
    }
}
