//! The remediation loop over the real store, audit log and playbooks, with a runtime that
//! records what it is asked (the local and Kubernetes runtimes have their own tests): the
//! observe phase makes no call, the assist phase waits for an approver and expires safely, the
//! autonomous phase acts and then verifies — recovered when the OOM kills stop, rolled back
//! when they come faster — and a cooldown holds across a restart.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use control_plane::{
    adapters::{audit_key::KeyFile, playbooks, sqlite::SqliteStore},
    domain::{
        audit::{ports::AuditStore, AuditLog, AuditParts, CheckpointPolicy},
        clock::{Clock, ManualClock},
        diagnose::{
            model::{Diagnosis, Route},
            taxonomy::FaultClass,
        },
        entity::EntityId,
        incident::{ports::IncidentStore, IncidentId},
        ingest::{Batch, IngestService},
        remediate::{
            ports::{
                FleetView, Grant, LockError, RemediationStore, Runtime, RuntimeError, TargetLock,
            },
            ActionClass, ActionId, ActionState, Applied, Phase, Policy, RemediationError,
            RemediationParts, RemediationService, Step, Workload,
        },
        store::StoreError,
        synthetic::oom_kill,
    },
};
use serde_json::json;

mod evidence;

const APP: &str = "cgroup/shop/app";
const DB: &str = "cgroup/shop/db";
const SEC: i64 = 1_000_000_000;
const START: i64 = 1_800_000_000 * SEC;

/// Every call the service makes to act, in order.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
}

impl Runtime for Recorder {
    fn name(&self) -> &'static str {
        "recording"
    }
    fn supports(&self, class: ActionClass) -> bool {
        class != ActionClass::Rollback
    }
    fn apply(&self, target: &EntityId, step: &Step) -> Result<Applied, RuntimeError> {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("apply {} {target}", step.action.as_str()));
        Ok(Applied {
            detail: format!("memory.limit_in_bytes of {target}: 100663296 -> 150994944"),
            inverse: json!({"limit_bytes": 100663296}),
        })
    }
    fn undo(&self, target: &EntityId, applied: &Applied) -> Result<(), RuntimeError> {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("undo {target} {}", applied.inverse));
        Ok(())
    }
}

/// The app, and the database it calls.
struct Shop;

impl FleetView for Shop {
    fn fleet(&self) -> Result<BTreeMap<EntityId, Workload>, StoreError> {
        let one = || Workload {
            replicas: 1,
            healthy: 1,
            namespace: Some("shop".into()),
            ..Workload::default()
        };
        Ok(BTreeMap::from([
            (EntityId::new(APP), one()),
            (EntityId::new(DB), one()),
        ]))
    }
}

struct World {
    store: Arc<SqliteStore>,
    clock: Arc<ManualClock>,
    runtime: Arc<Recorder>,
    ingest: IngestService,
    service: RemediationService,
    _dir: tempfile::TempDir,
    seq: u64,
}

fn service(
    store: &Arc<SqliteStore>,
    clock: &Arc<ManualClock>,
    runtime: &Arc<Recorder>,
    dir: &std::path::Path,
    phase: Option<Phase>,
) -> RemediationService {
    let audit = Arc::new(
        AuditLog::open(AuditParts {
            store: store.clone(),
            signer: Arc::new(KeyFile::load_or_create(&dir.join("audit.key")).expect("key")),
            clock: clock.clone(),
            policy: CheckpointPolicy::default(),
        })
        .expect("audit"),
    );
    let mut policy = Policy::default();
    if let Some(p) = phase {
        policy.phases.insert(ActionClass::RaiseMemoryLimit, p);
    }
    RemediationService::new(RemediationParts {
        playbooks: playbooks::load(None).expect("playbooks"),
        policy,
        approval_ttl_ns: 300 * SEC,
        verify_after_ns: 60 * SEC,
        store: store.clone(),
        fleet: Arc::new(Shop),
        runtime: runtime.clone(),
        incidents: store.clone(),
        audit,
        clock: clock.clone(),
    })
}

fn world(phase: Option<Phase>) -> World {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("vigil.db")).expect("store"));
    let clock = Arc::new(ManualClock::at(START));
    let runtime = Arc::new(Recorder::default());
    let ingest = crate::support::ingest::ingest(&store, store.clone(), clock.clone());
    let service = service(&store, &clock, &runtime, dir.path(), phase);
    World {
        store,
        clock,
        runtime,
        ingest,
        service,
        _dir: dir,
        seq: 0,
    }
}

impl World {
    /// The OOM killer takes the app once more, now.
    fn oom(&mut self) -> IncidentId {
        let now = self.clock.now_unix_ns();
        self.oom_at(now)
    }

    /// An OOM kill at `at`, arriving now.
    fn oom_at(&mut self, at: i64) -> IncidentId {
        self.seq += 1;
        let report = self
            .ingest
            .ingest(&Batch {
                node: "n1".into(),
                events: vec![oom_kill(self.seq, at, APP)],
                stats: None,
            })
            .expect("ingest");
        report
            .incidents_opened
            .first()
            .or(report.incidents_updated.first())
            .copied()
            .expect("an incident")
    }

    /// The action as it stands after the next tick (its verification, once due).
    fn judged(
        &self,
        id: control_plane::domain::remediate::ActionId,
    ) -> control_plane::domain::remediate::ActionRecord {
        self.service.tick().expect("tick");
        self.store.action(id).expect("read").expect("stored")
    }

    /// `times` OOM kills of the app, `every` ns apart, each joining incident `id`.
    fn killed_every(&mut self, every: i64, times: usize, id: IncidentId) {
        for _ in 0..times {
            self.clock.advance(every);
            assert_eq!(self.oom(), id);
        }
    }

    /// An OOM kill of another workload, now: its own incident.
    fn oom_elsewhere(&mut self) -> IncidentId {
        self.seq += 1;
        let now = self.clock.now_unix_ns();
        let report = self
            .ingest
            .ingest(&Batch {
                node: "n1".into(),
                events: vec![oom_kill(self.seq, now, "cgroup/shop/worker")],
                stats: None,
            })
            .expect("ingest");
        *report.incidents_opened.first().expect("a new incident")
    }

    fn diagnose(&self, id: IncidentId) -> Vec<control_plane::domain::remediate::ActionRecord> {
        self.diagnose_as(id, FaultClass::OomKill)
    }

    fn diagnose_as(
        &self,
        id: IncidentId,
        class: FaultClass,
    ) -> Vec<control_plane::domain::remediate::ActionRecord> {
        self.diagnose_placed(id, class, None)
    }

    /// Diagnosed as `class`, the evidence placing the fault on `subject`.
    fn diagnose_placed(
        &self,
        id: IncidentId,
        class: FaultClass,
        subject: Option<EntityId>,
    ) -> Vec<control_plane::domain::remediate::ActionRecord> {
        let incident = self.store.get(id).expect("get").expect("incident");
        let diagnosis = Diagnosis {
            incident: id,
            class: Some(class),
            subject,
            confidence: 0.95,
            gate: 0.6,
            route: Route::Remediation,
            explanation: "the OOM killer took app".into(),
            breakdown: vec![],
            evidence: vec![],
            citations: vec![],
            recommended_actions: vec![],
            llm: false,
            llm_review: None,
            diagnosed_unix_ns: self.clock.now_unix_ns(),
            revisit_unix_ns: None,
            fingerprint: "f".into(),
        };
        self.service
            .propose(&incident, &diagnosis)
            .expect("propose")
    }

    fn calls(&self) -> Vec<String> {
        self.runtime.calls.lock().expect("lock").clone()
    }

    fn audit_kinds(&self) -> Vec<String> {
        self.store
            .records(0, 1_000)
            .expect("audit")
            .iter()
            .map(|r| r.kind.as_str().to_string())
            .collect()
    }
}

#[test]
fn the_observe_phase_decides_and_logs_but_never_calls_the_runtime() {
    let mut w = world(None);
    let id = w.oom();
    let actions = w.diagnose(id);
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].state, ActionState::Observed);
    assert!(w.calls().is_empty(), "{:?}", w.calls());
    w.clock.advance(3_600 * SEC);
    w.service.tick().expect("tick");
    assert!(w.calls().is_empty(), "{:?}", w.calls());
    let decision = &w.store.records(0, 10).expect("audit")[0];
    assert_eq!(decision.kind.as_str(), "decision");
    let checks = decision.body["checks"]
        .as_array()
        .expect("every rule evaluated");
    assert!(
        checks.len() >= 10 && checks.iter().all(|c| c["passed"] == true),
        "{checks:#?}"
    );
    // Proposed once per incident and action, however often it is diagnosed again.
    assert!(w.diagnose(id).is_empty());
}

#[test]
fn the_assist_phase_waits_for_an_approver_and_expires_safely() {
    let mut w = world(Some(Phase::Assist));
    let id = w.oom();
    let action = w.diagnose(id).remove(0);
    assert_eq!(action.state, ActionState::PendingApproval);
    w.clock.advance(299 * SEC);
    w.service.tick().expect("tick");
    assert!(w.calls().is_empty());
    w.clock.advance(2 * SEC);
    let report = w.service.tick().expect("tick");
    assert_eq!(report.expired, 1);
    assert!(w.calls().is_empty(), "an expired approval runs nothing");
    let e = w.service.approve(action.id, "alice").expect_err("too late");
    assert!(e.to_string().contains("is expired, not waiting"), "{e}");
    assert!(matches!(
        w.service.approve(ActionId(99), "alice"),
        Err(RemediationError::NotFound(_))
    ));
    assert_eq!(w.audit_kinds(), ["decision", "approval"]);
}

#[test]
fn an_approved_action_runs_and_recovers_when_the_kills_stop() {
    let mut w = world(Some(Phase::Assist));
    let id = w.oom();
    let action = w.diagnose(id).remove(0);
    let ran = w.service.approve(action.id, "alice").expect("approve");
    assert_eq!(ran.state, ActionState::Verifying);
    assert_eq!(ran.approved_by.as_deref(), Some("alice"));
    assert_eq!(w.calls(), [format!("apply raise_memory_limit {APP}")]);
    let e = w.service.deny(action.id, "bob").expect_err("already ran");
    assert!(e.to_string().contains("verifying"), "{e}");
    // A kill from just before the approval, in a batch that arrives after it: not a sign
    // that the action did nothing.
    w.clock.advance(2 * SEC);
    let before = ran.executed_unix_ns.expect("ran") - SEC;
    assert_eq!(w.oom_at(before), id);
    w.clock.advance(59 * SEC);
    assert_eq!(w.service.tick().expect("tick").verified, 1);
    let done = w.store.action(action.id).expect("read").expect("stored");
    assert_eq!(done.state, ActionState::Recovered, "{}", done.outcome);
    assert_eq!(
        w.audit_kinds(),
        ["decision", "approval", "action", "verification"]
    );
}

#[test]
fn an_incident_diagnosed_anew_as_another_class_gets_no_second_playbook() {
    let mut w = world(Some(Phase::Autonomous));
    let id = w.oom();
    let first = w.diagnose(id);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].fault_class, Some(FaultClass::OomKill));
    // A later fault's evidence on the same workload: the open incident now reads as a CPU
    // quota problem. Its actions were decided for the OOM kill; nothing new is proposed.
    assert!(w.diagnose_as(id, FaultClass::CpuThrottling).is_empty());
    assert_eq!(w.calls(), [format!("apply raise_memory_limit {APP}")]);
    // A new incident with that class gets its own playbook.
    let elsewhere = w.oom_elsewhere();
    let other = w.diagnose_as(elsewhere, FaultClass::CpuThrottling);
    assert_eq!(other.len(), 1, "{other:?}");
    assert_eq!(other[0].request.class, ActionClass::ChangeCpuQuota);
}

#[test]
fn signals_that_stop_soon_after_the_action_are_recovered_and_ones_that_go_on_are_not() {
    // Killed every 5 s before; twice, as often, while the action takes effect, then quiet for
    // the rest of the window.
    let mut w = world(Some(Phase::Autonomous));
    let id = w.oom();
    w.killed_every(5 * SEC, 10, id);
    let action = w.diagnose(id).remove(0);
    w.killed_every(5 * SEC, 2, id);
    w.clock.advance(51 * SEC);
    let done = w.judged(action.id);
    assert_eq!(done.state, ActionState::Recovered, "{}", done.outcome);
    assert!(
        done.outcome
            .contains("2 occurrence(s) while it took effect"),
        "{}",
        done.outcome
    );
    // A burst right after the action (ten kills in 2 s against one every 5 s before), then
    // quiet: the quiet does not hide it.
    let mut w = world(Some(Phase::Autonomous));
    let id = w.oom();
    w.killed_every(5 * SEC, 10, id);
    let action = w.diagnose(id).remove(0);
    w.killed_every(SEC / 5, 10, id);
    w.clock.advance(59 * SEC);
    let done = w.judged(action.id);
    assert_ne!(done.state, ActionState::Recovered, "{}", done.outcome);
    // Once just after the action and once near the window's end: not settled.
    let mut w = world(Some(Phase::Autonomous));
    let id = w.oom();
    w.killed_every(10 * SEC, 5, id);
    let action = w.diagnose(id).remove(0);
    w.clock.advance(5 * SEC);
    assert_eq!(w.oom(), id);
    w.clock.advance(50 * SEC);
    assert_eq!(w.oom(), id);
    w.clock.advance(6 * SEC);
    let done = w.judged(action.id);
    assert_eq!(done.state, ActionState::Escalated, "{}", done.outcome);
}

#[test]
fn an_autonomous_action_that_makes_things_worse_is_rolled_back() {
    let mut w = world(Some(Phase::Autonomous));
    let id = w.oom();
    w.clock.advance(50 * SEC);
    let action = w.diagnose(id).remove(0);
    assert_eq!(action.state, ActionState::Verifying);
    // Killed three times in the minute after, against once in the 50 s before.
    for _ in 0..3 {
        w.clock.advance(10 * SEC);
        assert_eq!(w.oom(), id);
    }
    w.clock.advance(31 * SEC);
    let done = w.judged(action.id);
    assert_eq!(done.state, ActionState::RolledBack, "{}", done.outcome);
    assert_eq!(
        w.calls(),
        [
            format!("apply raise_memory_limit {APP}"),
            format!("undo {APP} {{\"limit_bytes\":100663296}}")
        ]
    );
    assert_eq!(w.audit_kinds(), ["decision", "action", "rollback"]);
}

/// A lock someone else may hold; every acquire and release, in order.
#[derive(Default)]
struct Locks {
    holder: std::sync::Mutex<Option<String>>,
    calls: std::sync::Mutex<Vec<String>>,
}

impl TargetLock for Locks {
    fn acquire(&self, target: &EntityId, for_ns: i64) -> Result<Grant, LockError> {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("acquire {target} {}s", for_ns / SEC));
        Ok(match self.holder.lock().expect("lock").clone() {
            Some(h) => Grant::HeldBy(h),
            None => Grant::Taken,
        })
    }
    fn release(&self, target: &EntityId) -> Result<(), LockError> {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("release {target}"));
        Ok(())
    }
}

/// `w`'s store, clock and runtime behind a new autonomous service, to configure further.
fn autonomous_service(w: &World) -> RemediationService {
    service(
        &w.store,
        &w.clock,
        &w.runtime,
        w._dir.path(),
        Some(Phase::Autonomous),
    )
}

fn world_locked(locks: &Arc<Locks>) -> World {
    let mut w = world(Some(Phase::Autonomous));
    w.service = autonomous_service(&w).with_lock(locks.clone());
    w
}

#[test]
fn an_action_whose_target_another_replica_holds_is_refused_and_never_runs() {
    let locks = Arc::new(Locks::default());
    *locks.holder.lock().expect("lock") = Some("cp-b".into());
    let mut w = world_locked(&locks);
    let id = w.oom();
    let action = w.diagnose(id).remove(0);
    assert_eq!(action.state, ActionState::Refused, "{}", action.outcome);
    assert!(
        action.outcome.contains("held by cp-b"),
        "{}",
        action.outcome
    );
    assert!(w.calls().is_empty(), "{:?}", w.calls());
    assert_eq!(w.audit_kinds(), ["decision", "action"]);
}

#[test]
fn an_action_runs_under_its_targets_lock_and_gives_it_back_once_judged() {
    let locks = Arc::new(Locks::default());
    let mut w = world_locked(&locks);
    let id = w.oom();
    let action = w.diagnose(id).remove(0);
    assert_eq!(action.state, ActionState::Verifying, "{}", action.outcome);
    w.clock.advance(61 * SEC);
    w.service.tick().expect("tick");
    assert_eq!(
        *locks.calls.lock().expect("lock"),
        [format!("acquire {APP} 120s"), format!("release {APP}")],
        "held through the verification (twice its window), released once judged"
    );
}

#[test]
fn a_rollback_waits_for_the_lock_and_is_not_run_over_someone_elses() {
    let locks = Arc::new(Locks::default());
    let mut w = world_locked(&locks);
    let id = w.oom();
    w.clock.advance(50 * SEC);
    let action = w.diagnose(id).remove(0);
    assert_eq!(action.state, ActionState::Verifying);
    for _ in 0..3 {
        w.clock.advance(10 * SEC);
        w.oom();
    }
    // The Lease lapsed while the kills came faster, and another replica took the target.
    *locks.holder.lock().expect("lock") = Some("cp-b".into());
    w.clock.advance(31 * SEC);
    let done = w.judged(action.id);
    assert_eq!(done.state, ActionState::Failed, "{}", done.outcome);
    assert!(
        done.outcome.contains("not undone") && done.outcome.contains("held by cp-b"),
        "{}",
        done.outcome
    );
    assert_eq!(
        w.calls(),
        [format!("apply raise_memory_limit {APP}")],
        "no undo over cp-b's work"
    );
}

/// After a restart or a failover the IncidentReport's status is written from the store, not
/// from an empty memory: the action's steps stay in the report.
#[test]
fn a_reports_action_steps_are_read_back_from_the_store() {
    use control_plane::adapters::kube::book::{ReportBook, Stored};
    let mut w = world(Some(Phase::Autonomous));
    let id = w.oom();
    let action = w.diagnose(id).remove(0);
    w.clock.advance(61 * SEC);
    w.service.tick().expect("tick");
    let book = ReportBook::with_store(Stored {
        diagnoses: w.store.clone(),
        actions: w.store.clone(),
    });
    let incident = w.store.get(id).expect("get").expect("incident");
    let status = book.status(&incident);
    let steps: Vec<(&str, i64)> = status["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["state"].as_str().unwrap_or(""),
                s["id"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    let id = action.id.0;
    assert_eq!(
        steps,
        [("proposed", id), ("applied", id), ("verified", id)],
        "{status:#}"
    );
}

#[test]
fn a_cooldown_holds_across_a_restart() {
    let mut w = world(Some(Phase::Autonomous));
    let id = w.oom();
    assert_eq!(w.diagnose(id)[0].state, ActionState::Verifying);
    w.clock.advance(61 * SEC);
    w.service.tick().expect("verified");
    // The incident resolves; a new one opens on the same workload after a restart of Vigil.
    w.store.resolve(id, w.clock.now_unix_ns()).expect("resolve");
    w.clock.advance(60 * SEC);
    w.service = autonomous_service(&w);
    let again = w.oom();
    assert_ne!(again, id);
    let refused = w.diagnose(again).remove(0);
    assert_eq!(refused.state, ActionState::Refused);
    assert!(refused.outcome.contains("cooldown"), "{}", refused.outcome);
    assert_eq!(w.calls().len(), 1);
}

/// Through the real control plane and the CLI: the OOM kill's diagnosis proposes raising the
/// memory limit, which in the assist phase waits; `vigil approve` runs it through the local
/// runtime, which refuses a workload with no cgroup-v1 directory and says so; a second word on
/// it is refused as no longer pending. A viewer's approval is forbidden (403), one without a
/// token unauthenticated (401); the approver recorded is the token's holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_approves_from_the_cli_and_the_runtime_answers() {
    use crate::support::{
        cli::{issue_token, ok, refused, vigil, vigil_as},
        plane::Plane,
    };
    use control_plane::config::RuntimeKind;
    const GONE: &str = "cgroup/vigil-test-no-such-cgroup/app";
    let plane = Plane::start_with(&[GONE], |c| {
        c.remediation.runtime = RuntimeKind::Local;
        c.remediation
            .phases
            .insert(ActionClass::RaiseMemoryLimit, Phase::Assist);
    })
    .await;
    let mut listed = String::new();
    for _ in 0..50 {
        listed = ok(&vigil(&plane, &["actions", "--incident", "1"]).await);
        if listed.contains("pending_approval") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        listed.contains("raise_memory_limit") && listed.contains("pending_approval"),
        "{listed}"
    );
    let viewer = issue_token(&plane, "carol", "viewer").await;
    let alice = issue_token(&plane, "alice", "approver").await;
    let bob = issue_token(&plane, "bob", "approver").await;
    let e = refused(&vigil_as(&plane, &viewer, &["approve", "1", "1"]).await);
    assert!(
        e.contains("403") && e.contains("token `carol` is a viewer"),
        "{e}"
    );
    let nobody = plane.dir().join("empty.token");
    std::fs::write(&nobody, "").expect("write");
    let e = refused(&vigil_as(&plane, &nobody, &["approve", "1", "1"]).await);
    assert!(e.contains("401") && e.contains("no API token"), "{e}");
    let still = ok(&vigil_as(&plane, &viewer, &["actions", "--incident", "1"]).await);
    assert!(
        still.contains("pending_approval"),
        "a viewer reads: {still}"
    );
    let e = refused(&vigil_as(&plane, &alice, &["approve", "2", "1"]).await);
    assert!(e.contains("not one of incident 2's actions"), "{e}");
    let ran = ok(&vigil_as(
        &plane,
        &alice,
        &["--json", "approve", "1", "1", "--reason", "more headroom"],
    )
    .await);
    let ran: serde_json::Value = serde_json::from_str(&ran).expect("JSON");
    assert_eq!(
        ran["approved_by"], "alice (more headroom)",
        "the token's holder: {ran:#}"
    );
    let ran = ran.to_string();
    assert!(
        ran.contains("failed") && ran.contains("no cgroup-v1 directory"),
        "{ran}"
    );
    let e = refused(&vigil_as(&plane, &bob, &["deny", "1", "1"]).await);
    assert!(e.contains("is failed, not waiting for an approval"), "{e}");
    let audit = ok(&vigil(&plane, &["audit"]).await);
    for step in ["decision", "approval", "action"] {
        assert!(audit.contains(step), "{step} missing: {audit}");
    }
    // The class's record: decided once in the assist phase, and nothing ran (the runtime
    // refused before acting), so no verification to count.
    let record = ok(&vigil(&plane, &["actions", "--record"]).await);
    let line: Vec<&str> = record
        .lines()
        .find(|l| l.starts_with("raise_memory_limit"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(
        line,
        [
            "raise_memory_limit",
            "assist",
            "1",
            "0",
            "0",
            "0",
            "0",
            "0",
            "–"
        ],
        "{record}"
    );
    let metrics = plane
        .client()
        .get(format!("{}/metrics", plane.base()))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(
            "vigil_remediation_actions_total{class=\"raise_memory_limit\",state=\"failed\"} 1"
        ),
        "{metrics}"
    );
    plane.stop().await;
}
