//! Must-show 1 of the export issue: an OTLP receiver (the collector's gRPC services and its
//! HTTP/protobuf endpoints, on real sockets) gets Vigil's metrics and one trace per incident
//! whose spans are the stages that produced it.
//!
//! Over gRPC: the whole system (agent, kernel, control plane) and a real crash loop. Over
//! HTTP: an Alertmanager alert through the control plane's webhook.

use std::{collections::BTreeSet, time::Duration};

use serde_json::json;
use vigil_tests::{
    otlp::{OtlpReceiver, ReceivedSpan},
    procs::ControlPlane,
    run_crash_helper, unique_name, wait_for, AgentOptions, Cgroup, Stack,
};

fn otlp_toml(protocol: &str, endpoint: &str) -> String {
    format!(
        "[otlp]\nenabled = true\nprotocol = \"{protocol}\"\nendpoint = \"{endpoint}\"\n\
         export_interval_ms = 300\nservice_name = \"vigil-under-test\"\n"
    )
}

/// The incident's trace: its root span (named `incident <kind>`) and the root's stage
/// children (the `diagnose` and `resolve` spans come later, when those happen).
fn incident_trace(
    spans: &[ReceivedSpan],
    kind: &str,
    workload: &str,
) -> Option<(ReceivedSpan, Vec<ReceivedSpan>)> {
    let root = spans.iter().find(|s| {
        s.name == format!("incident {kind}")
            && s.parent_span_id.is_empty()
            && s.attributes.get("vigil.root_cause").map(String::as_str) == Some(workload)
    })?;
    let children = spans
        .iter()
        .filter(|s| s.parent_span_id == root.span_id && s.name != "resolve" && s.name != "diagnose")
        .cloned()
        .collect();
    Some((root.clone(), children))
}

/// The `diagnose` span in the trace of `root`, once the incident is diagnosed.
fn diagnose_span(receiver: &OtlpReceiver, root: &ReceivedSpan) -> ReceivedSpan {
    wait_for(Duration::from_secs(15), "the diagnose span", || {
        receiver
            .spans()
            .into_iter()
            .find(|s| s.name == "diagnose" && s.parent_span_id == root.span_id)
    })
}

fn names(spans: &[ReceivedSpan]) -> Vec<&str> {
    let mut n: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    n.sort_unstable();
    n
}

/// Checks the tree: one trace, children inside the root's time, stage attributes present.
fn assert_tree(root: &ReceivedSpan, children: &[ReceivedSpan]) {
    assert_eq!(root.service, "vigil-under-test");
    for c in children {
        assert_eq!(c.trace_id, root.trace_id, "{c:#?}");
        assert!(
            c.start_unix_ns >= root.start_unix_ns && c.start_unix_ns <= c.end_unix_ns,
            "{c:#?} within {root:#?}"
        );
    }
}

#[test]
fn otlp_http_exports_an_alert_incident_trace_and_metrics() {
    let receiver = OtlpReceiver::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let cp = ControlPlane::start_with(
        dir.path(),
        &otlp_toml("http", &format!("http://{}", receiver.http)),
    );
    let api = cp.api();
    let alert = |status: &str| {
        json!({
            "version": "4", "status": status, "receiver": "vigil", "groupKey": "{}:{}",
            "alerts": [{
                "status": status,
                "labels": {"alertname": "CheckoutErrors", "service": "checkout", "severity": "critical"},
                "annotations": {"summary": "5xx above 5%"},
                "startsAt": "2026-11-25T03:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": "f00d",
            }]
        })
    };
    let (status, body) = api.post("/api/v1/alertmanager", &alert("firing"));
    assert_eq!(status, 200, "{body}");
    let id = body["opened"][0].as_i64().expect("an incident opened");

    let (root, children) = wait_for(Duration::from_secs(15), "the alert's trace", || {
        incident_trace(&receiver.spans(), "alert", "alert/CheckoutErrors")
            .filter(|(_, c)| c.len() == 2)
    });
    assert_eq!(names(&children), ["detect", "localize"]);
    assert_eq!(root.attributes["vigil.incident.id"], id.to_string());
    assert_eq!(root.attributes["vigil.incident.severity"], "critical");
    let detect = children
        .iter()
        .find(|c| c.name == "detect")
        .expect("detect");
    assert_eq!(detect.attributes["vigil.source"], "alertmanager");
    assert_tree(&root, &children);
    // An alert alone is evidence of no class: diagnosed, and sent to review.
    let diagnosed = diagnose_span(&receiver, &root);
    assert_eq!(
        diagnosed.attributes["vigil.route"], "review",
        "{diagnosed:#?}"
    );

    let (status, body) = api.post("/api/v1/alertmanager", &alert("resolved"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["resolved"][0], id);
    let resolve = wait_for(Duration::from_secs(15), "the resolve span", || {
        receiver
            .spans()
            .into_iter()
            .find(|s| s.name == "resolve" && s.parent_span_id == root.span_id)
    });
    assert_eq!(resolve.trace_id, root.trace_id);

    wait_for(Duration::from_secs(15), "the incident counters", || {
        let points = receiver.points();
        let has = |metric: &str| {
            points.iter().any(|p| {
                p.metric == metric && p.attributes.get("kind").map(String::as_str) == Some("alert")
            })
        };
        (has("vigil.incidents.opened")
            && has("vigil.incidents.resolved")
            && has("vigil.detection.latency"))
        .then_some(())
    });
    assert!(receiver.requests("http") >= 2);
    assert_eq!(receiver.requests("grpc"), 0, "HTTP was configured");
}

#[test]
fn otlp_grpc_exports_a_kernel_incident_trace_and_metrics() {
    let receiver = OtlpReceiver::start();
    let toml = format!(
        "{}[rules]\ncrash_loop_restarts = 3\ncrash_loop_service_uptime_secs = 0\n[incidents]\nresolve_after_secs = 2\n\
         [detection]\nenabled = true\nwindow_ms = 1000\ngrace_ms = 500\nlearning_windows = 5\n\
         shape_training_windows = 0\n",
        otlp_toml("grpc", &format!("http://{}", receiver.grpc))
    );
    let Stack {
        dir: _dir,
        cp: _cp,
        api,
        agent: _agent,
    } = Stack::start_with(&AgentOptions::new("otlp-node"), &toml);

    let cg = Cgroup::memory_v1(&unique_name("otlploop"), None);
    for _ in 0..3 {
        run_crash_helper(&cg, &["exit", "1"]);
    }
    let key = format!("cgroup{}", cg.path());
    // Generous: the suite runs it beside heavy tests on two cores.
    let incident = wait_for(Duration::from_secs(30), "the crash-loop incident", || {
        api.incidents()
            .into_iter()
            .find(|i| i["kind"] == "crash_loop" && i["workload_key"] == key.as_str())
    });

    let (root, children) = wait_for(Duration::from_secs(15), "the incident's trace", || {
        incident_trace(&receiver.spans(), "crash_loop", &key).filter(|(_, c)| c.len() == 3)
    });
    assert_eq!(names(&children), ["correlate", "detect", "localize"]);
    assert_eq!(
        root.attributes["vigil.incident.id"],
        incident["id"].to_string()
    );
    assert_tree(&root, &children);
    let stage = |n: &str| children.iter().find(|c| c.name == n).expect("stage");
    assert_eq!(stage("detect").attributes["vigil.event"], "process_exit");
    assert_eq!(stage("correlate").attributes["vigil.rule"], "crash_loop");
    assert_eq!(stage("correlate").attributes["vigil.evidence"], "3");
    assert_eq!(stage("localize").attributes["vigil.root_cause"], key);
    // Detection: from the third exit in the kernel to its arrival; positive and under 10 s.
    let d = stage("detect");
    assert!(
        d.end_unix_ns > d.start_unix_ns && d.end_unix_ns - d.start_unix_ns < 10_000_000_000,
        "{d:#?}"
    );

    let diagnosed = diagnose_span(&receiver, &root);
    for a in ["vigil.fault_class", "vigil.confidence", "vigil.route"] {
        assert!(diagnosed.attributes.contains_key(a), "{a}: {diagnosed:#?}");
    }

    // Quiet for 2 s: resolved, and the trace gets its resolve span.
    wait_for(Duration::from_secs(30), "the resolve span", || {
        receiver
            .spans()
            .into_iter()
            .find(|s| s.name == "resolve" && s.parent_span_id == root.span_id)
    });

    let wanted = [
        "vigil.incidents.opened",
        "vigil.incidents.resolved",
        "vigil.detection.latency",
        "vigil.ingest.events",
        "vigil.ingest.metric_intervals",
        "vigil.node.dropped_events",
        "vigil.node.probe_up",
        "vigil.anomaly.score",
    ];
    let got = wait_for(Duration::from_secs(30), "every metric over OTLP", || {
        let got = receiver.metric_names();
        wanted.iter().all(|w| got.contains(*w)).then_some(got)
    });
    let points = receiver.points();
    let point = |metric: &str, key: &str, value: &str| {
        points
            .iter()
            .any(|p| p.metric == metric && p.attributes.get(key).map(String::as_str) == Some(value))
    };
    assert!(point("vigil.incidents.opened", "kind", "crash_loop"));
    assert!(point("vigil.incidents.opened", "severity", "critical"));
    assert!(point("vigil.ingest.events", "kind", "process_exit"));
    assert!(point("vigil.ingest.events", "node", "otlp-node"));
    assert!(point("vigil.node.dropped_events", "reason", "kernel"));
    assert!(point("vigil.node.probe_up", "probe", "oom:mark_victim"));
    assert!(points
        .iter()
        .any(|p| p.metric == "vigil.anomaly.score" && p.attributes.contains_key("entity")));
    assert!(receiver.requests("grpc") >= 2);
    let got: BTreeSet<_> = got.into_iter().collect();
    eprintln!(
        "OTLP/gRPC: trace {} → {:?}; metrics {got:?}",
        root.name,
        names(&children)
    );
}
