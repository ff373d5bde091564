//! Diagnosis evidence from a Kubernetes cluster: a pod's logs (its crashed run's too) and the
//! Deployment revision it runs, read by a real control plane from the in-memory API server
//! (`support/apiserver.rs`: real HTTP, real Kubernetes JSON and plain-text logs). The pod's
//! OOM kill is ingested as an agent would bring it; its diagnosis must carry both, and every
//! request the control plane sent must be one the RBAC shipped in `deploy/` allows.

use std::{sync::Arc, time::Duration};

use crate::support::{
    apiserver::{ApiServer, Recorded},
    config::cluster_config,
    rbac::assert_rbac_allows,
    running::Running,
    time::rfc3339,
};
use control_plane::{
    adapters::sqlite::SqliteStore,
    domain::{
        clock::{Clock, SystemClock},
        ingest::Batch,
        synthetic::oom_kill,
    },
};
use serde_json::{json, Value};

const NEW_POD: &str = "5b0e2c11-0000-4000-8000-0000000000a2";
const OLD_POD: &str = "5b0e2c11-0000-4000-8000-0000000000a1";
const SEC: i64 = 1_000_000_000;

fn owner(kind: &str, name: &str, uid: &str) -> Value {
    json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid,
            "controller": true, "blockOwnerDeletion": true}])
}

fn replicaset(name: &str, uid: &str, revision: u32, created: String, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "shop", "uid": uid, "creationTimestamp": created,
                     "annotations": {"deployment.kubernetes.io/revision": revision.to_string()},
                     "ownerReferences": owner("Deployment", "checkout", "dep-checkout")},
        "spec": {"selector": {"matchLabels": {"app": "checkout"}},
                 "template": {"spec": {"containers": [{"name": "checkout", "image": image}]}}}
    })
}

fn pod(name: &str, uid: &str, rs: &str, rs_uid: &str, restarts: i32) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "uid": uid,
                     "ownerReferences": owner("ReplicaSet", rs, rs_uid)},
        "spec": {"containers": [{"name": "checkout", "image": "x"}]},
        "status": {"podIP": "10.244.2.9", "podIPs": [{"ip": "10.244.2.9"}],
                   "containerStatuses": [{"name": "checkout", "image": "x", "imageID": "",
                                          "ready": true, "restartCount": restarts}]}
    })
}

/// The shop's checkout Deployment: revision 1 a day old, revision 2 rolled out 40 s ago; a
/// pod of each, the new one restarted once (OOM-killed 30 s ago) with logs of both runs.
fn seed(api: &ApiServer, now: i64) {
    api.seed(
        "apps/v1",
        "replicasets",
        replicaset(
            "checkout-6d4",
            "rs-1",
            1,
            rfc3339(now - 86_400 * SEC),
            "shop/checkout:1.4",
        ),
    );
    api.seed(
        "apps/v1",
        "replicasets",
        replicaset(
            "checkout-7f9",
            "rs-2",
            2,
            rfc3339(now - 40 * SEC),
            "shop/checkout:1.5",
        ),
    );
    api.seed(
        "v1",
        "pods",
        pod("checkout-7f9-x2k", NEW_POD, "checkout-7f9", "rs-2", 1),
    );
    api.seed(
        "v1",
        "pods",
        pod("checkout-6d4-q8z", OLD_POD, "checkout-6d4", "rs-1", 0),
    );
    api.seed_log(
        "shop",
        "checkout-7f9-x2k",
        "checkout",
        true,
        &format!(
            "{} cache warmed: 10000 entries (before the incident)\n\
             {} loading the price table into memory: 1.8 GiB\n",
            rfc3339(now - 200 * SEC),
            rfc3339(now - 31 * SEC)
        ),
    );
    api.seed_log(
        "shop",
        "checkout-7f9-x2k",
        "checkout",
        false,
        &format!(
            "{} checkout 1.5 listening on :8080\n",
            rfc3339(now - 5 * SEC)
        ),
    );
}

/// A control plane on the cluster whose store holds the new pod's OOM kill (incident 1).
async fn start_plane(api: &ApiServer, dir: &std::path::Path, now: i64) -> Running {
    let config = cluster_config(api, "cp", dir);
    let store = Arc::new(SqliteStore::open(&config.store_path).expect("store"));
    crate::support::ingest::ingest(&store, store.clone(), Arc::new(SystemClock))
        .ingest(&Batch {
            node: "n1".into(),
            events: vec![oom_kill(1, now - 30 * SEC, &format!("k8s-pod/{NEW_POD}"))],
            stats: None,
        })
        .expect("ingest");
    drop(store);
    Running::start(config).await
}

/// The diagnosis's output of one tool.
fn tool<'a>(diagnosis: &'a Value, name: &str) -> &'a Value {
    diagnosis["evidence"]
        .as_array()
        .and_then(|e| e.iter().find(|t| t["tool"] == name))
        .unwrap_or_else(|| panic!("no {name} in {diagnosis:#}"))
}

fn texts(v: &Value, field: &str) -> Vec<String> {
    v[field]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| o.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pods_logs_and_its_deployments_rollout_are_evidence() {
    let api = ApiServer::start().await;
    let now = SystemClock.now_unix_ns();
    seed(&api, now);
    let dir = tempfile::tempdir().expect("dir");
    let plane = start_plane(&api, dir.path(), now).await;
    let base = plane.base();
    let http = plane.client();

    // The OOM kill's incident, diagnosed with the cluster's evidence.
    let mut diagnosis = Value::Null;
    for _ in 0..100 {
        let detail: Value = http
            .get(format!("{base}/api/v1/incidents/1"))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON");
        diagnosis = detail["diagnosis"].clone();
        if !diagnosis.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !diagnosis.is_null(),
        "incident 1 was not diagnosed within 10 s"
    );

    let logs = tool(&diagnosis, "workload_logs");
    let lines = texts(logs, "observations").join("\n");
    assert!(
        lines.contains("[checkout, previous run]") && lines.contains("price table into memory"),
        "the crashed run's last words are evidence: {logs:#}"
    );
    assert!(
        lines.contains("listening on :8080"),
        "and the current run's: {logs:#}"
    );
    assert!(
        !lines.contains("cache warmed"),
        "a line from before the incident's window is not: {logs:#}"
    );

    let changes = tool(&diagnosis, "recent_changes");
    let observed = texts(changes, "observations").join("\n");
    assert!(
        observed.contains("Deployment shop/checkout revision 2 rolled out")
            && observed.contains("shop/checkout:1.5 (were shop/checkout:1.4)")
            && observed.contains("this entity runs it"),
        "{changes:#}"
    );
    assert!(
        !observed.contains("revision 1 "),
        "a day-old revision is not a recent change: {changes:#}"
    );
    let votes = texts(changes, "votes").join("\n");
    assert!(
        votes.contains("bad_deploy") && votes.contains("revision 2"),
        "a pod of a fresh revision failing votes for a bad deploy: {changes:#}"
    );

    // A pod of the old revision saw the rollout but does not run it: observed, no vote.
    let old: Value = http
        .post(format!("{base}/api/v1/tools/recent_changes"))
        .json(&json!({"entity": format!("k8s-pod/{OLD_POD}")}))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    let observed = texts(&old, "observations").join("\n");
    assert!(
        observed.contains("revision 2 rolled out") && observed.contains("runs an older revision"),
        "{old:#}"
    );
    assert!(texts(&old, "votes").is_empty(), "{old:#}");

    // The logs were read as the kubelet serves them: dated, bounded, the crashed run asked.
    let requests = api.requests();
    let reads: Vec<&Recorded> = requests
        .iter()
        .filter(|r| r.path == "/api/v1/namespaces/shop/pods/checkout-7f9-x2k/log")
        .collect();
    assert!(
        reads.iter().any(|r| r.query.contains("previous=true")),
        "{reads:#?}"
    );
    for r in &reads {
        for wanted in [
            "container=checkout",
            "timestamps=true",
            "tailLines=",
            "sinceTime=",
        ] {
            assert!(r.query.contains(wanted), "{wanted} missing from {r:#?}");
        }
    }
    assert_rbac_allows(&requests, &["base/control-plane-rbac.yaml"]);

    plane.stop().await;
}
