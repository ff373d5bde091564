//! The guardrails' promises: explained refusals for each rule, and for random fleets, graphs,
//! histories, locks, policies and plans, no executed action breaks any of them.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::{
    guardrails::scoped, plan, ActionClass, ActionRequest, Executed, Phase, Policy, Scope, Verdict,
    Workload, World,
};
use crate::{
    entity::EntityId,
    incident::{IncidentId, Severity},
};

const SEC: i64 = 1_000_000_000;
const NOW: i64 = 1_000_000 * SEC;

fn autonomous() -> Policy {
    Policy {
        phases: ActionClass::ALL
            .iter()
            .map(|c| (*c, Phase::Autonomous))
            .collect(),
        ..Policy::default()
    }
}

fn request(target: &str, class: ActionClass, replicas: u32) -> ActionRequest {
    ActionRequest {
        incident: IncidentId(1),
        class,
        target: EntityId::new(target),
        replicas,
        confidence: 0.9,
        severity: Severity::Critical,
    }
}

fn fleet(n: usize, replicas: u32) -> World {
    World {
        fleet: (0..n)
            .map(|i| {
                (
                    EntityId::new(format!("w{i}")),
                    Workload {
                        replicas,
                        healthy: replicas,
                        namespace: Some("shop".into()),
                        ..Workload::default()
                    },
                )
            })
            .collect(),
        ..World::default()
    }
}

fn refusal(world: &World, policy: &Policy, r: ActionRequest) -> String {
    let d = plan(&[r], world, policy, NOW).remove(0);
    assert_eq!(d.verdict, Verdict::Refused, "{d:#?}");
    d.refusal().unwrap_or_default()
}

/// A permitted request's guardrails, `rule: why` each.
fn guardrails_of(world: &World, policy: &Policy, r: ActionRequest) -> String {
    let d = plan(&[r], world, policy, NOW).remove(0);
    assert_eq!(d.verdict, Verdict::Execute, "{d:#?}");
    d.checks
        .iter()
        .map(|c| format!("{}: {}", c.rule, c.why))
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn each_refusal_names_its_rule_and_reason() {
    let mut world = fleet(20, 4);
    let p = autonomous();
    let e = refusal(&world, &p, request("ghost", ActionClass::RestartProcess, 1));
    assert!(
        e.contains("known_target") && e.contains("not in the fleet"),
        "{e}"
    );
    let e = refusal(&world, &p, request("w0", ActionClass::EvictPod, 2));
    assert!(
        e.contains("replica_blast_radius: disrupts 2 of 4 replica(s), at most 1"),
        "{e}"
    );
    let mut low = request("w0", ActionClass::RaiseMemoryLimit, 0);
    low.confidence = 0.4;
    let e = refusal(&world, &p, low);
    assert!(
        e.contains("confidence_gate: diagnosis confidence 0.40, gate 0.60"),
        "{e}"
    );

    let w = world.fleet.get_mut(&EntityId::new("w1")).expect("w1");
    w.healthy = 1;
    w.dependents.insert(EntityId::new("w2"));
    let e = refusal(&world, &p, request("w1", ActionClass::RestartProcess, 1));
    assert!(
        e.contains("last_healthy_endpoint: 1 dependent(s) would lose their last healthy endpoint"),
        "{e}"
    );
    // The replica that is down (the one the incident names) is restarted: its dependents
    // keep the healthy one they have.
    let w = world.fleet.get_mut(&EntityId::new("w1")).expect("w1");
    w.replicas = 2;
    w.down = true;
    let checks = guardrails_of(&world, &p, request("w1", ActionClass::RestartProcess, 1));
    assert!(
        checks.contains("last_healthy_endpoint: 1 healthy replica(s) stay"),
        "{checks}"
    );
    // Two disrupted with one healthy: the other one is lost even though the target is down;
    // and a workload-wide action is not discounted at all.
    let e = refusal(&world, &p, request("w1", ActionClass::RestartProcess, 2));
    assert!(e.contains("last_healthy_endpoint"), "{e}");
    let e = refusal(&world, &p, request("w1", ActionClass::RolloutRestart, 1));
    assert!(e.contains("last_healthy_endpoint"), "{e}");
    let w = world.fleet.get_mut(&EntityId::new("w1")).expect("w1");
    w.replicas = 1;
    w.down = false;

    world.history.push(Executed {
        class: ActionClass::RestartProcess,
        target: EntityId::new("w3"),
        replicas: 1,
        at_unix_ns: NOW - 60 * SEC,
    });
    let e = refusal(&world, &p, request("w3", ActionClass::RaiseMemoryLimit, 0));
    assert!(
        e.contains("cooldown: w3 was acted on 60 s ago; the cooldown is 600 s"),
        "{e}"
    );

    world.locked.insert(EntityId::new("w4"));
    let e = refusal(&world, &p, request("w4", ActionClass::RaiseMemoryLimit, 0));
    assert!(
        e.contains("lock: a remediation of w4 is in progress"),
        "{e}"
    );

    let mut denied = autonomous();
    denied.scope.deny_namespaces = vec!["shop".into()];
    let e = refusal(
        &world,
        &denied,
        request("w5", ActionClass::RaiseMemoryLimit, 0),
    );
    assert!(
        e.contains("scope: namespace \"shop\" is on the deny-list"),
        "{e}"
    );
}

#[test]
fn a_plan_stops_at_the_fleet_budget_and_the_rate_limit() {
    let world = fleet(20, 4);
    let p = autonomous();
    // 10 % of 20 workloads: two may be acted on this window.
    let requests: Vec<_> = (0..4)
        .map(|i| request(&format!("w{i}"), ActionClass::RaiseMemoryLimit, 0))
        .collect();
    let verdicts: Vec<Verdict> = plan(&requests, &world, &p, NOW)
        .iter()
        .map(|d| d.verdict)
        .collect();
    assert_eq!(
        verdicts,
        [
            Verdict::Execute,
            Verdict::Execute,
            Verdict::Refused,
            Verdict::Refused
        ]
    );
}

#[test]
fn the_phase_decides_what_a_permitted_action_becomes() {
    let world = fleet(20, 4);
    let mut p = autonomous();
    p.phases.insert(ActionClass::RestartProcess, Phase::Observe);
    p.phases
        .insert(ActionClass::RaiseMemoryLimit, Phase::Assist);
    let d = plan(
        &[
            request("w0", ActionClass::RestartProcess, 1),
            request("w1", ActionClass::RaiseMemoryLimit, 0),
            request("w2", ActionClass::ChangeCpuQuota, 0),
        ],
        &world,
        &p,
        NOW,
    );
    let verdicts: Vec<Verdict> = d.iter().map(|d| d.verdict).collect();
    assert_eq!(
        verdicts,
        [
            Verdict::ObserveOnly,
            Verdict::NeedsApproval,
            Verdict::Execute
        ]
    );
    // A class no config names is observed only.
    assert_eq!(
        Policy::default().phase(ActionClass::Rollback),
        Phase::Observe
    );
}

fn classes() -> impl Strategy<Value = ActionClass> {
    proptest::sample::select(ActionClass::ALL.to_vec())
}

fn phases() -> impl Strategy<Value = Phase> {
    prop_oneof![
        Just(Phase::Observe),
        Just(Phase::Assist),
        Just(Phase::Autonomous)
    ]
}

fn name(i: usize) -> EntityId {
    EntityId::new(format!("w{i}"))
}

const NAMESPACES: [&str; 3] = ["shop", "payments", "kube-system"];

prop_compose! {
    fn workload(n: usize)(replicas in 1u32..10, healthy_share in 0.0f64..=1.0, down in any::<bool>(),
                          ns in 0usize..3, tier in 0usize..2,
                          dependents in proptest::collection::btree_set(0..n, 0..3)) -> Workload {
        Workload {
            replicas,
            healthy: (f64::from(replicas) * healthy_share).round() as u32,
            down,
            namespace: Some(NAMESPACES[ns].to_string()),
            labels: BTreeMap::from([("tier".to_string(), ["web", "db"][tier].to_string())]),
            dependents: dependents.into_iter().map(name).collect(),
        }
    }
}

prop_compose! {
    fn world()(n in 1usize..14)
              (fleet in proptest::collection::vec(workload(n), n),
               history in proptest::collection::vec((0..n + 2, classes(), 0u32..4, 0i64..7_200), 0..10),
               locked in proptest::collection::btree_set(0..n, 0..3)) -> World {
        World {
            fleet: fleet.into_iter().enumerate().map(|(i, w)| (name(i), w)).collect(),
            history: history.into_iter().map(|(t, class, replicas, ago)| Executed {
                class, target: name(t), replicas, at_unix_ns: NOW - ago * SEC,
            }).collect(),
            locked: locked.into_iter().map(name).collect(),
        }
    }
}

prop_compose! {
    fn policy()(replica in 0.05f64..0.8, fleet_share in 0.05f64..0.6, max_actions in 0u32..8,
                window in 60i64..7_200, cooldown in 0i64..3_600, min_confidence in 0.0f64..1.0,
                critical_only in any::<bool>(),
                phases in proptest::collection::btree_map(classes(), phases(), 0..15),
                deny_ns in proptest::collection::vec(0usize..3, 0..2),
                allow_ns in proptest::collection::vec(0usize..3, 0..3),
                deny_db in any::<bool>()) -> Policy {
        Policy {
            max_replica_fraction: replica,
            max_fleet_fraction: fleet_share,
            max_actions_per_window: max_actions,
            window_ns: window * SEC,
            cooldown_ns: cooldown * SEC,
            scope: Scope {
                allow_namespaces: allow_ns.into_iter().map(|i| NAMESPACES[i].to_string()).collect(),
                deny_namespaces: deny_ns.into_iter().map(|i| NAMESPACES[i].to_string()).collect(),
                allow_labels: Vec::new(),
                deny_labels: if deny_db { vec!["tier=db".into()] } else { Vec::new() },
            },
            min_confidence,
            min_severity: if critical_only { Severity::Critical } else { Severity::Warning },
            phases,
        }
    }
}

prop_compose! {
    fn requests(n: usize)(list in proptest::collection::vec(
        (0..n + 1, classes(), 0u32..5, 0.0f64..1.0, any::<bool>()), 0..16)) -> Vec<ActionRequest> {
        list.into_iter().map(|(t, class, replicas, confidence, critical)| ActionRequest {
            incident: IncidentId(1),
            class,
            target: name(t),
            replicas,
            confidence,
            severity: if critical { Severity::Critical } else { Severity::Warning },
        }).collect()
    }
}

fn scenario() -> impl Strategy<Value = (World, Policy, Vec<ActionRequest>)> {
    world().prop_flat_map(|w| {
        let n = w.fleet.len();
        (Just(w), policy(), requests(n))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn no_executed_plan_breaks_a_guardrail((world, policy, requests) in scenario()) {
        let decisions = plan(&requests, &world, &policy, NOW);
        prop_assert_eq!(decisions.len(), requests.len());
        let executed: Vec<&ActionRequest> = decisions
            .iter()
            .filter(|d| d.verdict == Verdict::Execute)
            .map(|d| &d.request)
            .collect();
        let since = NOW - policy.window_ns;
        let history_in_window: Vec<&Executed> =
            world.history.iter().filter(|e| e.at_unix_ns > since).collect();

        for r in &executed {
            // Phase: only autonomous classes run without an approver.
            prop_assert_eq!(policy.phase(r.class), Phase::Autonomous);
            // Gates.
            prop_assert!(r.confidence >= policy.min_confidence);
            prop_assert!(r.severity >= policy.min_severity);
            // Known, in scope, not locked.
            let w = world.fleet.get(&r.target);
            prop_assert!(w.is_some());
            let w = w.expect("checked");
            prop_assert!(scoped(&policy.scope, w).is_ok());
            prop_assert!(!world.locked.contains(&r.target));
            // Cooldown against the history.
            prop_assert!(world.history.iter().all(|e| e.target != r.target
                || NOW - e.at_unix_ns >= policy.cooldown_ns));
            // Blast radius within the workload, and never the dependents' last endpoint.
            if r.class.disrupts() {
                prop_assert!(r.replicas <= policy.replica_budget(w.replicas));
                prop_assert!(r.replicas <= w.replicas);
                // Some healthy replica stays for the dependents: the target itself may be the
                // one down only for an action on that replica alone.
                let alone = matches!(r.class, ActionClass::RestartProcess | ActionClass::EvictPod
                    | ActionClass::RemoveReplica | ActionClass::Rollback);
                let stays = if w.down && alone {
                    w.healthy + 1 > r.replicas || r.replicas <= 1
                } else {
                    w.healthy > r.replicas || r.replicas == 0
                };
                prop_assert!(w.dependents.is_empty() || stays);
            }
        }
        // One remediation per target: never two in one plan.
        let targets: BTreeSet<&EntityId> = executed.iter().map(|r| &r.target).collect();
        prop_assert_eq!(targets.len(), executed.len());
        // Rate limit over the window, history included.
        if !executed.is_empty() {
            prop_assert!(history_in_window.len() + executed.len()
                <= policy.max_actions_per_window as usize);
        }
        // Fleet blast radius: new targets only while the window's set is under budget.
        let touched: BTreeSet<&EntityId> = history_in_window.iter().map(|e| &e.target).collect();
        let all: BTreeSet<&EntityId> = touched.iter().copied().chain(targets.iter().copied()).collect();
        if targets.iter().any(|t| !touched.contains(t)) {
            prop_assert!(all.len() <= policy.fleet_budget(world.fleet.len()));
        }
        // Nothing runs in observe or assist: they are only logged or wait.
        for d in &decisions {
            if d.verdict == Verdict::ObserveOnly { prop_assert_eq!(d.phase, Phase::Observe); }
            if d.verdict == Verdict::NeedsApproval { prop_assert_eq!(d.phase, Phase::Assist); }
            // Every refusal says why.
            prop_assert_eq!(d.verdict == Verdict::Refused, d.refusal().is_some());
        }
    }
}
