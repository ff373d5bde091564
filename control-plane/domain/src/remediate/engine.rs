//! Deciding a plan: each proposed action is judged by every guardrail against the world as
//! the actions allowed before it in the plan will leave it, then by its class's phase.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{
    action::ActionRequest,
    fleet::{Executed, World},
    guardrails::{self, Check, Context},
    policy::{Phase, Policy},
};

/// What becomes of a proposed action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Within every limit, in an autonomous phase (or approved): run it.
    Execute,
    /// Within every limit, in the assist phase: wait for an approver.
    NeedsApproval,
    /// Within every limit, in the observe phase: logged, never run.
    ObserveOnly,
    /// A guardrail refused it.
    Refused,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub request: ActionRequest,
    pub verdict: Verdict,
    pub phase: Phase,
    /// Every guardrail's judgement, passed or not.
    pub checks: Vec<Check>,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Execute => "execute",
            Self::NeedsApproval => "needs_approval",
            Self::ObserveOnly => "observe_only",
            Self::Refused => "refused",
        }
    }
}

impl Decision {
    /// The refusing guardrails' reasons, one line.
    pub fn refusal(&self) -> Option<String> {
        let failed: Vec<String> = self
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {}", c.rule, c.why))
            .collect();
        (!failed.is_empty()).then(|| failed.join("; "))
    }
}

/// Judges one action. `approved`: an approver said yes (an assist-phase action may run).
pub fn decide(
    request: &ActionRequest,
    world: &World,
    done: &[Executed],
    locked: &BTreeSet<crate::entity::EntityId>,
    policy: &Policy,
    now_unix_ns: i64,
    approved: bool,
) -> Decision {
    let context = Context {
        policy,
        now_unix_ns,
        fleet_size: world.fleet.len(),
        workload: world.fleet.get(&request.target),
        done,
        locked,
    };
    let checks: Vec<Check> = guardrails::ALL
        .iter()
        .map(|g| g(request, &context))
        .collect();
    let phase = policy.phase(request.class);
    let verdict = if checks.iter().any(|c| !c.passed) {
        Verdict::Refused
    } else {
        match (phase, approved) {
            (Phase::Autonomous, _) | (Phase::Assist, true) => Verdict::Execute,
            (Phase::Assist, false) => Verdict::NeedsApproval,
            (Phase::Observe, _) => Verdict::ObserveOnly,
        }
    };
    Decision {
        request: request.clone(),
        verdict,
        phase,
        checks,
    }
}

/// Judges a plan in order: what one action is allowed counts against the next (its target is
/// locked, it joins the history), so a plan never goes past a limit its actions each respect.
pub fn plan(
    requests: &[ActionRequest],
    world: &World,
    policy: &Policy,
    now_unix_ns: i64,
) -> Vec<Decision> {
    let mut done = world.history.clone();
    let mut locked = world.locked.clone();
    requests
        .iter()
        .map(|r| {
            let d = decide(r, world, &done, &locked, policy, now_unix_ns, false);
            if d.verdict == Verdict::Execute {
                done.push(Executed {
                    class: r.class,
                    target: r.target.clone(),
                    replicas: r.replicas,
                    at_unix_ns: now_unix_ns,
                });
                locked.insert(r.target.clone());
            }
            d
        })
        .collect()
}
