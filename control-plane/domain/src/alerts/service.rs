//! The alerts use case: a delivery of alerts opens, joins or resolves incidents, each enriched
//! with what Vigil itself saw on the alert's entity.

use std::{collections::BTreeMap, sync::Arc};

use tracing::{info, instrument};

use super::{
    matching::match_entity,
    model::{AlertOutcome, ExternalAlert},
};
use crate::{
    clock::Clock,
    entity::EntityId,
    event::{
        ports::{EventQuery, EventStore},
        StoredEvent,
    },
    graph::LiveGraph,
    incident::{
        details::{AlertDetails, RelatedIncident, VigilContext},
        ports::{IncidentQuery, IncidentStore},
        Details, Finding, Incident, IncidentKind, Severity, Stage,
    },
    store::StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("alert {index} has an empty fingerprint: without one its resolution cannot find it")]
    NoFingerprint { index: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What Vigil itself saw, gathered once per delivery.
#[derive(Clone, Copy)]
struct Seen<'a> {
    now: i64,
    recent: &'a [StoredEvent],
    /// Open incidents other than alerts.
    open: &'a [Incident],
}

pub struct AlertService {
    incidents: Arc<dyn IncidentStore>,
    events: Arc<dyn EventStore>,
    graph: Arc<LiveGraph>,
    clock: Arc<dyn Clock>,
    /// How far back kernel events count as context for an alert.
    context_ns: i64,
}

impl AlertService {
    pub fn new(
        incidents: Arc<dyn IncidentStore>,
        events: Arc<dyn EventStore>,
        graph: Arc<LiveGraph>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            incidents,
            events,
            graph,
            clock,
            context_ns: 15 * 60 * 1_000_000_000,
        }
    }

    /// Applies one delivery. Checks every alert before acting on any: nothing is half-applied.
    #[instrument(skip_all, fields(alerts = alerts.len()))]
    pub fn receive(&self, alerts: &[ExternalAlert]) -> Result<AlertOutcome, AlertError> {
        if let Some(index) = alerts.iter().position(|a| a.fingerprint.is_empty()) {
            return Err(AlertError::NoFingerprint { index });
        }
        let now = self.clock.now_unix_ns();
        let graph = self.graph.snapshot(now);
        let recent = self.events.list_events(&EventQuery {
            since_unix_ns: Some(now - self.context_ns),
            until_unix_ns: None,
            limit: 10_000,
            ..Default::default()
        })?;
        let mut known: Vec<&EntityId> = graph.nodes.iter().map(|n| &n.id).collect();
        known.extend(recent.iter().map(|e| &e.event.workload.key));
        // Vigil's own open incidents, the context every alert of the delivery is matched to.
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
        for alert in alerts {
            let name = alert
                .labels
                .get("alertname")
                .cloned()
                .unwrap_or_else(|| "alert".into());
            let entity = match_entity(&alert.labels, known.iter().copied())
                .unwrap_or_else(|| EntityId::new(format!("alert/{name}")));
            let node = alert
                .labels
                .get("node")
                .or_else(|| alert.labels.get("instance"))
                .cloned()
                .unwrap_or_default();
            let open = self
                .incidents
                .find_open(IncidentKind::Alert, &node, entity.as_str())?;
            // Fingerprint → firing?, across every alert merged into the incident.
            let mut firing: BTreeMap<String, bool> = match open.as_ref().map(Incident::details) {
                Some(Details::Alert(a)) => a.alerts.clone(),
                _ => BTreeMap::new(),
            };
            firing.insert(alert.fingerprint.clone(), alert.firing);
            if !alert.firing && open.is_none() {
                continue;
            }
            let finding = self.finding(alert, &name, &entity, &node, firing.clone(), &seen);
            match open {
                Some(incident) => {
                    self.incidents.add_occurrence(incident.id, &finding)?;
                    if firing.values().any(|f| *f) {
                        outcome.updated.push(incident.id);
                    } else {
                        self.incidents.resolve(incident.id, now)?;
                        info!(id = %incident.id, alert = %name, "alert resolved: incident resolved");
                        outcome.resolved.push(incident.id);
                    }
                }
                None => {
                    let incident = self.incidents.create(&finding)?;
                    info!(id = %incident.id, alert = %name, entity = %entity, "alert opened an incident");
                    outcome.opened.push(incident.id);
                }
            }
        }
        Ok(outcome)
    }

    /// The incident text, with Vigil's evidence about `entity`: its open incidents, recent
    /// kernel events, and what depends on it.
    fn finding(
        &self,
        alert: &ExternalAlert,
        name: &str,
        entity: &EntityId,
        node: &str,
        firing: BTreeMap<String, bool>,
        seen: &Seen,
    ) -> Finding {
        let Seen { now, recent, open } = *seen;
        let related: Vec<RelatedIncident> = open
            .iter()
            .filter(|i| i.workload_key == *entity || i.details().covers(entity))
            .map(|i| RelatedIncident {
                id: i.id,
                kind: i.kind,
                title: i.title.clone(),
            })
            .collect();
        let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
        for e in recent.iter().filter(|e| e.event.workload.key == *entity) {
            *kinds.entry(e.event.kind.name().to_string()).or_default() += 1;
        }
        let dependents = self
            .graph
            .blast_radius(entity.as_str(), now)
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
        let stages = vec![
            Stage::new("detect", alert.starts_unix_ns, now)
                .with("source", alert.source.as_str())
                .with("alertname", name),
            Stage::new("localize", now, self.clock.now_unix_ns())
                .with("method", "alert labels matched to Vigil's entities")
                .with("root_cause", entity),
        ];
        Finding {
            severity,
            node: node.to_string(),
            workload_key: entity.clone(),
            title: format!("Alert {name} on {entity}"),
            summary: format!(
                "{summary}{}{evidence_note}",
                if summary.is_empty() { "" } else { ". " }
            ),
            time_unix_ns: now,
            evidence: Vec::new(),
            details: Details::Alert(AlertDetails {
                alertname: name.to_string(),
                alerts: firing,
                labels: alert.labels.clone(),
                annotations: alert.annotations.clone(),
                starts_at: alert.starts_at.clone(),
                ends_at: alert.ends_at.clone(),
                generator_url: alert.generator_url.clone(),
                vigil: VigilContext {
                    related_incidents: related,
                    recent_events: kinds,
                    dependents,
                },
            }),
            stages,
        }
    }
}
