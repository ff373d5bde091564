//! Alertmanager alerts as incidents, over the real SQLite store: a firing alert opens an
//! incident on the workload its labels name, carrying Vigil's own evidence there; a second
//! alert on the same workload joins it; the incident resolves only when both have resolved.

use std::sync::Arc;

use control_plane::{
    adapters::{
        alertmanager::{WebhookError, WebhookPayload},
        sqlite::SqliteStore,
    },
    config::ControlPlaneConfig,
    domain::{
        alerts::{AlertOutcome, AlertService},
        clock::{Clock, SystemClock},
        graph::{ports::NoCluster, LiveGraph},
        incident::{
            ports::{IncidentQuery, IncidentStore},
            IncidentKind, IncidentStatus,
        },
        ingest::{Batch, CrashLoopPolicy, IngestParts, IngestService, KernelRules},
    },
    eval::synthetic::oom_kill,
};
use serde_json::json;

/// Why a delivery was refused: by the webhook adapter (the payload is not Alertmanager's) or
/// by the domain.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    #[error(transparent)]
    Alert(#[from] control_plane::domain::alerts::AlertError),
}

/// What `POST /api/v1/alertmanager` does with a payload.
fn receive(alerts: &AlertService, payload: &WebhookPayload) -> Result<AlertOutcome, Refused> {
    Ok(alerts.receive(&payload.alerts()?)?)
}

fn now_unix_ns() -> i64 {
    SystemClock.now_unix_ns()
}

/// A version-4 webhook body as Alertmanager sends it.
fn payload(status: &str, alerts: &[(&str, &str, &str)]) -> WebhookPayload {
    let alerts: Vec<_> = alerts
        .iter()
        .map(|(name, fingerprint, status)| {
            json!({
                "status": status,
                "labels": {"alertname": name, "service": "redis", "severity": "critical", "instance": "n1"},
                "annotations": {"summary": format!("{name} on redis")},
                "startsAt": "2026-11-25T03:00:00.000Z",
                "endsAt": if *status == "resolved" { "2026-11-25T03:05:00Z" } else { "0001-01-01T00:00:00Z" },
                "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
                "fingerprint": fingerprint,
            })
        })
        .collect();
    serde_json::from_value(json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"RedisDown\"}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "vigil",
        "groupLabels": {"alertname": "RedisDown"},
        "commonLabels": {"service": "redis"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    }))
    .expect("a valid v4 payload")
}

fn setup() -> (Arc<SqliteStore>, IngestService, AlertService) {
    let store = Arc::new(SqliteStore::in_memory().expect("store"));
    let ingest = IngestService::new(IngestParts {
        events: store.clone(),
        incidents: store.clone(),
        nodes: store.clone(),
        rules: KernelRules::new(CrashLoopPolicy::default()),
        clock: Arc::new(SystemClock),
    });
    let graph = Arc::new(LiveGraph::new(
        ControlPlaneConfig::default().graph_config(),
        Arc::new(NoCluster),
    ));
    let alerts = AlertService::new(store.clone(), store.clone(), graph, Arc::new(SystemClock));
    (store, ingest, alerts)
}

#[test]
fn firing_alerts_open_one_enriched_incident_and_resolve_it_when_all_resolved() {
    let (store, ingest, alerts) = setup();
    ingest
        .ingest(&Batch {
            node: "n1".into(),
            events: vec![oom_kill(1, now_unix_ns(), "cgroup/shop/redis")],
            stats: None,
        })
        .expect("ingest");

    let first = receive(
        &alerts,
        &payload("firing", &[("RedisDown", "aa01", "firing")]),
    )
    .expect("firing alert");
    assert_eq!(first.opened.len(), 1, "{first:?}");
    let id = first.opened[0];
    let incident = store.get(id).expect("get").expect("stored");
    assert_eq!(incident.kind, IncidentKind::Alert);
    assert_eq!(
        incident.workload_key, "cgroup/shop/redis",
        "service=redis names the workload Vigil saw"
    );
    let attributes = serde_json::to_value(&incident.attributes).expect("as the API shows them");
    let vigil = &attributes["vigil"];
    assert_eq!(vigil["recent_events"]["oom_kill"], 1, "{incident:#?}");
    assert_eq!(
        vigil["related_incidents"][0]["kind"], "oom_kill",
        "{incident:#?}"
    );
    assert!(
        incident.summary.contains("1 open incident"),
        "{}",
        incident.summary
    );
    let stages: Vec<_> = incident.stages().iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(stages, ["detect", "localize"]);

    // A second alert on the same workload joins the incident.
    let second = receive(
        &alerts,
        &payload(
            "firing",
            &[
                ("RedisDown", "aa01", "firing"),
                ("RedisSlow", "bb02", "firing"),
            ],
        ),
    )
    .expect("second alert");
    assert_eq!(second.updated, vec![id, id]);
    assert!(second.opened.is_empty());

    // One resolves: still open. Both resolved: resolved.
    let one = receive(
        &alerts,
        &payload("resolved", &[("RedisDown", "aa01", "resolved")]),
    )
    .expect("one resolved");
    assert!(one.resolved.is_empty(), "{one:?}");
    assert_eq!(
        store.get(id).expect("get").expect("stored").status,
        IncidentStatus::Open
    );
    let both = receive(
        &alerts,
        &payload("resolved", &[("RedisSlow", "bb02", "resolved")]),
    )
    .expect("both resolved");
    assert_eq!(both.resolved, vec![id]);
    assert_eq!(
        store.get(id).expect("get").expect("stored").status,
        IncidentStatus::Resolved
    );

    // An alert about something Vigil does not know still opens an incident, under its name.
    let unknown = receive(
        &alerts,
        &serde_json::from_value(json!({
            "version": "4", "status": "firing", "receiver": "vigil",
            "alerts": [{"status": "firing", "labels": {"alertname": "DiskFull"},
                        "startsAt": "2026-11-25T03:00:00Z", "fingerprint": "cc03"}]
        }))
        .expect("payload"),
    )
    .expect("unknown workload");
    let other = store.get(unknown.opened[0]).expect("get").expect("stored");
    assert_eq!(other.workload_key, "alert/DiskFull");
    assert!(
        other.summary.contains("Vigil saw nothing"),
        "{}",
        other.summary
    );
}

#[test]
fn bad_payloads_are_refused_whole() {
    let (store, _ingest, alerts) = setup();
    let mut v3 = payload("firing", &[("RedisDown", "aa01", "firing")]);
    v3.version = "3".into();
    let err = receive(&alerts, &v3).expect_err("version 3");
    assert!(err.to_string().contains("version \"3\""), "{err}");

    // The second alert is bad: the first must not have been applied either.
    let mut bad = payload(
        "firing",
        &[
            ("RedisDown", "aa01", "firing"),
            ("RedisSlow", "bb02", "firing"),
        ],
    );
    bad.alerts[1].starts_at = "yesterday".into();
    let err = receive(&alerts, &bad).expect_err("bad time");
    assert!(
        matches!(err, Refused::Webhook(WebhookError::BadTime { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("bb02"), "{err}");
    assert!(store
        .list(&IncidentQuery {
            status: None,
            kind: None,
            limit: 10,
        })
        .expect("list")
        .is_empty());
}

#[test]
fn an_alert_lists_open_anomaly_incidents_that_cover_its_entity() {
    use control_plane::domain::{
        entity::Subject,
        event::EventKind,
        incident::{details::AnomalyDetails, Details, Finding, Severity},
    };
    let (store, ingest, alerts) = setup();
    // Vigil knows redis from a kernel event (no incident of its own).
    let exec = control_plane::eval::synthetic::kernel_event(
        1,
        now_unix_ns(),
        "cgroup/shop/redis",
        EventKind::ProcessExec {
            filename: "/usr/bin/redis-server".into(),
        },
    );
    ingest
        .ingest(&Batch {
            node: "n1".into(),
            events: vec![exec],
            stats: None,
        })
        .expect("ingest");
    // An open anomaly incident rooted at app whose edge into redis is anomalous.
    let edge = Subject::edge("cgroup/shop/app".into(), "cgroup/shop/redis".into());
    let anomaly = store
        .create(&Finding {
            severity: Severity::Warning,
            node: String::new(),
            workload_key: "cgroup/shop/app".into(),
            title: "Anomaly around cgroup/shop/app".into(),
            summary: String::new(),
            time_unix_ns: now_unix_ns(),
            evidence: Vec::new(),
            details: Details::ServiceAnomaly(AnomalyDetails {
                root_causes: Vec::new(),
                entities: [(edge, 0.9)].into_iter().collect(),
                first_anomaly_unix_ns: None,
                episode_started_unix_ns: now_unix_ns(),
                symptoms: Vec::new(),
                timeline: Vec::new(),
            }),
            stages: Vec::new(),
        })
        .expect("anomaly incident");
    let opened = receive(
        &alerts,
        &payload("firing", &[("RedisSlow", "dd04", "firing")]),
    )
    .expect("alert");
    let incident = store.get(opened.opened[0]).expect("get").expect("stored");
    assert_eq!(incident.workload_key, "cgroup/shop/redis");
    let attributes = serde_json::to_value(&incident.attributes).expect("json");
    let related: Vec<i64> = attributes["vigil"]["related_incidents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["id"].as_i64())
        .collect();
    assert_eq!(
        related,
        [anomaly.id.0],
        "the anomaly covers redis through its edge: {attributes:#}"
    );
}
