//! The diagnose use case: for each incident that opened or changed, run every evidence tool on
//! its entity, add the detector's voice, decide by vote, and keep the diagnosis. It works on
//! its own, with no LLM and no network: that is the default.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex, Weak},
    time::Instant,
};

use tracing::{debug, warn};

use super::{
    call::{input_schema, CallError, ToolInput},
    detector,
    llm::{self, brief, SecondOpinion, ToolCall, ToolDef},
    model::{Diagnosis, Route},
    ports::{DiagnosisStore, Sources},
    related::{self, concerns},
    taxonomy::FaultClass,
    tool::{Scope, ToolOutput},
    tools::Registry,
    votes::{decide, Voter},
};
use crate::{
    clock::Clock,
    entity::EntityId,
    incident::{
        ports::{IncidentChange, IncidentQuery, IncidentStore},
        Details, Incident, IncidentId, IncidentStatus,
    },
    observe::Observer,
    retrieve::Retriever,
    store::StoreError,
};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiagnosisPolicy {
    /// Below this confidence the incident goes to review, not remediation.
    pub gate: f64,
    /// How far before the first symptom the window judged starts.
    pub lead_ns: i64,
    /// How long before the detector's first anomalous window the symptom may have begun: it
    /// fires only after the symptom held for its `consecutive_windows`, and a symptom shows at
    /// the end of the window it fell in. Evidence from then on is the symptom's, not the lead's.
    pub onset_slack_ns: i64,
    /// How far back "before" reaches.
    pub lookback_ns: i64,
    /// An open incident is diagnosed again this often (its evidence grows).
    pub refresh_ns: i64,
    /// Most incidents diagnosed per tick.
    pub max_per_tick: usize,
    /// A tick stops taking more incidents after this long, so one that just opened waits for
    /// at most one diagnosis in progress rather than a whole tick's.
    pub tick_budget_ns: i64,
}

impl Default for DiagnosisPolicy {
    fn default() -> Self {
        Self {
            gate: 0.6,
            lead_ns: 10_000_000_000,
            onset_slack_ns: 2_000_000_000,
            lookback_ns: 60_000_000_000,
            refresh_ns: 3_000_000_000,
            max_per_tick: 32,
            tick_budget_ns: 1_000_000_000,
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
    /// Told of every diagnosis. Weak: the same observers tell this service of incidents.
    observer: Option<Weak<dyn Observer>>,
    /// Runbooks and past incidents to cite; none configured, none cited.
    retriever: Option<Arc<Retriever>>,
    /// The LLM's second opinion; none configured, the evidence decides alone.
    second_opinion: Option<Arc<SecondOpinion>>,
}

/// How long after an open incident last showed its window still runs: long enough for a
/// restart that should follow an exit to show (or not).
const TRAIL_NS: i64 = 10_000_000_000;
/// How many of the latest incidents bound a new one's window and witness for it.
const EARLIER_INCIDENTS: usize = 200;

/// Up to when evidence on `entity` belongs to an earlier incident: the latest of the
/// resolutions of those that resolved before `incident` opened; for those that had not
/// resolved by then, just past the last evidence they took if that came before this
/// incident's `first` symptom (a burst of kills milliseconds apart is one incident's),
/// else just past their opening.
fn earlier_claim(
    earlier: &[Incident],
    incident: &Incident,
    entity: &EntityId,
    first: i64,
) -> Option<i64> {
    earlier
        .iter()
        .filter(|i| {
            i.id != incident.id && i.opened_unix_ns < incident.opened_unix_ns && concerns(i, entity)
        })
        .map(|i| match i.resolved_unix_ns {
            Some(r) if r < incident.opened_unix_ns => r,
            _ if i.updated_unix_ns < first => i.updated_unix_ns.max(i.opened_unix_ns) + 1,
            _ => i.opened_unix_ns + 1,
        })
        .max()
}

/// Where the strongest vote for `class` that places the fault places it, unless that is the
/// incident's own workload.
fn subject(voters: &[Voter], class: FaultClass, own: &EntityId) -> Option<EntityId> {
    voters
        .iter()
        .flat_map(|v| &v.votes)
        .filter(|v| v.class == class)
        .filter_map(|v| v.at.as_ref().map(|at| (v.strength, at)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, at)| at.clone())
        .filter(|at| at != own)
}

impl DiagnosisService {
    pub fn new(parts: DiagnosisParts) -> Self {
        Self {
            parts,
            pending: Mutex::new(BTreeSet::new()),
            observer: None,
            retriever: None,
            second_opinion: None,
        }
    }

    /// Asks an LLM for a second opinion on every diagnosis, within its bounds.
    pub fn with_second_opinion(mut self, llm: Arc<SecondOpinion>) -> Self {
        self.second_opinion = Some(llm);
        self
    }

    /// Cites the class's runbook and the most similar past incidents in every diagnosis.
    pub fn with_retriever(mut self, retriever: Arc<Retriever>) -> Self {
        self.retriever = Some(retriever);
        self
    }

    /// Tells `observer` of every diagnosis made (the exporters, the Kubernetes mirror).
    pub fn with_observer(mut self, observer: Weak<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
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
    /// before its first symptom to its resolution, or to a little after it last showed. The
    /// window never reaches back into an earlier incident of the same entity: not before one
    /// that had resolved before this one opened, nor to the start of one still open. That
    /// evidence explained that incident; what came after it is this one's.
    pub fn scope(&self, incident: &Incident) -> Scope {
        self.scope_among(incident, &self.earlier(incident))
    }

    /// The latest incidents, which bound a new one's window and witness for it. A store that
    /// cannot list them leaves the window wider and the witnesses out: said, not fatal.
    fn earlier(&self, incident: &Incident) -> Vec<Incident> {
        self.parts
            .incidents
            .list(&IncidentQuery {
                status: None,
                kind: None,
                limit: EARLIER_INCIDENTS,
            })
            .unwrap_or_else(|e| {
                warn!(incident = %incident.id, error = %e, "could not read earlier incidents");
                Vec::new()
            })
    }

    /// `scope`, with the latest incidents already read.
    fn scope_among(&self, incident: &Incident, earlier: &[Incident]) -> Scope {
        let (entity, first) = match incident.details() {
            Details::ServiceAnomaly(a) => (
                a.root_causes
                    .first()
                    .map_or_else(|| incident.workload_key.clone(), |r| r.entity.clone()),
                a.first_anomaly_unix_ns
                    .unwrap_or(incident.opened_unix_ns)
                    .min(a.episode_started_unix_ns),
            ),
            Details::CrashLoop(c) => (
                incident.workload_key.clone(),
                c.first_exit_unix_ns.unwrap_or(incident.opened_unix_ns),
            ),
            _ => (incident.workload_key.clone(), incident.opened_unix_ns),
        };
        // Up to its resolution; while open, until a little after it last showed: the quiet
        // since is recovery, and would dilute the symptom's rates.
        let to = incident.resolved_unix_ns.unwrap_or_else(|| {
            self.parts
                .clock
                .now_unix_ns()
                .min(incident.updated_unix_ns.saturating_add(TRAIL_NS))
        });
        let first = first.min(incident.opened_unix_ns);
        let mut from = first - self.parts.policy.lead_ns;
        // Never past the first symptom itself: the lead may shrink, the symptom stays.
        if let Some(claimed) = earlier_claim(earlier, incident, &entity, first) {
            from = from.max(claimed.min(first));
        }
        Scope {
            entity,
            from_unix_ns: from,
            // Never before `from`: what came before it is the lead, or an earlier incident's.
            onset_unix_ns: Some((first - self.parts.policy.onset_slack_ns).max(from)),
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
        let earlier = self.earlier(incident);
        let scope = self.scope_among(incident, &earlier);
        let evidence = self.gather(&scope);
        let mut voters = vec![detector::voter(incident)];
        voters.extend(evidence.iter().map(|o| Voter {
            name: o.tool.clone(),
            votes: o.votes.clone(),
        }));
        match related::voters(
            &earlier,
            self.parts.store.as_ref(),
            incident,
            &scope.entity,
            scope.onset_unix_ns.unwrap_or(scope.from_unix_ns),
            self.parts.policy.lead_ns,
        ) {
            Ok(related) => voters.extend(related),
            Err(e) => {
                warn!(incident = %incident.id, error = %e, "could not read earlier incidents")
            }
        }
        let verdict = decide(&voters, self.parts.policy.gate);
        let explanation = match verdict.class {
            Some(class) => {
                let strongest = verdict
                    .breakdown
                    .iter()
                    .filter(|b| b.agrees)
                    .max_by(|a, b| a.strength.total_cmp(&b.strength))
                    .map_or(String::new(), |b| {
                        format!(" Strongest evidence ({}): {}.", b.voter, b.reason)
                    });
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
        // Worth a look only while the window can still reach it: an open incident's window
        // grows to `TRAIL_NS` past its last update.
        let revisit = evidence
            .iter()
            .filter_map(|o| o.revisit_unix_ns)
            .min()
            .filter(|&t| {
                incident.status == IncidentStatus::Open
                    && t <= incident.updated_unix_ns.saturating_add(TRAIL_NS)
            });
        let subject = verdict
            .class
            .and_then(|c| subject(&voters, c, &incident.workload_key));
        let mut d = Diagnosis {
            incident: incident.id,
            class: verdict.class,
            subject,
            confidence: verdict.confidence,
            gate: self.parts.policy.gate,
            route: verdict.route,
            explanation,
            breakdown: verdict.breakdown,
            evidence,
            citations: Vec::new(),
            recommended_actions: verdict
                .class
                .map(|c| {
                    c.recommended_actions()
                        .iter()
                        .map(|s| s.to_string())
                        .collect()
                })
                .unwrap_or_default(),
            llm: false,
            llm_review: None,
            revisit_unix_ns: revisit,
            diagnosed_unix_ns: self.parts.clock.now_unix_ns(),
            fingerprint: format!(
                "{}:{}:{}:{}",
                incident.kind.as_str(),
                scope.entity,
                incident.occurrences,
                incident.updated_unix_ns
            ),
        };
        if let Some(r) = &self.retriever {
            d.citations = r.citations(incident, &scope.entity, &d);
            if let Some(runbook) = d.citations.iter().find(|c| c.kind == "runbook") {
                d.explanation
                    .push_str(&format!(" Runbook: {} ({}).", runbook.title, runbook.id));
            }
        }
        if let Some(llm) = &self.second_opinion {
            self.ask(llm, incident, &scope, &mut d);
        }
        d
    }

    /// The LLM's second opinion on `d`, from the cache when the evidence has not changed.
    fn ask(&self, llm: &SecondOpinion, incident: &Incident, scope: &Scope, d: &mut Diagnosis) {
        let fingerprint = llm::review::fingerprint(d);
        let (inv, cached) = match llm.cached(&fingerprint) {
            Some(inv) => (inv, true),
            None => {
                let policy = llm.policy();
                let run = |call: &ToolCall| {
                    self.call_tool(&call.name, &call.arguments, Some(scope))
                        .map_err(|e| e.to_string())
                        .and_then(|out| serde_json::to_string(&out).map_err(|e| e.to_string()))
                };
                let inv = llm::session::investigate(
                    llm.model().as_ref(),
                    policy,
                    brief::system_prompt(),
                    brief::brief(incident, scope, d, policy.brief_tokens),
                    self.tool_defs(),
                    &run,
                );
                llm.remember(fingerprint, &inv);
                (inv, false)
            }
        };
        debug!(incident = %incident.id, steps = inv.steps, cached, "second opinion");
        d.llm_review = Some(llm::review::apply(d, inv, cached));
    }

    /// The evidence tools as a model or an MCP client is offered them.
    pub fn tool_defs(&self) -> Vec<ToolDef> {
        self.parts
            .registry
            .specs()
            .into_iter()
            .map(|s| ToolDef {
                name: s.name.to_string(),
                description: s.description.to_string(),
                parameters: input_schema(),
            })
            .collect()
    }

    /// Runs one tool by name: on `base` (the incident under investigation) or on the incident
    /// or entity the arguments name, with their window.
    pub fn call_tool(
        &self,
        name: &str,
        args: &serde_json::Value,
        base: Option<&Scope>,
    ) -> Result<ToolOutput, CallError> {
        let tool = self
            .parts
            .registry
            .get(name)
            .ok_or_else(|| CallError::UnknownTool {
                name: name.to_string(),
                known: self
                    .parts
                    .registry
                    .specs()
                    .iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let input = ToolInput::parse(args)?;
        let incident_scope = match input.incident {
            Some(id) => Some(
                self.parts
                    .incidents
                    .get(IncidentId(
                        i64::try_from(id).map_err(|_| CallError::UnknownIncident(id))?,
                    ))?
                    .map(|i| self.scope(&i))
                    .ok_or(CallError::UnknownIncident(id))?,
            ),
            None => None,
        };
        let scope = input.scope(
            incident_scope.as_ref().or(base),
            self.parts.clock.now_unix_ns(),
        )?;
        Ok(tool.call(&self.parts.sources, &scope)?)
    }

    /// Diagnoses and keeps it.
    pub fn diagnose_and_store(&self, incident: &Incident) -> Result<Diagnosis, StoreError> {
        let started = Instant::now();
        let d = self.diagnose(incident);
        let previous = self.parts.store.diagnosis(incident.id).ok().flatten();
        self.parts.store.save_diagnosis(&d)?;
        let took = started.elapsed();
        debug!(
            incident = %incident.id,
            class = d.class.map_or("none", |c| c.id()),
            confidence = d.confidence,
            took_ms = took.as_millis() as u64,
            "diagnosed"
        );
        let tell = incident.status == IncidentStatus::Resolved || news(previous.as_ref(), &d);
        if let Some(o) = self
            .observer
            .as_ref()
            .filter(|_| tell)
            .and_then(Weak::upgrade)
        {
            o.diagnosed(incident, &d, took.as_secs_f64());
        }
        Ok(d)
    }

    /// Diagnoses what changed first, then open incidents never diagnosed, then those whose
    /// diagnosis is the oldest past the refresh; what does not fit in one tick stays queued.
    /// Returns how many were diagnosed.
    pub fn tick(&self) -> Result<usize, StoreError> {
        let now = self.parts.clock.now_unix_ns();
        let changed: BTreeSet<IncidentId> = std::mem::take(&mut *self.lock_pending());
        let mut order: Vec<IncidentId> = changed.iter().copied().collect();
        let mut stale: Vec<(i64, IncidentId)> = Vec::new();
        for i in self
            .parts
            .incidents
            .list(&IncidentQuery::open(self.parts.policy.max_per_tick))?
        {
            if changed.contains(&i.id) {
                continue;
            }
            // Once its window has closed (it has not shown for `TRAIL_NS`), a diagnosis made
            // after that is final until the incident changes.
            let window_closed = i.updated_unix_ns.saturating_add(TRAIL_NS);
            match self.parts.store.diagnosis(i.id)? {
                None => stale.push((i64::MIN, i.id)),
                Some(d)
                    if now - d.diagnosed_unix_ns >= self.parts.policy.refresh_ns
                        && d.diagnosed_unix_ns < window_closed =>
                {
                    stale.push((d.diagnosed_unix_ns, i.id))
                }
                // A judgement that was waiting on time (a grace) is due: the window it was
                // made on ended before then (a later one names no revisit).
                Some(d) if d.revisit_unix_ns.is_some_and(|t| now >= t) => {
                    stale.push((d.diagnosed_unix_ns, i.id))
                }
                Some(_) => {}
            }
        }
        stale.sort();
        order.extend(stale.into_iter().map(|(_, id)| id));
        let started = Instant::now();
        let out_of_time =
            || started.elapsed().as_nanos() >= self.parts.policy.tick_budget_ns.max(0) as u128;
        let budget = self.parts.policy.max_per_tick;
        let later: Vec<IncidentId> = order
            .iter()
            .skip(budget)
            .filter(|id| changed.contains(id))
            .copied()
            .collect();
        self.lock_pending().extend(later);
        let mut order = order.into_iter().take(budget);
        let mut done = 0;
        while let Some(id) = order.next() {
            if done > 0 && out_of_time() {
                // The changed ones left wait for the next tick, first in its line.
                let left: Vec<IncidentId> = std::iter::once(id)
                    .chain(order)
                    .filter(|id| changed.contains(id))
                    .collect();
                self.lock_pending().extend(left);
                break;
            }
            let Some(incident) = self.parts.incidents.get(id)? else {
                continue;
            };
            // A resolved incident is diagnosed once more, on its whole window, then left.
            if incident.status == IncidentStatus::Resolved
                && self.parts.store.diagnosis(id)?.is_some_and(|d| {
                    incident
                        .resolved_unix_ns
                        .is_some_and(|r| d.diagnosed_unix_ns >= r)
                })
            {
                continue;
            }
            self.diagnose_and_store(&incident)?;
            done += 1;
        }
        Ok(done)
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, BTreeSet<IncidentId>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Observer for DiagnosisService {
    /// Only queues: diagnosis runs on its own job, never on the ingest or detection path.
    fn incident(&self, change: &IncidentChange) {
        self.lock_pending().insert(change.incident().id);
    }
}

/// Confidence is told in steps of this size: a gate set on it (a playbook step's
/// `min_confidence`) is a round figure, and a diagnosis that firms up past one must reach
/// whoever acts on it.
const CONFIDENCE_STEP: f64 = 0.05;

/// Whether a diagnosis is news to the observers: a first one, another class or route, or a
/// confidence that rose into a higher step. Not every refresh that confirms a verdict (they
/// come every few seconds while an incident is open), and not a fall: what was decided on a
/// higher confidence stays decided.
fn news(previous: Option<&Diagnosis>, d: &Diagnosis) -> bool {
    // The epsilon keeps a confidence of exactly a gate in the gate's step: 0.7 / 0.05 is
    // 13.999… in floating point.
    let step = |c: f64| (c / CONFIDENCE_STEP + 1e-9).floor() as i64;
    previous.is_none_or(|p| {
        p.class != d.class || p.route != d.route || step(d.confidence) > step(p.confidence)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::tool::Vote;

    #[test]
    fn the_subject_is_where_the_strongest_placing_vote_for_the_class_puts_the_fault() {
        let own = EntityId::new("cgroup/web");
        let (dns, other) = (EntityId::new("cgroup/dns"), EntityId::new("cgroup/other"));
        let voters = vec![
            Voter {
                name: "dns_lookups".into(),
                votes: vec![Vote::new(FaultClass::DnsFailure, 0.8, "").at(dns.clone())],
            },
            Voter {
                name: "weak".into(),
                votes: vec![Vote::new(FaultClass::DnsFailure, 0.3, "").at(other.clone())],
            },
            Voter {
                name: "another class".into(),
                votes: vec![Vote::new(FaultClass::Partition, 0.9, "").at(other)],
            },
        ];
        assert_eq!(subject(&voters, FaultClass::DnsFailure, &own), Some(dns));
        // Nothing placed for the class, or placed on the incident's own workload: no subject.
        assert_eq!(subject(&voters, FaultClass::OomKill, &own), None);
        let here = vec![Voter {
            name: "edge_stats".into(),
            votes: vec![Vote::new(FaultClass::CredentialFailure, 0.8, "").at(own.clone())],
        }];
        assert_eq!(subject(&here, FaultClass::CredentialFailure, &own), None);
    }

    fn diagnosis(class: FaultClass, confidence: f64) -> Diagnosis {
        Diagnosis {
            incident: IncidentId(1),
            class: Some(class),
            subject: None,
            confidence,
            gate: 0.6,
            route: Route::Remediation,
            explanation: String::new(),
            breakdown: Vec::new(),
            evidence: Vec::new(),
            citations: Vec::new(),
            recommended_actions: Vec::new(),
            llm: false,
            llm_review: None,
            diagnosed_unix_ns: 0,
            revisit_unix_ns: None,
            fingerprint: String::new(),
        }
    }

    #[test]
    fn a_confidence_firming_up_past_a_step_is_news_a_refresh_or_a_fall_is_not() {
        let first = diagnosis(FaultClass::CredentialFailure, 0.63);
        assert!(news(None, &first));
        // Exactly a gate is in the gate's step (0.7 / 0.05 is not quite 14 in floating point).
        let below = diagnosis(FaultClass::CredentialFailure, 0.66);
        assert!(news(
            Some(&below),
            &diagnosis(FaultClass::CredentialFailure, 0.7)
        ));
        // Past a playbook gate of 0.70: whoever acts on it must hear.
        assert!(news(
            Some(&first),
            &diagnosis(FaultClass::CredentialFailure, 0.805)
        ));
        assert!(news(
            Some(&first),
            &diagnosis(FaultClass::CredentialFailure, 0.66)
        ));
        // A refresh within the step, and any fall, are not.
        assert!(!news(
            Some(&first),
            &diagnosis(FaultClass::CredentialFailure, 0.64)
        ));
        assert!(!news(
            Some(&first),
            &diagnosis(FaultClass::CredentialFailure, 0.40)
        ));
        // Another class is, at any confidence.
        assert!(news(Some(&first), &diagnosis(FaultClass::OomKill, 0.40)));
        let mut review = first.clone();
        review.route = Route::Review;
        assert!(news(Some(&first), &review));
    }
}
