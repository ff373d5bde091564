//! Vigil's turn in a run: with the fault still in, the incident remediation would act on,
//! what it decided, and — when its action ran — how long until the target served again. A
//! real fault does not tear itself down; this is the recovery an operator would see.

use std::time::{Duration, Instant};

use super::{
    vigil::{service_of, Chosen, Diagnosed, VigilApi},
    Detection,
};
use crate::{
    state::now_unix_ms,
    testbed::{
        health::{check, request_url},
        Testbed,
    },
};

/// States of an action that ran.
const RAN: [&str; 4] = ["verifying", "recovered", "escalated", "rolled_back"];
/// How long each claimed incident's diagnosis may take to appear during Vigil's turn.
const DIAGNOSIS_WAIT: Duration = Duration::from_secs(3);
/// How long remediation may take to decide after the diagnosis (one tick and a margin).
const DECISION_WAIT: Duration = Duration::from_secs(4);
/// How long the fault is held, after Vigil's action ran, for the target to serve again.
const RECOVERY_WAIT: Duration = Duration::from_secs(20);
/// How long past that the action's verification may take to end (the lab's control plane
/// judges an action 8 s after it ran, on its next tick).
const VERIFY_WAIT: Duration = Duration::from_secs(14);

/// What remediation would act on among the incidents a fault can claim: a confident
/// diagnosis (routed to remediation), the most severe first (a crash loop over the
/// supervisor's kill that started it); then, with none confident, the most severe with a
/// class; then the first.
pub fn primary(claimed: &[Detection], diagnoses: &[Option<Diagnosed>]) -> Option<usize> {
    let confident = |i: usize| {
        diagnoses[i]
            .as_ref()
            .is_some_and(|d| d.class.is_some() && d.route == "remediation")
    };
    let critical = |i: usize| claimed[i].severity == "critical";
    let classed = |i: usize| diagnoses[i].as_ref().is_some_and(|d| d.class.is_some());
    let n = claimed.len();
    (0..n)
        .find(|&i| confident(i) && critical(i))
        .or_else(|| (0..n).find(|&i| confident(i)))
        .or_else(|| (0..n).find(|&i| classed(i) && critical(i)))
        .or((n > 0).then_some(0))
}

#[derive(Debug, Clone)]
pub struct Acted {
    pub incident_id: i64,
    pub chosen: Chosen,
    /// From the injection to the target serving again, the fault still in.
    pub recovered_after_ms: Option<u64>,
}

/// Vigil's turn: `None` when no incident was routed to remediation while the fault was in.
pub fn turn(v: &VigilApi, bed: &Testbed, injected: u64, direct: Option<&str>) -> Option<Acted> {
    let mut claimed = v.incidents_between(injected, now_unix_ms());
    claimed.sort_by_key(|d| d.opened_unix_ms);
    let diagnoses: Vec<Option<Diagnosed>> = claimed
        .iter()
        .map(|d| v.diagnosis(d.incident_id, DIAGNOSIS_WAIT))
        .collect();
    let i = primary(&claimed, &diagnoses)?;
    if diagnoses[i]
        .as_ref()
        .is_none_or(|d| d.route != "remediation")
    {
        return None;
    }
    let decided = v.chosen_action(claimed[i].incident_id, DECISION_WAIT, Duration::ZERO)?;
    // One fault can have several incidents on one target (the kill that starts a crash
    // loop, the loop; an incident still open from the fault before, which the new evidence
    // joins), and one remediation per target means the first decided acts and the others
    // are refused by its lock. What Vigil did for the fault is the action that ran since the
    // injection for one of its incidents, else on a workload they name.
    let services: Vec<String> = claimed
        .iter()
        .filter_map(|d| service_of(&d.workload_key))
        .collect();
    let ran_since: Vec<serde_json::Value> = v
        .actions_decided_since(injected)
        .into_iter()
        .filter(|a| RAN.contains(&a["state"].as_str().unwrap_or("")))
        .collect();
    let ran = ran_since
        .iter()
        .find(|a| {
            a["request"]["incident"]
                .as_i64()
                .is_some_and(|id| claimed.iter().any(|d| d.incident_id == id))
        })
        .or_else(|| {
            ran_since.iter().find(|a| {
                a["request"]["target"]
                    .as_str()
                    .and_then(service_of)
                    .is_some_and(|s| services.contains(&s))
            })
        })
        .cloned();
    let Some(ran) = ran else {
        return Some(Acted {
            incident_id: claimed[i].incident_id,
            chosen: decided,
            recovered_after_ms: None,
        });
    };
    let recovered_after_ms =
        wait_serving(bed, direct, RECOVERY_WAIT).then(|| now_unix_ms().saturating_sub(injected));
    // Held until the verifier has judged the action against the fault it was for.
    let id = ran["id"].as_i64();
    let until = Instant::now() + VERIFY_WAIT;
    let mut last = ran.clone();
    while last["state"] == "verifying" && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(250));
        if let Some(a) = v
            .actions_decided_since(injected)
            .into_iter()
            .find(|a| a["id"].as_i64() == id)
        {
            last = a;
        }
    }
    // Served again, and judged recovered by the verifier: not a path nginx routed around
    // while the action did nothing.
    let recovered_after_ms = recovered_after_ms.filter(|_| last["state"] == "recovered");
    Some(Acted {
        incident_id: last["request"]["incident"]
            .as_i64()
            .unwrap_or(claimed[i].incident_id),
        chosen: Chosen::of(&last),
        recovered_after_ms,
    })
}

/// Whether the end-to-end path and the target itself (when it answers directly) serve
/// three checks in a row within `timeout`.
fn wait_serving(bed: &Testbed, direct: Option<&str>, timeout: Duration) -> bool {
    let until = Instant::now() + timeout;
    let mut in_a_row = 0;
    while Instant::now() < until {
        let ok = check(bed.client(), bed.baseline).is_ok()
            && direct.is_none_or(|url| request_url(bed.client(), url).is_some());
        in_a_row = if ok { in_a_row + 1 } else { 0 };
        if in_a_row >= 3 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
