//! The remediation loop: a diagnosis routed to remediation gets its playbook's actions
//! proposed; each is judged by the guardrails and its phase; what may run runs through the
//! runtime with its inverse recorded; what needs an approver waits until it expires; after a
//! window the incident's own signals decide: recovered, unchanged (escalated), or worse (the
//! inverse runs). Every step goes to the audit log.

use std::sync::{Arc, Mutex, Weak};

use serde_json::json;
use tracing::warn;

use super::{
    engine::{decide, plan, Decision, Verdict},
    fleet::{Executed, World},
    guardrails::Check,
    playbook::Playbooks,
    policy::Policy,
    ports::{FleetView, Grant, RemediationStore, Runtime, RuntimeError, StoreLock, TargetLock},
    record::{ActionId, ActionRecord, ActionState},
    track_record::{track_record, ClassRecord},
};
use crate::{
    audit::{AuditEntry, AuditKind, AuditLog},
    clock::Clock,
    diagnose::model::{Diagnosis, Route},
    entity::EntityId,
    incident::{ports::IncidentStore, Incident, IncidentId, IncidentStatus},
    node::ports::NodeStore,
    observe::Observer,
    store::StoreError,
};

/// A node that reported within this long is a witness to an incident that spans nodes.
const LIVE_NODE_NS: i64 = 5 * 60 * 1_000_000_000;

pub struct RemediationParts {
    pub playbooks: Playbooks,
    pub policy: Policy,
    /// How long an approval is taken for.
    pub approval_ttl_ns: i64,
    /// How long after an action its incident's signals are judged.
    pub verify_after_ns: i64,
    pub store: Arc<dyn RemediationStore>,
    pub fleet: Arc<dyn FleetView>,
    pub runtime: Arc<dyn Runtime>,
    pub incidents: Arc<dyn IncidentStore>,
    pub audit: Arc<AuditLog>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, thiserror::Error)]
pub enum RemediationError {
    #[error("action {0} does not exist")]
    NotFound(ActionId),
    #[error("action {id} is {state}, not waiting for an approval")]
    NotPending { id: ActionId, state: &'static str },
    #[error("action {0}'s approval expired before it came; nothing ran")]
    Expired(ActionId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TickReport {
    pub decided: usize,
    pub executed: usize,
    pub expired: usize,
    pub verified: usize,
}

pub struct RemediationService {
    parts: RemediationParts,
    queue: Mutex<Vec<(Incident, Diagnosis)>>,
    /// Told of every action as stored (Slack, the IncidentReport mirror, metrics). Weak: the
    /// observers hold this service too.
    observer: Option<Weak<dyn Observer>>,
    /// Taken before an action runs, released when its verification ends.
    lock: Arc<dyn TargetLock>,
    /// The node agents and their modes: evidence from degraded nodes alone is not acted on
    /// without an approval. `None`: every node's evidence is taken as whole.
    nodes: Option<Arc<dyn NodeStore>>,
    /// One decision-and-action at a time in this control plane (an approval arriving while
    /// a tick acts): the store's view of what is in progress stays true while it is judged.
    acting: Mutex<()>,
}

impl RemediationService {
    pub fn new(parts: RemediationParts) -> Self {
        Self {
            parts,
            queue: Mutex::new(Vec::new()),
            observer: None,
            lock: Arc::new(StoreLock),
            nodes: None,
            acting: Mutex::new(()),
        }
    }

    /// With the node agents' reported modes, so evidence from nodes that shed telemetry
    /// alone waits for an approver.
    pub fn with_nodes(mut self, nodes: Arc<dyn NodeStore>) -> Self {
        self.nodes = Some(nodes);
        self
    }

    /// With a lock shared beyond this control plane's store (a Lease per target).
    pub fn with_lock(mut self, lock: Arc<dyn TargetLock>) -> Self {
        self.lock = lock;
        self
    }

    /// How long a target's lock is taken for: through the verification and as long again,
    /// since the action's effect is this control plane's to judge (and undo) before anyone
    /// else acts on the target.
    fn hold_ns(&self) -> i64 {
        self.parts
            .verify_after_ns
            .saturating_mul(2)
            .max(60_000_000_000)
    }

    /// Releases `target`'s lock; a failure is logged: the lock expires on its own.
    fn release(&self, target: &EntityId) {
        if let Err(e) = self.lock.release(target) {
            warn!(%target, error = %e, "could not release the remediation lock; it expires by itself");
        }
    }

    pub fn with_observer(mut self, observer: Weak<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Stores an action's new state and tells the observers.
    fn save(&self, record: &ActionRecord) -> Result<(), StoreError> {
        self.parts.store.update_action(record)?;
        self.told(record);
        Ok(())
    }

    fn told(&self, record: &ActionRecord) {
        if let Some(o) = self.observer.as_ref().and_then(Weak::upgrade) {
            o.action(record);
        }
    }

    /// Each action class's record from every action stored: what has earned promotion.
    pub fn track_record(&self) -> Result<Vec<ClassRecord>, StoreError> {
        Ok(track_record(
            &self.parts.store.actions(None, 0)?,
            &self.parts.policy,
        ))
    }

    pub fn policy(&self) -> &Policy {
        &self.parts.policy
    }

    fn audit(
        &self,
        kind: AuditKind,
        incident: IncidentId,
        actor: &str,
        summary: String,
        body: serde_json::Value,
    ) {
        if let Err(e) = self.parts.audit.append(AuditEntry {
            kind,
            incident: Some(incident),
            actor: actor.to_string(),
            summary,
            body,
        }) {
            warn!(%incident, error = %e, "a remediation step could not be written to the audit log");
        }
    }

    /// The world the guardrails judge against: the fleet now, what ran within the longest
    /// limit's reach, and the targets still being verified (one remediation at a time).
    fn world<'a>(
        &self,
        now: i64,
        targets: impl IntoIterator<Item = &'a EntityId>,
    ) -> Result<World, StoreError> {
        let p = &self.parts.policy;
        let reach = p.window_ns.max(p.cooldown_ns);
        let history = self
            .parts
            .store
            .actions(None, now.saturating_sub(reach))?
            .into_iter()
            .filter(|a| a.state.ran())
            .map(|a| Executed {
                class: a.request.class,
                target: a.request.target,
                replicas: a.request.replicas,
                at_unix_ns: a.executed_unix_ns.unwrap_or(a.decided_unix_ns),
            })
            .collect();
        let locked = self
            .parts
            .store
            .actions_in(&[ActionState::Verifying])?
            .into_iter()
            .map(|a| a.request.target)
            .collect();
        let mut fleet = self.parts.fleet.fleet()?;
        for t in targets {
            if !fleet.contains_key(t) {
                if let Some(w) = self.parts.fleet.unlisted(t) {
                    fleet.insert(t.clone(), w);
                }
            }
        }
        Ok(World {
            fleet,
            history,
            locked,
        })
    }

    /// A decision the runtime could not carry out (or undo) is refused, never attempted.
    fn runnable(&self, mut d: Decision) -> Decision {
        let supported = self.parts.runtime.supports(d.request.class);
        d.checks.push(Check {
            rule: "runtime",
            passed: supported,
            why: if supported {
                format!(
                    "the {} runtime can do and undo it",
                    self.parts.runtime.name()
                )
            } else {
                format!(
                    "the {} runtime cannot do and undo {} here",
                    self.parts.runtime.name(),
                    d.request.class.as_str()
                )
            },
        });
        if !supported {
            d.verdict = Verdict::Refused;
        }
        d
    }

    /// An action that would run on its own, on evidence a degraded node saw, waits for an
    /// approver instead: an agent that sheds telemetry sees part of what happens and may have
    /// missed what contradicts the diagnosis. The witness is the incident's node; an incident
    /// that spans nodes (a service anomaly) does not say which nodes saw its entities, so any
    /// degraded node that reported lately holds it back. A node the store does not know, or
    /// modes it cannot read, hold it back too. Modes are read at decision time.
    fn trusted(&self, incident: &Incident, mut d: Decision) -> Decision {
        let Some(nodes) = &self.nodes else {
            return d;
        };
        if d.verdict != Verdict::Execute {
            return d;
        }
        let known = match nodes.list_nodes() {
            Ok(n) => n,
            Err(e) => {
                // Unknown modes are not a reason to act alone.
                warn!(error = %e, "could not read the nodes' modes: the action waits for an approver");
                d.verdict = Verdict::NeedsApproval;
                return d;
            }
        };
        let now = self.parts.clock.now_unix_ns();
        let witnesses: Vec<_> = known
            .iter()
            .filter(|n| {
                if incident.node.is_empty() {
                    now.saturating_sub(n.last_seen_unix_ns) <= LIVE_NODE_NS
                } else {
                    n.name == incident.node
                }
            })
            .collect();
        let degraded: Vec<String> = witnesses
            .iter()
            .filter(|n| n.stats.is_degraded())
            .map(|n| {
                format!(
                    "{} (shedding {}: {})",
                    n.name,
                    n.stats.shed.join(", "),
                    n.stats.degraded_cause
                )
            })
            .collect();
        let why = if witnesses.is_empty() && !incident.node.is_empty() {
            Some(format!(
                "node {} is not known to this control plane: its telemetry cannot be judged; an approver decides",
                incident.node
            ))
        } else if !degraded.is_empty() {
            Some(format!(
                "seen by degraded node(s) {}: an approver decides",
                degraded.join("; ")
            ))
        } else {
            None
        };
        d.checks.push(Check {
            rule: "evidence_trusted",
            passed: true,
            why: why
                .clone()
                .unwrap_or_else(|| "seen by nodes with full telemetry".into()),
        });
        if why.is_some() {
            d.verdict = Verdict::NeedsApproval;
        }
        d
    }

    /// Proposes, judges and (where allowed) runs the playbook's actions for a diagnosis, once
    /// per incident and action class.
    pub fn propose(
        &self,
        incident: &Incident,
        diagnosis: &Diagnosis,
    ) -> Result<Vec<ActionRecord>, StoreError> {
        let now = self.parts.clock.now_unix_ns();
        let done: Vec<ActionRecord> = self.parts.store.actions(Some(incident.id), 0)?;
        // One class's playbook per incident: an incident still open when a later fault's
        // evidence lands on its workload can be diagnosed anew as that fault, and acting for it
        // from here would race the incident the fault opened (and win its target's lock). An
        // incident whose class changed after its actions were decided is a human's call.
        if let Some(earlier) = done
            .iter()
            // A refusal or a runtime's failure decided nothing that happened: a corrected
            // diagnosis may still act.
            .filter(|d| !matches!(d.state, ActionState::Refused | ActionState::Failed))
            .filter_map(|d| d.fault_class)
            .find(|c| Some(*c) != diagnosis.class)
        {
            tracing::info!(
                incident = incident.id.0,
                was = earlier.id(),
                now = diagnosis.class.map_or("none", |c| c.id()),
                "the incident's actions were decided for another class: no new proposal"
            );
            return Ok(Vec::new());
        }
        let proposals: Vec<_> = self
            .parts
            .playbooks
            .propose(incident, diagnosis)
            .into_iter()
            .filter(|p| !done.iter().any(|d| d.request.class == p.request.class))
            .collect();
        if proposals.is_empty() {
            return Ok(Vec::new());
        }
        let requests: Vec<_> = proposals.iter().map(|p| p.request.clone()).collect();
        let world = self.world(now, requests.iter().map(|r| &r.target))?;
        let decisions = plan(&requests, &world, &self.parts.policy, now);
        let mut out = Vec::new();
        for (proposal, decision) in proposals.into_iter().zip(decisions) {
            let decision = self.trusted(incident, self.runnable(decision));
            let state = match decision.verdict {
                Verdict::Execute => ActionState::Verifying,
                Verdict::NeedsApproval => ActionState::PendingApproval,
                Verdict::ObserveOnly => ActionState::Observed,
                Verdict::Refused => ActionState::Refused,
            };
            let mut record = ActionRecord {
                id: ActionId(0),
                request: decision.request.clone(),
                fault_class: diagnosis.class,
                step: proposal.step,
                phase: decision.phase,
                verdict: decision.verdict,
                state,
                decided_unix_ns: now,
                expires_unix_ns: (state == ActionState::PendingApproval)
                    .then(|| now.saturating_add(self.parts.approval_ttl_ns)),
                approved_by: None,
                executed_unix_ns: None,
                applied: None,
                occurrences_at_action: 0,
                outcome: decision.refusal().unwrap_or_default(),
            };
            record.id = self.parts.store.insert_action(&record)?;
            self.audit(
                AuditKind::Decision,
                incident.id,
                "vigil",
                format!(
                    "action {} ({} on {}): {} in the {:?} phase",
                    record.id,
                    record.request.class.as_str(),
                    record.request.target,
                    decision.verdict.as_str(),
                    decision.phase
                ),
                json!({"action": record.id, "request": decision.request, "step": record.step,
                       "phase": decision.phase, "verdict": decision.verdict, "checks": decision.checks}),
            );
            if decision.verdict == Verdict::Execute {
                record = self.execute(record, "vigil")?;
            } else {
                self.told(&record);
            }
            out.push(record);
        }
        Ok(out)
    }

    /// Runs an action through the runtime, recording its inverse, and starts its verification.
    fn execute(&self, mut record: ActionRecord, actor: &str) -> Result<ActionRecord, StoreError> {
        let now = self.parts.clock.now_unix_ns();
        record.occurrences_at_action = self
            .parts
            .incidents
            .get(record.request.incident)?
            .map_or(0, |i| i.occurrences);
        // Not run without the target's lock: refused while someone else holds it, failed
        // when who holds it cannot be known.
        let unlocked = match self.lock.acquire(&record.request.target, self.hold_ns()) {
            Ok(Grant::Taken) => None,
            Ok(Grant::HeldBy(holder)) => Some((
                ActionState::Refused,
                format!(
                    "lock: {} is held by {holder}, who is acting on it; nothing ran",
                    record.request.target
                ),
            )),
            Err(e) => Some((
                ActionState::Failed,
                format!("{e}; not knowing who else acts on it, nothing ran"),
            )),
        };
        if let Some((state, outcome)) = unlocked {
            record.state = state;
            record.outcome = outcome;
            self.audit(
                AuditKind::Action,
                record.request.incident,
                actor,
                format!("action {} not run: {}", record.id, record.outcome),
                json!({"action": record.id, "lock": record.outcome}),
            );
            self.save(&record)?;
            return Ok(record);
        }
        match self
            .parts
            .runtime
            .apply(&record.request.target, &record.step)
        {
            Ok(applied) => {
                record.state = ActionState::Verifying;
                record.executed_unix_ns = Some(now);
                self.audit(
                    AuditKind::Action,
                    record.request.incident,
                    actor,
                    format!("action {} ran: {}", record.id, applied.detail),
                    json!({"action": record.id, "runtime": self.parts.runtime.name(),
                           "request": record.request, "step": record.step,
                           "response": applied.detail, "inverse": applied.inverse}),
                );
                record.applied = Some(applied);
            }
            Err(e) => {
                self.release(&record.request.target);
                record.state = ActionState::Failed;
                record.outcome = e.to_string();
                self.audit(
                    AuditKind::Action,
                    record.request.incident,
                    actor,
                    format!("action {} failed: {e}", record.id),
                    json!({"action": record.id, "runtime": self.parts.runtime.name(),
                           "request": record.request, "error": e.to_string()}),
                );
            }
        }
        self.save(&record)?;
        Ok(record)
    }

    fn pending(&self, id: ActionId) -> Result<ActionRecord, RemediationError> {
        let record = self
            .parts
            .store
            .action(id)?
            .ok_or(RemediationError::NotFound(id))?;
        if record.state != ActionState::PendingApproval {
            return Err(RemediationError::NotPending {
                id,
                state: record.state.as_str(),
            });
        }
        let now = self.parts.clock.now_unix_ns();
        if record.expires_unix_ns.is_some_and(|t| now > t) {
            self.expire(record)?;
            return Err(RemediationError::Expired(id));
        }
        Ok(record)
    }

    /// An approver's yes: every guardrail is judged again now (the world moved since), then
    /// the action runs or is refused.
    pub fn approve(&self, id: ActionId, by: &str) -> Result<ActionRecord, RemediationError> {
        let _acting = self.acting.lock().unwrap_or_else(|p| p.into_inner());
        let mut record = self.pending(id)?;
        let now = self.parts.clock.now_unix_ns();
        record.approved_by = Some(by.to_string());
        self.audit(
            AuditKind::Approval,
            record.request.incident,
            by,
            format!("action {id} approved by {by}"),
            json!({"action": id, "approved": true, "by": by}),
        );
        let world = self.world(now, [&record.request.target])?;
        let d = self.runnable(decide(
            &record.request,
            &world,
            &world.history,
            &world.locked,
            &self.parts.policy,
            now,
            true,
        ));
        if d.verdict == Verdict::Execute {
            return Ok(self.execute(record, by)?);
        }
        record.state = ActionState::Refused;
        record.outcome = d.refusal().unwrap_or_default();
        self.audit(
            AuditKind::Decision,
            record.request.incident,
            "vigil",
            format!("action {id} refused at approval: {}", record.outcome),
            json!({"action": id, "verdict": d.verdict, "checks": d.checks}),
        );
        self.save(&record)?;
        Ok(record)
    }

    pub fn deny(&self, id: ActionId, by: &str) -> Result<ActionRecord, RemediationError> {
        let mut record = self.pending(id)?;
        record.state = ActionState::Denied;
        record.approved_by = Some(by.to_string());
        record.outcome = format!("denied by {by}");
        self.audit(
            AuditKind::Approval,
            record.request.incident,
            by,
            format!("action {id} denied by {by}"),
            json!({"action": id, "approved": false, "by": by}),
        );
        self.save(&record)?;
        Ok(record)
    }

    fn expire(&self, mut record: ActionRecord) -> Result<(), StoreError> {
        record.state = ActionState::Expired;
        record.outcome = "no approval came in time; nothing ran".into();
        self.audit(
            AuditKind::Approval,
            record.request.incident,
            "vigil",
            format!("action {}'s approval expired; nothing ran", record.id),
            json!({"action": record.id, "expired": true}),
        );
        self.save(&record)
    }

    /// Judges a ran action by its incident's signals: resolved, or nothing shown since it ran
    /// (by the events' own times) → recovered;
    /// occurrences coming at least half again as fast as before → worse, the inverse runs;
    /// occurrences that stopped after it and stayed quiet for the later half of the window →
    /// recovered; otherwise unchanged → escalated to a human.
    fn verify(&self, mut record: ActionRecord, now: i64) -> Result<(), StoreError> {
        let Some(incident) = self.parts.incidents.get(record.request.incident)? else {
            return Ok(());
        };
        let executed = record.executed_unix_ns.unwrap_or(record.decided_unix_ns);
        let new = incident
            .occurrences
            .saturating_sub(record.occurrences_at_action);
        let before_rate = record.occurrences_at_action as f64
            / ((executed - incident.opened_unix_ns).max(1_000_000_000) as f64);
        let after_rate = new as f64 / ((now - executed).max(1_000_000_000) as f64);
        // An occurrence that happened before the action but arrived after it (a batch in
        // flight) raises the count, not the incident's last-seen time (the events' own).
        let quiet_since = incident.updated_unix_ns <= executed;
        // An action takes effect over a while (a restarted process's own exit, a detector's
        // windows that still hold the fault): signals that stopped, and stayed quiet for at
        // least the later half of the time since the action, have recovered.
        // Not a burst hidden by the quiet after it: more than the action's own disruption
        // (one occurrence) must have come no faster than the signals did before.
        let settling_rate =
            new as f64 / ((incident.updated_unix_ns - executed).max(1_000_000_000) as f64);
        let settled = now - incident.updated_unix_ns >= (now - executed) / 2
            && (new <= 1 || settling_rate <= 1.5 * before_rate);
        let (state, kind, outcome) = if incident.status == IncidentStatus::Resolved
            || new == 0
            || quiet_since
        {
            (
                ActionState::Recovered,
                AuditKind::Verification,
                if new > 0 && incident.status != IncidentStatus::Resolved {
                    format!(
                        "recovered: no new occurrence since ({new} from before it arrived late)"
                    )
                } else {
                    "recovered: no new occurrence since".to_string()
                },
            )
        } else if new >= 2 && after_rate > 1.5 * before_rate {
            // The lock again before undoing: a Lease that lapsed meanwhile may be someone
            // else's now, and their action is not Vigil's to undo over.
            let target = &record.request.target;
            let held = match self.lock.acquire(target, self.hold_ns()) {
                Ok(Grant::Taken) => None,
                Ok(Grant::HeldBy(h)) => Some(format!("{target} is held by {h} now")),
                Err(e) => Some(e.to_string()),
            };
            let undone = match held {
                Some(why) => Some(Err(RuntimeError::Refused {
                    action: record.request.class.as_str(),
                    target: target.clone(),
                    why: format!("not undone: {why}"),
                })),
                None => record
                    .applied
                    .as_ref()
                    .map(|a| self.parts.runtime.undo(target, a)),
            };
            match undone {
                Some(Ok(())) => (
                    ActionState::RolledBack,
                    AuditKind::Rollback,
                    format!("worse: {new} new occurrence(s), {:.2}/s against {:.2}/s before; the inverse ran", after_rate * 1e9, before_rate * 1e9),
                ),
                Some(Err(e)) => (ActionState::Failed, AuditKind::Rollback, format!("worse, and the rollback failed: {e}")),
                None => (ActionState::Failed, AuditKind::Rollback, "worse, and nothing recorded to undo".to_string()),
            }
        } else if settled {
            (
                ActionState::Recovered,
                AuditKind::Verification,
                format!(
                    "recovered: {new} occurrence(s) while it took effect, none in the last {} s",
                    (now - incident.updated_unix_ns) / 1_000_000_000
                ),
            )
        } else {
            (
                ActionState::Escalated,
                AuditKind::Verification,
                format!("unchanged: {new} new occurrence(s); a human takes over"),
            )
        };
        self.release(&record.request.target);
        record.state = state;
        record.outcome = outcome.clone();
        self.audit(
            kind,
            record.request.incident,
            "vigil",
            format!("action {}: {outcome}", record.id),
            json!({"action": record.id, "state": state, "new_occurrences": new,
                   "rate_before_per_s": before_rate * 1e9, "rate_after_per_s": after_rate * 1e9}),
        );
        self.save(&record)
    }

    /// Proposes for what was diagnosed since the last tick, expires approvals, verifies ran
    /// actions whose window has passed.
    pub fn tick(&self) -> Result<TickReport, StoreError> {
        let _acting = self.acting.lock().unwrap_or_else(|p| p.into_inner());
        let mut report = TickReport::default();
        let queued = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()));
        for (incident, diagnosis) in queued {
            for r in self.propose(&incident, &diagnosis)? {
                report.decided += 1;
                report.executed += usize::from(r.executed_unix_ns.is_some());
            }
        }
        let now = self.parts.clock.now_unix_ns();
        for r in self
            .parts
            .store
            .actions_in(&[ActionState::PendingApproval, ActionState::Verifying])?
        {
            match r.state {
                ActionState::PendingApproval if r.expires_unix_ns.is_some_and(|t| now > t) => {
                    self.expire(r)?;
                    report.expired += 1;
                }
                ActionState::Verifying
                    if r.executed_unix_ns
                        .is_some_and(|t| now - t >= self.parts.verify_after_ns) =>
                {
                    self.verify(r, now)?;
                    report.verified += 1;
                }
                _ => {}
            }
        }
        Ok(report)
    }
}

impl Observer for RemediationService {
    fn diagnosed(&self, incident: &Incident, diagnosis: &Diagnosis, _took_secs: f64) {
        if diagnosis.route == Route::Remediation && incident.status == IncidentStatus::Open {
            self.queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((incident.clone(), diagnosis.clone()));
        }
    }
}
