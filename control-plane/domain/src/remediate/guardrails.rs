//! The guardrails, one function each: every one is evaluated for every action and says why
//! it passed or refused, so a refusal in the audit log explains itself.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{
    action::{ActionClass, ActionRequest},
    fleet::{Executed, Workload},
    policy::{Policy, Scope},
};
use crate::entity::EntityId;

/// One guardrail's judgement of one action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub rule: &'static str,
    pub passed: bool,
    pub why: String,
}

fn check(rule: &'static str, passed: bool, why: String) -> Check {
    Check { rule, passed, why }
}

/// What the guardrails see when judging one action: the world as it will be once the actions
/// already allowed in this plan have run.
pub struct Context<'a> {
    pub policy: &'a Policy,
    pub now_unix_ns: i64,
    pub fleet_size: usize,
    pub workload: Option<&'a Workload>,
    /// Executed earlier and allowed earlier in this plan.
    pub done: &'a [Executed],
    pub locked: &'a BTreeSet<EntityId>,
}

impl Context<'_> {
    fn in_window(&self) -> impl Iterator<Item = &Executed> {
        let since = self.now_unix_ns.saturating_sub(self.policy.window_ns);
        self.done.iter().filter(move |e| e.at_unix_ns > since)
    }
}

pub fn known_target(r: &ActionRequest, c: &Context) -> Check {
    check(
        "known_target",
        c.workload.is_some(),
        match c.workload {
            Some(w) => format!(
                "{} has {} replica(s), {} healthy",
                r.target, w.replicas, w.healthy
            ),
            None => format!(
                "{} is not in the fleet Vigil sees: its blast radius cannot be judged",
                r.target
            ),
        },
    )
}

fn label_matches(w: &Workload, pair: &str) -> bool {
    pair.split_once('=')
        .is_some_and(|(k, v)| w.labels.get(k).is_some_and(|x| x == v))
}

/// Whether the allow- and deny-lists admit `w`, and why.
pub fn scoped(scope: &Scope, w: &Workload) -> Result<(), String> {
    let ns = w.namespace.as_deref().unwrap_or("");
    if scope.deny_namespaces.iter().any(|d| d == ns) {
        return Err(format!("namespace {ns:?} is on the deny-list"));
    }
    if let Some(l) = scope.deny_labels.iter().find(|l| label_matches(w, l)) {
        return Err(format!("label {l} is on the deny-list"));
    }
    if !scope.allow_namespaces.is_empty() && !scope.allow_namespaces.iter().any(|a| a == ns) {
        return Err(format!("namespace {ns:?} is not on the allow-list"));
    }
    if !scope.allow_labels.is_empty() && !scope.allow_labels.iter().any(|l| label_matches(w, l)) {
        return Err("no label on the allow-list".into());
    }
    Ok(())
}

pub fn scope(_: &ActionRequest, c: &Context) -> Check {
    let verdict = c.workload.map_or(Err("unknown workload".into()), |w| {
        scoped(&c.policy.scope, w)
    });
    check(
        "scope",
        verdict.is_ok(),
        verdict
            .err()
            .unwrap_or_else(|| "admitted by the allow- and deny-lists".into()),
    )
}

pub fn confidence_gate(r: &ActionRequest, c: &Context) -> Check {
    check(
        "confidence_gate",
        r.confidence >= c.policy.min_confidence,
        format!(
            "diagnosis confidence {:.2}, gate {:.2}",
            r.confidence, c.policy.min_confidence
        ),
    )
}

pub fn severity_gate(r: &ActionRequest, c: &Context) -> Check {
    check(
        "severity_gate",
        r.severity >= c.policy.min_severity,
        format!(
            "severity {}, gate {}",
            r.severity.as_str(),
            c.policy.min_severity.as_str()
        ),
    )
}

pub fn lock(r: &ActionRequest, c: &Context) -> Check {
    let held = c.locked.contains(&r.target);
    check(
        "lock",
        !held,
        if held {
            format!("a remediation of {} is in progress", r.target)
        } else {
            "no remediation of the target in progress".into()
        },
    )
}

pub fn cooldown(r: &ActionRequest, c: &Context) -> Check {
    let last = c
        .done
        .iter()
        .filter(|e| e.target == r.target)
        .map(|e| e.at_unix_ns)
        .max();
    let cooling = last.filter(|t| c.now_unix_ns - t < c.policy.cooldown_ns);
    check(
        "cooldown",
        cooling.is_none(),
        match cooling {
            Some(t) => format!(
                "{} was acted on {} s ago; the cooldown is {} s",
                r.target,
                (c.now_unix_ns - t) / 1_000_000_000,
                c.policy.cooldown_ns / 1_000_000_000
            ),
            None => "outside the target's cooldown".into(),
        },
    )
}

pub fn rate_limit(_: &ActionRequest, c: &Context) -> Check {
    let n = c.in_window().count();
    let max = c.policy.max_actions_per_window as usize;
    check(
        "rate_limit",
        n < max,
        format!("{n} action(s) in the window, at most {max}"),
    )
}

pub fn fleet_blast_radius(r: &ActionRequest, c: &Context) -> Check {
    let touched: BTreeSet<&EntityId> = c.in_window().map(|e| &e.target).collect();
    let budget = c.policy.fleet_budget(c.fleet_size);
    let ok = touched.contains(&r.target) || touched.len() < budget;
    check(
        "fleet_blast_radius",
        ok,
        format!(
            "{} of {} workloads acted on in the window, at most {budget}",
            touched.len() + usize::from(!touched.contains(&r.target)),
            c.fleet_size
        ),
    )
}

pub fn replica_blast_radius(r: &ActionRequest, c: &Context) -> Check {
    let Some(w) = c.workload.filter(|_| r.class.disrupts()) else {
        return check("replica_blast_radius", true, "disrupts no replica".into());
    };
    let budget = c.policy.replica_budget(w.replicas);
    check(
        "replica_blast_radius",
        r.replicas <= budget && r.replicas <= w.replicas,
        format!(
            "disrupts {} of {} replica(s), at most {budget} at once",
            r.replicas, w.replicas
        ),
    )
}

/// The healthy replicas an action disrupts. An action on the named replica (a restart, an
/// eviction, a replica out of its pool, a rollback — a supervisor's rolls back that replica,
/// and a ReplicaSet scaled down removes its not-ready pods first) takes no healthy one away
/// when that replica is already down; a rollout restart or a cordon may disrupt any.
pub fn healthy_disrupted(r: &ActionRequest, w: &Workload) -> u32 {
    let on_the_replica = matches!(
        r.class,
        ActionClass::RestartProcess
            | ActionClass::EvictPod
            | ActionClass::RemoveReplica
            | ActionClass::Rollback
    );
    if w.down && on_the_replica {
        r.replicas.saturating_sub(1)
    } else {
        r.replicas
    }
}

pub fn last_healthy_endpoint(r: &ActionRequest, c: &Context) -> Check {
    let Some(w) = c.workload.filter(|_| r.class.disrupts()) else {
        return check("last_healthy_endpoint", true, "disrupts no replica".into());
    };
    let lost = healthy_disrupted(r, w);
    let left = w.healthy.saturating_sub(lost);
    // Dependents with no healthy endpoint left lose nothing more to a replica already down.
    let ok = w.dependents.is_empty() || left > 0 || lost == 0;
    check(
        "last_healthy_endpoint",
        ok,
        if ok {
            format!(
                "{left} healthy replica(s) stay for {} dependent(s)",
                w.dependents.len()
            )
        } else {
            format!(
                "{} dependent(s) would lose their last healthy endpoint ({} healthy, {} of them disrupted)",
                w.dependents.len(),
                w.healthy,
                lost
            )
        },
    )
}

/// Every guardrail, in the order the audit log lists them.
pub const ALL: [fn(&ActionRequest, &Context) -> Check; 10] = [
    known_target,
    scope,
    confidence_gate,
    severity_gate,
    lock,
    cooldown,
    rate_limit,
    fleet_blast_radius,
    replica_blast_radius,
    last_healthy_endpoint,
];
