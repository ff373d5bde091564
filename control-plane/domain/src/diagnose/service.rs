//! The diagnose use case: for each incident that opened or changed, run every evidence tool on
//! its entity, add the detector's voice, decide by vote, and keep the diagnosis. It works on
//! its own, with no LLM and no network: that is the default.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Instant,
};

use tracing::{debug, warn};

use super::{
    detector,
    model::{Diagnosis, Route},
    ports::{DiagnosisStore, Sources},
    tool::{Scope, ToolOutput},
    tools::Registry,
    votes::{decide, Voter},
};
use crate::{
    clock::Clock,
    incident::{
        ports::{IncidentChange, IncidentQuery, IncidentStore},
        Details, Incident, IncidentId, IncidentStatus,
    },
    observe::Observer,
    store::StoreError,
};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiagnosisPolicy {
    /// Below this confidence the incident goes to review, not remediation.
    pub gate: f64,
    /// How far before the first symptom the window judged starts.
    pub lead_ns: i64,
    /// How far back "before" reaches.
    pub lookback_ns: i64,
    /// An open incident is diagnosed again this often (its evidence grows).
    pub refresh_ns: i64,
    /// Most incidents diagnosed per tick.
    pub max_per_tick: usize,
}

impl Default for DiagnosisPolicy {
    fn default() -> Self {
        Self {
            gate: 0.6,
            lead_ns: 20_000_000_000,
            lookback_ns: 60_000_000_000,
            refresh_ns: 3_000_000_000,
            max_per_tick: 32,
        }
    }
}

pub struct DiagnosisParts {
    pub sources: Sources,
    pub incidents: Arc<dyn IncidentStore>,
    pub store: Arc<dyn DiagnosisStore>,
    pub clock: Arc<dyn Clock>,
    pub registry: Registry,
    pub policy: DiagnosisPolicy,
}

pub struct DiagnosisService {
    parts: DiagnosisParts,
    /// Incidents that changed since their last diagnosis.
    pending: Mutex<BTreeSet<IncidentId>>,
}

impl DiagnosisService {
    pub fn new(parts: DiagnosisParts) -> Self {
        Self {
            parts,
            pending: Mutex::new(BTreeSet::new()),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.parts.registry
    }

    pub fn sources(&self) -> &Sources {
        &self.parts.sources
    }

    pub fn policy(&self) -> DiagnosisPolicy {
        self.parts.policy
    }

    /// What the tools look at for this incident: its root cause (or workload), from a little
    /// before its first symptom to now, or to its resolution.
    pub fn scope(&self, incident: &Incident) -> Scope {
        let (entity, first) = match incident.details() {
            Details::ServiceAnomaly(a) => (
                a.root_causes
                    .first()
                    .map_or_else(|| incident.workload_key.clone(), |r| r.entity.clone()),
                a.first_anomaly_unix_ns
                    .unwrap_or(incident.opened_unix_ns)
                    .min(a.episode_started_unix_ns),
            ),
            _ => (incident.workload_key.clone(), incident.opened_unix_ns),
        };
        let to = incident
            .resolved_unix_ns
            .unwrap_or_else(|| self.parts.clock.now_unix_ns());
        Scope {
            entity,
            from_unix_ns: first.min(incident.opened_unix_ns) - self.parts.policy.lead_ns,
            to_unix_ns: to,
            lookback_ns: self.parts.policy.lookback_ns,
        }
    }

    /// Runs every tool on the incident's scope. A tool that fails is reported in its place
    /// (and casts no vote); the others still run.
    pub fn gather(&self, scope: &Scope) -> Vec<ToolOutput> {
        self.parts
            .registry
            .tools()
            .iter()
            .map(|t| {
                let name = t.spec().name;
                t.call(&self.parts.sources, scope).unwrap_or_else(|e| {
                    warn!(tool = name, error = %e, "evidence tool failed");
                    ToolOutput::new(name, scope, format!("failed: {e}"), Vec::new(), Vec::new())
                })
            })
            .collect()
    }

    /// Diagnoses one incident from the evidence alone.
    pub fn diagnose(&self, incident: &Incident) -> Diagnosis {
        let scope = self.scope(incident);
        let evidence = self.gather(&scope);
        let mut voters = vec![detector::voter(incident)];
        voters.extend(evidence.iter().map(|o| Voter {
            name: o.tool.clone(),
            votes: o.votes.clone(),
        }));
        let verdict = decide(&voters, self.parts.policy.gate);
        let explanation = match verdict.class {
            Some(class) => {
                let strongest = verdict
                    .breakdown
                    .iter()
                    .filter(|b| b.agrees)
                    .max_by(|a, b| a.strength.total_cmp(&b.strength))
                    .map_or(String::new(), |b| format!(" Strongest evidence ({}): {}.", b.voter, b.reason));
                let against: Vec<&str> = verdict
                    .breakdown
                    .iter()
                    .filter(|b| b.class.is_some() && !b.agrees)
                    .map(|b| b.voter.as_str())
                    .collect();
                format!(
                    "{class} on {}: {}.{strongest}{} Confidence {:.2} against a gate of {:.2}: {}.",
                    scope.entity,
                    class.about(),
                    if against.is_empty() {
                        String::new()
                    } else {
                        format!(" Disagreeing: {}.", against.join(", "))
                    },
                    verdict.confidence,
                    self.parts.policy.gate,
                    match verdict.route {
                        Route::Remediation => "confident enough to act on",
                        Route::Review => "routed to a human's review",
                    }
                )
            }
            None => format!(
                "No tool found evidence for any fault class on {}: routed to a human's review.",
                scope.entity
            ),
        };
        Diagnosis {
            incident: incident.id,
            class: verdict.class,
            confidence: verdict.confidence,
            gate: self.parts.policy.gate,
            route: verdict.route,
            explanation,
            breakdown: verdict.breakdown,
            evidence,
            citations: Vec::new(),
            recommended_actions: verdict
                .class
                .map(|c| c.recommended_actions().iter().map(|s| s.to_string()).collect())
                .unwrap_or_default(),
            llm: false,
            diagnosed_unix_ns: self.parts.clock.now_unix_ns(),
            fingerprint: format!(
                "{}:{}:{}:{}",
                incident.kind.as_str(),
                scope.entity,
                incident.occurrences,
                incident.updated_unix_ns
            ),
        }
    }

    /// Diagnoses and keeps it.
    pub fn diagnose_and_store(&self, incident: &Incident) -> Result<Diagnosis, StoreError> {
        let started = Instant::now();
        let d = self.diagnose(incident);
        self.parts.store.save_diagnosis(&d)?;
        debug!(
            incident = %incident.id,
            class = d.class.map_or("none", |c| c.id()),
            confidence = d.confidence,
            took_ms = started.elapsed().as_millis() as u64,
            "diagnosed"
        );
        Ok(d)
    }

    /// Diagnoses what changed, and open incidents whose diagnosis is older than the refresh.
    /// Returns how many were diagnosed.
    pub fn tick(&self) -> Result<usize, StoreError> {
        let now = self.parts.clock.now_unix_ns();
        let mut due: BTreeSet<IncidentId> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        for i in self.parts.incidents.list(&IncidentQuery::open(self.parts.policy.max_per_tick))? {
            let stale = self
                .parts
                .store
                .diagnosis(i.id)?
                .is_none_or(|d| now - d.diagnosed_unix_ns >= self.parts.policy.refresh_ns);
            if stale {
                due.insert(i.id);
            }
        }
        let mut done = 0;
        for id in due.into_iter().take(self.parts.policy.max_per_tick) {
            let Some(incident) = self.parts.incidents.get(id)? else {
                continue;
            };
            // A resolved incident is diagnosed once more, on its whole window, then left.
            if incident.status == IncidentStatus::Resolved
                && self
                    .parts
                    .store
                    .diagnosis(id)?
                    .is_some_and(|d| incident.resolved_unix_ns.is_some_and(|r| d.diagnosed_unix_ns >= r))
            {
                continue;
            }
            self.diagnose_and_store(&incident)?;
            done += 1;
        }
        Ok(done)
    }
}

impl Observer for DiagnosisService {
    /// Only queues: diagnosis runs on its own job, never on the ingest or detection path.
    fn incident(&self, change: &IncidentChange) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(change.incident().id);
    }
}
