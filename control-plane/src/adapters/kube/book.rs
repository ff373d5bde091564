//! What an IncidentReport's status says beyond its incident: the latest diagnosis (with the
//! runbooks and postmortems it cited) and every step of every remediation action (proposed,
//! approved by whom, applied, verified or rolled back). The mirror and the reconciler both
//! write a report's status, and a server-side apply drops what a write leaves out, so both
//! compose it here.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex, MutexGuard},
};

use serde_json::json;
use tracing::warn;

use super::status::{report_status, rfc3339, Verdict};
use crate::domain::{
    diagnose::ports::DiagnosisStore,
    incident::{Incident, IncidentId},
    remediate::{ports::RemediationStore, ActionId, ActionRecord, ActionState},
};

/// Incidents remembered; past this many the book starts over (each is read back from the
/// store at its next change).
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
struct Entry {
    incident: Option<Incident>,
    verdict: Option<Verdict>,
    steps: Vec<serde_json::Value>,
    /// (action, step) pairs already in `steps`: a record told twice adds nothing.
    told: BTreeSet<(ActionId, &'static str)>,
    /// Read back from the store once (after a restart or a failover, or once evicted).
    loaded: bool,
}

impl Entry {
    fn add(&mut self, record: &ActionRecord, now_unix_ns: i64) -> bool {
        let before = self.steps.len();
        for (step, at, by, detail) in steps(record, now_unix_ns) {
            if self.told.insert((record.id, step)) {
                let mut s = json!({
                    "id": record.id.0,
                    "action": record.step.action.as_str(),
                    "state": step,
                    "at": rfc3339(at),
                });
                if !by.is_empty() {
                    s["by"] = json!(by);
                }
                if !detail.is_empty() {
                    s["detail"] = json!(detail);
                }
                self.steps.push(s);
            }
        }
        self.steps.len() > before
    }
}

/// Where a report's diagnosis and action steps are read back from when the book has not seen
/// them (a new leader, a restart): a status written without them would drop them from the
/// report, since a server-side apply removes what a write leaves out.
pub struct Stored {
    pub diagnoses: Arc<dyn DiagnosisStore>,
    pub actions: Arc<dyn RemediationStore>,
}

#[derive(Default)]
pub struct ReportBook {
    entries: Mutex<HashMap<IncidentId, Entry>>,
    stored: Option<Stored>,
}

impl ReportBook {
    /// A book that reads what it has not seen back from the store.
    pub fn with_store(stored: Stored) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            stored: Some(stored),
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<IncidentId, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with<T>(&self, id: IncidentId, f: impl FnOnce(&mut Entry) -> T) -> T {
        let mut entries = self.entries();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&id) {
            entries.clear();
        }
        let entry = entries.entry(id).or_default();
        self.load(id, entry);
        f(entry)
    }

    /// Fills `e` from the store the first time it is used.
    fn load(&self, id: IncidentId, e: &mut Entry) {
        let Some(stored) = self.stored.as_ref().filter(|_| !e.loaded) else {
            return;
        };
        e.loaded = true;
        if e.verdict.is_none() {
            match stored.diagnoses.diagnosis(id) {
                Ok(d) => e.verdict = d.as_ref().map(Verdict::from),
                Err(err) => {
                    warn!(incident = %id, error = %err, "reading the diagnosis back for its IncidentReport")
                }
            }
        }
        match stored.actions.actions(Some(id), 0) {
            Ok(records) => {
                for r in &records {
                    e.add(r, r.executed_unix_ns.unwrap_or(r.decided_unix_ns));
                }
            }
            Err(err) => {
                warn!(incident = %id, error = %err, "reading the actions back for its IncidentReport")
            }
        }
    }

    /// Remembers the incident as it is now (the step records name only its id).
    pub fn incident(&self, incident: &Incident) {
        self.with(incident.id, |e| e.incident = Some(incident.clone()));
    }

    pub fn verdict(&self, incident: &Incident, verdict: Verdict) {
        self.with(incident.id, |e| {
            e.incident = Some(incident.clone());
            e.verdict = Some(verdict);
        });
    }

    /// Adds the steps `record` shows that the report does not have yet; the incident to
    /// write, when the book knows it and something was added.
    pub fn action(&self, record: &ActionRecord, now_unix_ns: i64) -> Option<Incident> {
        self.with(record.request.incident, |e| {
            e.add(record, now_unix_ns)
                .then(|| e.incident.clone())
                .flatten()
        })
    }

    /// The report's whole status for `incident`: every field Vigil owns.
    pub fn status(&self, incident: &Incident) -> serde_json::Value {
        self.with(incident.id, |e| {
            report_status(incident, e.verdict.as_ref(), &e.steps)
        })
    }
}

type Step = (&'static str, i64, String, String);

/// The steps a stored action has been through, as far as its record shows them; a
/// verification's end is dated when it is told (`now`).
fn steps(r: &ActionRecord, now: i64) -> Vec<Step> {
    let decided = r.decided_unix_ns;
    let executed = r.executed_unix_ns.unwrap_or(decided);
    let by = r.approved_by.clone().unwrap_or_default();
    let proposed = |detail: &str| ("proposed", decided, String::new(), detail.to_string());
    let ran = || {
        let detail = r.applied.as_ref().map(|a| a.detail.clone());
        (
            "applied",
            executed,
            String::new(),
            detail.unwrap_or_default(),
        )
    };
    let mut out = Vec::new();
    match r.state {
        ActionState::Observed => out.push(proposed("observe phase: decided and logged, not run")),
        ActionState::Refused => {
            out.push(proposed(""));
            // Refused when an approver said yes (the guardrails judged it again), or at once.
            if !by.is_empty() {
                out.push(("approved", now, by, String::new()));
            }
            let at = if r.approved_by.is_some() {
                now
            } else {
                decided
            };
            out.push(("refused", at, String::new(), r.outcome.clone()));
        }
        ActionState::PendingApproval => out.push(proposed("waiting for an approver")),
        ActionState::Denied | ActionState::Expired => {
            out.push(proposed("waiting for an approver"));
            let word = if r.state == ActionState::Denied {
                "denied"
            } else {
                "expired"
            };
            out.push((word, now, by, r.outcome.clone()));
        }
        ActionState::Verifying
        | ActionState::Recovered
        | ActionState::Escalated
        | ActionState::RolledBack
        | ActionState::Failed => {
            out.push(proposed(""));
            if !by.is_empty() {
                out.push(("approved", executed, by, String::new()));
            }
            if r.executed_unix_ns.is_some() {
                out.push(ran());
            }
            let end = match r.state {
                ActionState::Recovered => Some("verified"),
                ActionState::Escalated => Some("escalated"),
                ActionState::RolledBack => Some("rolled_back"),
                ActionState::Failed => Some("failed"),
                _ => None,
            };
            if let Some(end) = end {
                out.push((end, now, String::new(), r.outcome.clone()));
            }
        }
    }
    out
}
