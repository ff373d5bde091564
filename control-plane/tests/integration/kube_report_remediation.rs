//! Issue 16, must-show 7: the IncidentReport path end to end against the in-memory API server
//! (`support/apiserver.rs`: real HTTP, real Kubernetes JSON). Someone on call hands Vigil a
//! report about a pod the agent saw OOM-killed; Vigil takes it, diagnoses it citing the
//! team's postmortem of the same fault, proposes raising the memory limit, waits for an
//! approver, raises the Deployment's limit by server-side apply when approved, verifies it —
//! and every one of those steps is in the report's status and in the audit log, with every
//! request one the shipped RBAC allows.

use std::{sync::Arc, time::Duration};

use crate::support::{
    apiserver::ApiServer,
    config::cluster_config,
    rbac::{assert_rbac_allows, WITH_REMEDIATION},
    reports::GV,
    running::{client_with, Running},
    shop::{seed, POD_UID},
    time::rfc3339,
};
use control_plane::{
    adapters::sqlite::SqliteStore,
    config::RuntimeKind,
    domain::{
        clock::{Clock, SystemClock},
        entity::EntityId,
        ingest::Batch,
        remediate::{ActionClass, Phase},
        synthetic::oom_kill,
    },
};
use serde_json::{json, Value};

const REPORT: &str = "checkout-oom";
const POSTMORTEM: &str = "pm-2026-09-checkout-oom";
const SEC: i64 = 1_000_000_000;

/// The team's postmortem of the last time checkout ran out of memory.
fn postmortem() -> String {
    format!(
        "---\nid: {POSTMORTEM}\nkind: postmortem\n\
         title: \"Checkout OOM-killed in a loop after the price table grew\"\n\
         classes: [oom_kill]\nservices: [checkout]\nseverity: critical\ndate: 2026-09-14\n---\n\
         # Checkout OOM-killed in a loop\n\n\
         The checkout pods were OOMKilled at their 512Mi memory limit on every start once the \
         price table outgrew it; restarts did not help. Raising the container's memory limit \
         to 768Mi stopped the kills; the limit now has headroom for the table's growth.\n"
    )
}

/// The report as the on-call engineer wrote it with kubectl.
fn handed_report(now: i64) -> Value {
    json!({
        "apiVersion": GV, "kind": "IncidentReport",
        "metadata": {"name": REPORT, "namespace": "vigil", "uid": "u-oom",
                     "creationTimestamp": rfc3339(now - 5 * SEC)},
        "spec": {"title": "checkout pods keep restarting",
                 "summary": "kubectl describe says OOMKilled",
                 "target": EntityId::pod(POD_UID).as_str(),
                 "severity": "critical", "source": "oncall"},
    })
}

async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after 30 s waiting for {what}");
}

fn report_status(api: &ApiServer) -> Value {
    api.object(GV, "vigil", "incidentreports", REPORT)
        .map(|r| r["status"].clone())
        .unwrap_or(Value::Null)
}

/// The states of the status's action steps, in order.
fn steps(status: &Value) -> Vec<String> {
    status["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["state"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handed_in_report_is_diagnosed_remediated_on_approval_and_verified() {
    let api = ApiServer::start().await;
    seed(&api);
    let now = SystemClock.now_unix_ns();
    let dir = tempfile::tempdir().expect("dir");
    let mut config = cluster_config(&api, "cp", dir.path());
    config.remediation.runtime = RuntimeKind::Kubernetes;
    config.remediation.verify_after_secs = 2;
    config
        .remediation
        .phases
        .insert(ActionClass::RaiseMemoryLimit, Phase::Assist);
    let postmortems = dir.path().join("corpus/postmortems");
    std::fs::create_dir_all(&postmortems).expect("mkdir");
    std::fs::write(postmortems.join(format!("{POSTMORTEM}.md")), postmortem()).expect("write");
    // The agent on node-a saw the pod OOM-killed three times in the last 40 s.
    let store = Arc::new(SqliteStore::open(&config.store_path).expect("store"));
    let pod = EntityId::pod(POD_UID);
    crate::support::ingest::ingest(&store, store.clone(), Arc::new(SystemClock))
        .ingest(&Batch {
            node: "node-a".into(),
            events: (1..=3)
                .map(|i| oom_kill(i, now - (50 - 10 * i as i64) * SEC, pod.as_str()))
                .collect(),
            stats: None,
        })
        .expect("ingest");
    drop(store);
    // Vigil has been running: the kills' own incident is diagnosed before anyone reports it.
    let earlier = Running::start(config.clone()).await;
    let own = format!("{}/api/v1/incidents/1", earlier.base());
    let http = earlier.client();
    let mut diagnosed_first = false;
    for _ in 0..100 {
        let detail: Value = http
            .get(&own)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON");
        if detail["diagnosis"]["class"] == "oom_kill" {
            diagnosed_first = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(diagnosed_first, "Vigil's own OOM incident is diagnosed");
    earlier.stop().await;
    api.seed(GV, "incidentreports", handed_report(now));
    let plane = Running::start(config).await;
    let base = plane.base();

    // Picked up and diagnosed: the class, confident enough to act on, the postmortem cited.
    let diagnosed = eventually("the report's diagnosis", || {
        let s = report_status(&api);
        s["route"].is_string().then_some(s)
    })
    .await;
    assert_eq!(diagnosed["faultClass"], "oom_kill", "{diagnosed:#}");
    assert_eq!(diagnosed["incidentKind"], "alert", "{diagnosed:#}");
    assert_eq!(diagnosed["route"], "remediation", "{diagnosed:#}");
    assert!(
        diagnosed["citations"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["id"] == POSTMORTEM && c["kind"] == "postmortem"),
        "the postmortem is cited: {diagnosed:#}"
    );
    let incident = diagnosed["incidentId"].as_i64().expect("linked");

    // Proposed, and nothing runs before an approver says so.
    let proposed = eventually("the proposed action in the report", || {
        let s = report_status(&api);
        (steps(&s) == ["proposed"]).then_some(s)
    })
    .await;
    let step = &proposed["actions"][0];
    assert_eq!(step["action"], "raise_memory_limit", "{proposed:#}");
    let action = step["id"].as_i64().expect("an action id");
    assert!(
        !api.requests()
            .iter()
            .any(|r| r.path.ends_with("/deployments/checkout") && r.method != "GET"),
        "nothing written before the approval"
    );

    // An approver says yes.
    let issued: Value = plane
        .client()
        .post(format!("{base}/api/v1/tokens"))
        .json(&json!({"name": "alice", "role": "approver"}))
        .send()
        .await
        .expect("issue")
        .json()
        .await
        .expect("JSON");
    let alice = client_with(issued["token"].as_str().expect("a token"));
    let approved = alice
        .post(format!(
            "{base}/api/v1/incidents/{incident}/actions/{action}/approve"
        ))
        .send()
        .await
        .expect("approve");
    assert_eq!(approved.status(), 200, "{approved:?}");

    // Executed: the Deployment's memory limit raised half again, by Vigil's field manager.
    let deployment = api
        .object("apps/v1", "shop", "deployments", "checkout")
        .expect("the Deployment");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"],
        "768Mi",
        "{deployment:#}"
    );

    // Verified; the report's status holds every step, the approver named.
    let verified = eventually("the verification in the report", || {
        let s = report_status(&api);
        steps(&s).contains(&"verified".to_string()).then_some(s)
    })
    .await;
    assert_eq!(
        steps(&verified),
        ["proposed", "approved", "applied", "verified"],
        "{verified:#}"
    );
    assert_eq!(verified["actions"][1]["by"], "alice", "{verified:#}");
    assert!(
        verified["actions"][2]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("768Mi")),
        "{verified:#}"
    );
    assert_eq!(
        verified["faultClass"], "oom_kill",
        "later writes keep the diagnosis"
    );

    // The audit log has each step of the incident, in order.
    let audit: Value = plane
        .client()
        .get(format!("{base}/api/v1/audit?limit=10000"))
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("JSON");
    let kinds: Vec<&str> = audit["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["incident"] == incident)
        .filter_map(|r| r["kind"].as_str())
        .collect();
    let mut at = 0;
    for kind in [
        "diagnosis",
        "decision",
        "approval",
        "action",
        "verification",
    ] {
        let found = kinds[at..].iter().position(|k| *k == kind);
        assert!(
            found.is_some(),
            "{kind} after {:?}: {kinds:?}",
            &kinds[..at]
        );
        at += found.unwrap_or(0) + 1;
    }

    assert_rbac_allows(&api.requests(), &WITH_REMEDIATION);
    plane.stop().await;
}
