//! Alerts from Alertmanager as incidents: a firing alert opens (or joins) an incident on the
//! workload it names, enriched with what Vigil itself saw there; resolved alerts resolve it
//! once none of its alerts still fire.
//!
//! The alert's labels name the workload in the vocabulary of whoever wrote the rule
//! (`service`, `pod`, `job`, `container`, …); they are matched against the entities Vigil
//! knows (service graph, kernel-event workloads), exactly or by the entity's last path
//! segment, so `service="redis"` finds `cgroup/vigil-lab/redis` or `k8s-svc/shop/redis`.

use std::{collections::BTreeMap, sync::Arc};

use serde::Deserialize;
use serde_json::json;
use tracing::info;

use super::{
    event::StoredEvent,
    incident::{Finding, Incident, IncidentKind, Severity, Stage},
    ingest::now_unix_ns,
    metrics::MetricsService,
};
use crate::ports::{EventQuery, EventStore, IncidentQuery, IncidentStore, StoreError};

/// Alertmanager's webhook body, version 4.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    #[serde(default)]
    pub receiver: String,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: AlertStatus,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    pub starts_at: String,
    #[serde(default)]
    pub ends_at: String,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("unsupported Alertmanager webhook version {0:?}: Vigil reads version \"4\" (Alertmanager ≥ 0.6)")]
    Version(String),
    #[error("alert {index} has an empty fingerprint: Alertmanager always sets one, so this is not its payload")]
    NoFingerprint { index: usize },
    #[error("alert {fingerprint} has startsAt {value:?}, not an RFC 3339 time")]
    BadTime { fingerprint: String, value: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one webhook call did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AlertOutcome {
    pub opened: Vec<i64>,
    pub updated: Vec<i64>,
    pub resolved: Vec<i64>,
}

/// What Vigil itself saw, gathered once per payload.
#[derive(Clone, Copy)]
struct Seen<'a> {
    now: i64,
    recent: &'a [StoredEvent],
    /// Open incidents other than alerts.
    open: &'a [Incident],
}

/// Labels that name a workload, most specific first.
const WORKLOAD_LABELS: &[&str] = &[
    "vigil_entity",
    "workload",
    "service",
    "pod",
    "container",
    "deployment",
    "statefulset",
    "daemonset",
    "app",
    "job",
    "name",
];

pub struct AlertService {
    incidents: Arc<dyn IncidentStore>,
    events: Arc<dyn EventStore>,
    metrics: Arc<MetricsService>,
    /// How far back kernel events count as context for an alert.
    context_ns: i64,
}

/// RFC 3339 (`2026-11-25T03:14:15.123Z`, offsets allowed) to Unix nanoseconds.
fn rfc3339_ns(s: &str) -> Option<i64> {
    let t: jiff::Timestamp = s.parse().ok()?;
    i64::try_from(t.as_nanosecond()).ok()
}

/// The entity an alert is about: an exact id, else the entity whose last path segment is a
/// workload label's value; `alert/<alertname>` when Vigil knows nothing by that name.
pub fn match_entity<'a>(
    labels: &BTreeMap<String, String>,
    known: impl IntoIterator<Item = &'a str> + Clone,
) -> Option<String> {
    for key in WORKLOAD_LABELS {
        let Some(value) = labels.get(*key).filter(|v| !v.is_empty()) else {
            continue;
        };
        if let Some(e) = known.clone().into_iter().find(|e| *e == value) {
            return Some(e.to_string());
        }
        if let Some(e) = known
            .clone()
            .into_iter()
            .find(|e| e.rsplit('/').next() == Some(value.as_str()))
        {
            return Some(e.to_string());
        }
    }
    None
}

impl AlertService {
    pub fn new(
        incidents: Arc<dyn IncidentStore>,
        events: Arc<dyn EventStore>,
        metrics: Arc<MetricsService>,
    ) -> Self {
        Self {
            incidents,
            events,
            metrics,
            context_ns: 15 * 60 * 1_000_000_000,
        }
    }

    /// Checks the whole payload before acting on any of it: nothing is half-applied.
    fn validate(payload: &WebhookPayload) -> Result<Vec<i64>, AlertError> {
        if payload.version != "4" {
            return Err(AlertError::Version(payload.version.clone()));
        }
        payload
            .alerts
            .iter()
            .enumerate()
            .map(|(index, a)| {
                if a.fingerprint.is_empty() {
                    return Err(AlertError::NoFingerprint { index });
                }
                rfc3339_ns(&a.starts_at).ok_or_else(|| AlertError::BadTime {
                    fingerprint: a.fingerprint.clone(),
                    value: a.starts_at.clone(),
                })
            })
            .collect()
    }

    pub fn receive(&self, payload: &WebhookPayload) -> Result<AlertOutcome, AlertError> {
        let starts = Self::validate(payload)?;
        let now = now_unix_ns();
        let graph = self.metrics.snapshot(now);
        let recent = self.events.list_events(&EventQuery {
            since_unix_ns: Some(now - self.context_ns),
            limit: 10_000,
            ..Default::default()
        })?;
        let mut known: Vec<&str> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
        known.extend(recent.iter().map(|e| e.event.workload.key.as_str()));
        // Vigil's own open incidents, the context every alert of the payload is matched to.
        let vigils: Vec<Incident> = self
            .incidents
            .list(&IncidentQuery::open(1000))?
            .into_iter()
            .filter(|i| i.kind != IncidentKind::Alert)
            .collect();
        let seen = Seen {
            now,
            recent: &recent,
            open: &vigils,
        };
        let mut outcome = AlertOutcome::default();
        for (alert, started) in payload.alerts.iter().zip(starts) {
            let name = alert
                .labels
                .get("alertname")
                .cloned()
                .unwrap_or_else(|| "alert".into());
            let entity = match_entity(&alert.labels, known.iter().copied())
                .unwrap_or_else(|| format!("alert/{name}"));
            let node = alert
                .labels
                .get("node")
                .or_else(|| alert.labels.get("instance"))
                .cloned()
                .unwrap_or_default();
            let open = self
                .incidents
                .find_open(IncidentKind::Alert, &node, &entity)?;
            // Fingerprint → firing?, across every alert merged into the incident.
            let mut firing: BTreeMap<String, bool> = open
                .as_ref()
                .and_then(|i| i.attributes.get("alerts"))
                .and_then(|a| serde_json::from_value(a.clone()).ok())
                .unwrap_or_default();
            firing.insert(
                alert.fingerprint.clone(),
                alert.status == AlertStatus::Firing,
            );
            if alert.status == AlertStatus::Resolved && open.is_none() {
                continue;
            }
            let finding = self.finding(alert, &name, &entity, &node, started, &firing, &seen);
            match open {
                Some(incident) => {
                    self.incidents.add_occurrence(incident.id, &finding)?;
                    if firing.values().any(|f| *f) {
                        outcome.updated.push(incident.id);
                    } else {
                        self.incidents.resolve(incident.id, now)?;
                        info!(id = incident.id, alert = %name, "alert resolved: incident resolved");
                        outcome.resolved.push(incident.id);
                    }
                }
                None => {
                    let incident = self.incidents.create(&finding)?;
                    info!(id = incident.id, alert = %name, entity = %entity, "alert opened an incident");
                    outcome.opened.push(incident.id);
                }
            }
        }
        Ok(outcome)
    }

    /// The incident text, with Vigil's evidence about `entity`: its open incidents, recent
    /// kernel events, and what depends on it.
    #[allow(clippy::too_many_arguments)]
    fn finding(
        &self,
        alert: &Alert,
        name: &str,
        entity: &str,
        node: &str,
        started: i64,
        firing: &BTreeMap<String, bool>,
        seen: &Seen,
    ) -> Finding {
        let Seen { now, recent, open } = *seen;
        let related: Vec<_> = open
            .iter()
            .filter(|i| {
                i.workload_key == entity
                    || i.attributes["entities"]
                        .as_array()
                        .is_some_and(|e| e.iter().any(|x| x == entity))
            })
            .map(|i| json!({"id": i.id, "kind": i.kind.as_str(), "title": i.title}))
            .collect();
        let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
        for e in recent.iter().filter(|e| e.event.workload.key == entity) {
            *kinds.entry(e.event.kind.name()).or_default() += 1;
        }
        let dependents = self
            .metrics
            .blast_radius(entity, now)
            .map(|b| b.dependents)
            .unwrap_or_default();
        let severity = match alert.labels.get("severity").map(String::as_str) {
            Some("critical" | "page" | "error") => Severity::Critical,
            _ => Severity::Warning,
        };
        let summary = alert
            .annotations
            .get("summary")
            .or_else(|| alert.annotations.get("description"))
            .cloned()
            .unwrap_or_default();
        let evidence_note = if related.is_empty() && kinds.is_empty() {
            "Vigil saw nothing on it".to_string()
        } else {
            format!(
                "Vigil saw {} open incident(s) and {} kernel event(s) on it",
                related.len(),
                kinds.values().sum::<u64>()
            )
        };
        let stages = [
            Stage::new("detect", started, now)
                .with("source", "alertmanager")
                .with("alertname", name),
            Stage::new("localize", now, now_unix_ns())
                .with("method", "alert labels matched to Vigil's entities")
                .with("root_cause", entity),
        ];
        Finding {
            kind: IncidentKind::Alert,
            severity,
            node: node.to_string(),
            workload_key: entity.to_string(),
            title: format!("Alert {name} on {entity}"),
            summary: format!(
                "{summary}{}{evidence_note}",
                if summary.is_empty() { "" } else { ". " }
            ),
            time_unix_ns: now,
            evidence: Vec::new(),
            attributes: json!({
                "alertname": name,
                "alerts": firing,
                "labels": alert.labels,
                "annotations": alert.annotations,
                "starts_at": alert.starts_at,
                "ends_at": alert.ends_at,
                "generator_url": alert.generator_url,
                "vigil": {
                    "related_incidents": related,
                    "recent_events": kinds,
                    "dependents": dependents,
                },
            }),
        }
        .with_stages(&stages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        assert_eq!(rfc3339_ns("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
        assert_eq!(
            rfc3339_ns("1970-01-01T01:00:00+01:00"),
            Some(0),
            "offsets are honoured"
        );
        assert_eq!(rfc3339_ns("yesterday"), None);
    }

    #[test]
    fn labels_match_entities_exactly_or_by_last_segment() {
        let known = ["cgroup/vigil-lab/redis", "k8s-svc/shop/cart", "host"];
        let l = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            match_entity(&l(&[("service", "redis")]), known.iter().copied()).as_deref(),
            Some("cgroup/vigil-lab/redis")
        );
        assert_eq!(
            match_entity(
                &l(&[("job", "cart"), ("vigil_entity", "host")]),
                known.iter().copied()
            )
            .as_deref(),
            Some("host"),
            "the explicit label wins"
        );
        assert_eq!(
            match_entity(&l(&[("service", "edis")]), known.iter().copied()),
            None
        );
    }
}
