//! Which evidence an action may rest on, and where it lands: a degraded node's evidence waits
//! for an approver; the action goes where the evidence places the fault.

use super::*;

/// `world` with the node agents' modes consulted, node n1 (where the OOM kills are seen)
/// reporting `shed` (empty: full telemetry), or unknown to the store (`None`).
fn world_with_node(shed: Option<&[&str]>) -> World {
    use control_plane::domain::node::{ports::NodeStore, AgentStats, NodeInfo};
    let mut w = world(Some(Phase::Autonomous));
    w.service = autonomous_service(&w).with_nodes(w.store.clone());
    let Some(shed) = shed else {
        return w;
    };
    w.store
        .record_hello(&NodeInfo {
            name: "n1".into(),
            ..NodeInfo::default()
        })
        .expect("hello");
    // The agent's counters, as its stream reports them.
    w.ingest
        .ingest(&Batch {
            node: "n1".into(),
            events: vec![],
            stats: Some(AgentStats {
                shed: shed.iter().map(|s| s.to_string()).collect(),
                degraded_cause: if shed.is_empty() {
                    String::new()
                } else {
                    "cpu: 31.0 % of a core over a budget of 20.0 % (budget.cpu_percent)".into()
                },
                ..AgentStats::default()
            }),
        })
        .expect("stats");
    w
}

/// The action was held for an approver and the runtime saw no call.
fn assert_waits_for_an_approver(
    w: &World,
    action: &control_plane::domain::remediate::ActionRecord,
) {
    assert_eq!(
        action.state,
        ActionState::PendingApproval,
        "{}",
        action.outcome
    );
    assert!(w.calls().is_empty(), "{:?}", w.calls());
}

#[test]
fn evidence_only_a_degraded_node_saw_waits_for_an_approver_even_when_autonomous() {
    let mut w = world_with_node(Some(&["payload", "latency"]));
    let id = w.oom();
    let action = w.diagnose(id).remove(0);
    assert_waits_for_an_approver(&w, &action);
    let decision = &w.store.records(0, 10).expect("audit")[0];
    let why = decision.body["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["rule"] == "evidence_trusted")
        .and_then(|c| c["why"].as_str())
        .expect("the evidence rule, explained")
        .to_string();
    assert!(
        why.contains("degraded") && why.contains("n1") && why.contains("budget.cpu_percent"),
        "{why}"
    );
    // An approver may still take it.
    let ran = w.service.approve(action.id, "alice").expect("approve");
    assert_eq!(ran.state, ActionState::Verifying);
    assert_eq!(w.calls(), [format!("apply raise_memory_limit {APP}")]);

    // The same incident seen by a node with full telemetry acts on its own.
    let mut w = world_with_node(Some(&[]));
    let id = w.oom();
    let action = w.diagnose(id).remove(0);
    assert_eq!(action.state, ActionState::Verifying, "{}", action.outcome);
    assert_eq!(w.calls(), [format!("apply raise_memory_limit {APP}")]);

    // A node the control plane has no mode for is not taken as whole.
    let mut w = world_with_node(None);
    let id = w.oom();
    let action = w.diagnose(id).remove(0);
    assert_waits_for_an_approver(&w, &action);
}

#[test]
fn the_action_lands_where_the_evidence_places_the_fault_not_on_the_incident_s_workload() {
    // The app's incident; its calls to the database are refused for their credential: the
    // database's is re-applied, never the app's.
    let mut w = world(None);
    let id = w.oom();
    let mut actions = w.diagnose_placed(id, FaultClass::CredentialFailure, Some(EntityId::new(DB)));
    let action = actions.remove(0);
    assert_eq!(action.request.class, ActionClass::ReapplyCredential);
    assert_eq!(action.request.target, EntityId::new(DB));
    // Observed (the class's default phase): decided and logged on the database.
    assert_eq!(action.state, ActionState::Observed, "{}", action.outcome);
    let decision = &w.store.records(0, 10).expect("audit")[0];
    assert_eq!(decision.body["request"]["target"], DB, "{}", decision.body);
    // Without the evidence's placement, the incident's own workload.
    let mut w = world(None);
    let id = w.oom();
    let action = w
        .diagnose_placed(id, FaultClass::CredentialFailure, None)
        .remove(0);
    assert_eq!(action.request.target, EntityId::new(APP));
}
