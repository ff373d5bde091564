//! The control plane against a Kubernetes API server (the in-memory one in
//! `support/apiserver.rs`, real HTTP and Kubernetes JSON; no cluster runs here), asserting
//! the exact requests: the Lease it campaigns on, the IncidentReports it applies for an
//! Alertmanager alert as it opens and resolves, the status it gives a report somebody else
//! created, and that a follower replica writes nothing.

use std::time::Duration;

use crate::support::{
    apiserver::{ApiServer, Recorded},
    config::cluster_config,
    reports::{handed_in_report, GV},
    running::Running,
};
use serde_json::{json, Value};

const REPORTS: &str = "/apis/vigil.dev/v1alpha1/namespaces/vigil/incidentreports";

struct Replica {
    running: Running,
    _dir: tempfile::TempDir,
}

impl Replica {
    async fn start(api: &ApiServer, identity: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = cluster_config(api, identity, dir.path());
        config.kubernetes.lease_duration_secs = 3;
        config.kubernetes.lease_grace_secs = 1;
        Self {
            running: Running::start(config).await,
            _dir: dir,
        }
    }

    async fn post_alert(&self, status: &str) -> Value {
        let body = json!({
            "version": "4", "status": status, "receiver": "vigil", "groupKey": "{}:{}",
            "alerts": [{
                "status": status,
                "labels": {"alertname": "PaymentsDown", "service": "payments", "severity": "critical"},
                "annotations": {"summary": "payments answers 503"},
                "startsAt": "2026-11-25T03:00:00Z",
                "fingerprint": "beef",
            }]
        });
        let response = self
            .running
            .client()
            .post(format!("{}/api/v1/alertmanager", self.running.base()))
            .json(&body)
            .send()
            .await
            .expect("POST the alert");
        assert!(response.status().is_success(), "{response:?}");
        response.json().await.expect("JSON")
    }

    async fn stop(self) {
        self.running.stop().await;
    }
}

async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out after 10 s waiting for {what}");
}

fn find<'a>(
    requests: &'a [Recorded],
    method: &str,
    path: &str,
    matches: impl Fn(&Recorded) -> bool,
) -> Option<&'a Recorded> {
    requests
        .iter()
        .find(|r| r.method == method && r.path == path && matches(r))
}

fn assert_apply(r: &Recorded) {
    assert_eq!(r.content_type, "application/apply-patch+yaml", "{r:#?}");
    let q: Vec<&str> = r.query.split('&').collect();
    assert!(
        q.contains(&"fieldManager=vigil-control-plane") && q.contains(&"force=true"),
        "{r:#?}"
    );
}

async fn lease_holder(api: &ApiServer) -> Option<String> {
    api.object(
        "coordination.k8s.io/v1",
        "vigil",
        "leases",
        "vigil-control-plane",
    )
    .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_incident_is_mirrored_into_an_incident_report_by_the_leader() {
    let api = ApiServer::start().await;
    // A report somebody created with kubectl, before Vigil started.
    api.seed(GV, "incidentreports", handed_in_report());
    let a = Replica::start(&api, "cp-a").await;
    let mut holder = None;
    for _ in 0..100 {
        holder = lease_holder(&api).await;
        if holder.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(holder.as_deref(), Some("cp-a"), "{:#?}", api.requests());
    let leases = "/apis/coordination.k8s.io/v1/namespaces/vigil/leases";
    let claim = api
        .requests()
        .into_iter()
        .find(|r| {
            r.path.starts_with(leases)
                && matches!(r.method.as_str(), "POST" | "PATCH")
                && r.body["spec"]["holderIdentity"] == "cp-a"
        })
        .expect("a request claiming the Lease");
    assert!(
        claim.body["spec"]["leaseDurationSeconds"] == 3,
        "the configured duration: {claim:#?}"
    );

    // The report somebody else created: taken as an incident, answered in its status.
    let answered = eventually("the status of the handed-in report", || {
        find(
            &api.requests(),
            "PATCH",
            &format!("{REPORTS}/checkout-slow/status"),
            |r| r.body["status"]["phase"] == "Open",
        )
        .cloned()
    })
    .await;
    assert_apply(&answered);
    assert_eq!(answered.replica, "cp-a");
    assert_eq!(answered.body["status"]["faultClass"], "alert");
    assert_eq!(answered.body["status"]["rootCause"], "alert/checkout-slow");
    let handed_id = answered.body["status"]["incidentId"].as_i64().expect("id");
    // ... and not mirrored a second time under Vigil's own name.
    assert!(api
        .requests()
        .iter()
        .all(|r| r.path != format!("{REPORTS}/vigil-incident-{handed_id}")));

    // An Alertmanager alert: Vigil's own incident, applied as a report (spec, then status).
    let opened = a.post_alert("firing").await;
    let id = opened["opened"][0].as_i64().expect("an incident");
    let name = format!("vigil-incident-{id}");
    let status_path = format!("{REPORTS}/{name}/status");
    let open_status = eventually("the report's Open status", || {
        find(&api.requests(), "PATCH", &status_path, |r| {
            r.body["status"]["phase"] == "Open"
        })
        .cloned()
    })
    .await;
    let requests = api.requests();
    let spec_at = requests
        .iter()
        .position(|r| r.method == "PATCH" && r.path == format!("{REPORTS}/{name}"))
        .expect("the spec apply");
    let spec = &requests[spec_at];
    assert_apply(spec);
    assert_eq!(spec.body["apiVersion"], GV);
    assert_eq!(spec.body["kind"], "IncidentReport");
    assert_eq!(spec.body["metadata"]["name"], name.as_str());
    assert_eq!(
        spec.body["metadata"]["labels"]["vigil.dev/incident-id"],
        id.to_string()
    );
    assert_eq!(spec.body["spec"]["source"], "vigil");
    assert_eq!(spec.body["spec"]["severity"], "critical");
    assert_eq!(spec.body["spec"]["target"], "alert/PaymentsDown");
    assert!(spec.body.get("status").is_none(), "status goes to /status");
    let status_at = requests
        .iter()
        .position(|r| r.path == status_path)
        .expect("status apply");
    assert!(spec_at < status_at, "spec before status");
    assert_apply(&open_status);
    assert_eq!(open_status.body["status"]["incidentId"], id);
    assert_eq!(open_status.body["status"]["faultClass"], "alert");
    assert!(open_status.body["status"]["openedAt"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let stored = api
        .object(GV, "vigil", "incidentreports", &name)
        .expect("the report exists");
    assert_eq!(stored["status"]["phase"], "Open");

    // Its diagnosis joins the status: an alert alone is evidence of no class, so review.
    let diagnosed = eventually("the report's diagnosis", || {
        find(&api.requests(), "PATCH", &status_path, |r| {
            r.body["status"]["route"].is_string()
        })
        .cloned()
    })
    .await;
    assert_apply(&diagnosed);
    let status = &diagnosed.body["status"];
    assert_eq!(status["route"], "review", "{status:#?}");
    assert_eq!(status["incidentKind"], "alert");
    assert_eq!(
        status["phase"], "Open",
        "the incident's own fields stay in the apply"
    );
    assert!(
        status["diagnosis"]
            .as_str()
            .is_some_and(|d| d.contains("review")),
        "{status:#?}"
    );

    // Resolved by Alertmanager: the report says so.
    let resolved = a.post_alert("resolved").await;
    assert_eq!(resolved["resolved"][0], id);
    let done = eventually("the report's Resolved status", || {
        find(&api.requests(), "PATCH", &status_path, |r| {
            r.body["status"]["phase"] == "Resolved"
        })
        .cloned()
    })
    .await;
    assert!(done.body["status"]["resolvedAt"].is_string(), "{done:#?}");
    assert_eq!(
        done.body["status"]["route"], "review",
        "a later write keeps the diagnosis (server-side apply drops what it leaves out)"
    );

    a.stop().await;
    assert_ne!(
        lease_holder(&api).await.as_deref(),
        Some("cp-a"),
        "a stopping leader releases the Lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_writes_no_reports_until_it_leads() {
    let api = ApiServer::start().await;
    let a = Replica::start(&api, "cp-a").await;
    eventually_holder(&api, "cp-a").await;
    let b = Replica::start(&api, "cp-b").await;
    // B's alert: B is a follower, so nothing of B's reaches incidentreports.
    let opened = b.post_alert("firing").await;
    assert!(opened["opened"][0].is_i64());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let from_b: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.replica == "cp-b" && r.path.starts_with(REPORTS) && r.method == "PATCH")
        .collect();
    assert!(from_b.is_empty(), "a follower wrote: {from_b:#?}");

    // A steps down: B takes the lease and acts.
    a.stop().await;
    eventually_holder(&api, "cp-b").await;
    let resolved = b.post_alert("resolved").await;
    let id = resolved["resolved"][0].as_i64().expect("resolved");
    let path = format!("{REPORTS}/vigil-incident-{id}/status");
    let written = eventually("the new leader's report", || {
        find(&api.requests(), "PATCH", &path, |r| {
            r.replica == "cp-b" && r.body["status"]["phase"] == "Resolved"
        })
        .cloned()
    })
    .await;
    assert_apply(&written);
    b.stop().await;
}

async fn eventually_holder(api: &ApiServer, who: &str) {
    for _ in 0..200 {
        if lease_holder(api).await.as_deref() == Some(who) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{who} never held the Lease; holder {:?}",
        lease_holder(api).await
    );
}
