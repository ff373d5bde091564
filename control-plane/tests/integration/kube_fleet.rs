//! The fleet the guardrails judge in a cluster: a pod's replicas and health are its
//! controller's pods and how many are Ready, with its namespace and labels, read from the
//! in-memory API server (`support/apiserver.rs`) through the endpoint resolver's pod watch.
//! An eviction of one of four is then allowed, two at once are over the replica budget, and
//! a namespace on the deny-list refuses it.

use std::{collections::BTreeSet, sync::Arc};

use crate::support::{apiserver::ApiServer, shop::owner};
use control_plane::{
    adapters::kube::{fleet::KubeFleet, KubeEndpoints},
    domain::{
        clock::SystemClock,
        detection::ports::GraphView,
        entity::{EdgeId, EntityId},
        incident::{IncidentId, Severity},
        interval::Endpoint,
        remediate::{
            decide, ports::FleetView, ActionClass, ActionRequest, GraphFleet, Phase, Policy,
            Verdict, World,
        },
    },
};
use serde_json::{json, Value};

/// No calls seen yet: the cluster alone says what the workloads are.
struct NoCalls;

impl GraphView for NoCalls {
    fn server_entity(&self, _node: &str, endpoint: &Endpoint) -> EntityId {
        EntityId::external(endpoint)
    }
    fn call_edges(&self, _now: i64) -> Vec<EdgeId> {
        Vec::new()
    }
}

fn pod(name: &str, uid: &str, owner_uid: Option<&str>, ready: bool) -> Value {
    let mut metadata = json!({"name": name, "namespace": "shop", "uid": uid,
                              "labels": {"app": name.split('-').next().unwrap_or(name), "tier": "web"}});
    if let Some(rs) = owner_uid {
        metadata["ownerReferences"] = owner("ReplicaSet", "checkout-7f9", rs);
    }
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": metadata,
        "spec": {"containers": [{"name": "c", "image": "x"}]},
        "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    })
}

fn evict(target: &str) -> ActionRequest {
    ActionRequest {
        incident: IncidentId(1),
        class: ActionClass::EvictPod,
        target: EntityId::pod(target),
        replicas: 1,
        confidence: 0.9,
        severity: Severity::Critical,
    }
}

fn verdict(fleet: &KubeFleet, policy: &Policy, r: &ActionRequest) -> (Verdict, String) {
    let mut world = World::default();
    if let Some(w) = fleet.unlisted(&r.target) {
        world.fleet.insert(r.target.clone(), w);
    }
    let d = decide(r, &world, &[], &BTreeSet::new(), policy, 0, false);
    let refusal = d.refusal().unwrap_or_default();
    (d.verdict, refusal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pods_replicas_health_and_scope_come_from_its_controller_in_the_cluster() {
    let api = ApiServer::start().await;
    for (name, uid, ready) in [
        ("checkout-7f9-a", "p-a", true),
        ("checkout-7f9-b", "p-b", true),
        ("checkout-7f9-c", "p-c", true),
        ("checkout-7f9-d", "p-d", false),
    ] {
        api.seed("v1", "pods", pod(name, uid, Some("rs-2"), ready));
    }
    api.seed("v1", "pods", pod("cron-1", "p-lone", None, true));
    let config = kube::Config::new(api.url_for("cp").parse().expect("url"));
    let endpoints = KubeEndpoints::start(kube::Client::try_from(config).expect("client"));
    endpoints.wait_ready().await.expect("listed");
    let fleet = KubeFleet {
        graph: GraphFleet {
            graph: Arc::new(NoCalls),
            clock: Arc::new(SystemClock),
        },
        pods: endpoints.pods(),
    };

    let w = fleet
        .unlisted(&EntityId::pod("p-a"))
        .expect("a pod the cluster has");
    assert_eq!((w.replicas, w.healthy), (4, 3), "{w:?}");
    assert_eq!(w.namespace.as_deref(), Some("shop"));
    assert_eq!(w.labels.get("tier").map(String::as_str), Some("web"));
    let lone = fleet.unlisted(&EntityId::pod("p-lone")).expect("listed");
    assert_eq!((lone.replicas, lone.healthy), (1, 1));
    assert!(
        fleet.unlisted(&EntityId::pod("p-gone")).is_none(),
        "a pod the cluster does not have is unknown, so refused"
    );

    let mut policy = Policy::default();
    policy
        .phases
        .insert(ActionClass::EvictPod, Phase::Autonomous);
    // One of four (a quarter, the default budget) while three stay Ready: allowed.
    let (v, why) = verdict(&fleet, &policy, &evict("p-a"));
    assert_eq!(v, Verdict::Execute, "{why}");
    // Two of its four at once: more than the quarter the budget allows.
    let mut two = evict("p-a");
    two.replicas = 2;
    let (v, why) = verdict(&fleet, &policy, &two);
    assert_eq!(v, Verdict::Refused);
    assert!(
        why.contains("disrupts 2 of 4 replica(s), at most 1"),
        "{why}"
    );
    // Its namespace on the deny-list.
    policy.scope.deny_namespaces.push("shop".into());
    let (v, why) = verdict(&fleet, &policy, &evict("p-a"));
    assert_eq!(v, Verdict::Refused);
    assert!(
        why.contains("namespace \"shop\" is on the deny-list"),
        "{why}"
    );
}
