//! Must-show 2 and 3 of the export issue: a real Prometheus (Debian's package) scrapes the
//! agent's and the control plane's `/metrics`; PromQL through its HTTP API returns the
//! agent's event counters; and every query of every Grafana dashboard in `deploy/` names
//! metrics that this live system actually produced.

use std::{collections::BTreeSet, net::SocketAddr, path::PathBuf, time::Duration};

use vigil_tests::{
    prometheus::{free_port, Prometheus},
    run_crash_helper, unique_name, wait_for, AgentOptions, Cgroup, Stack,
};

/// Detection on short windows with a short learning phase, so entity scores exist within
/// seconds; incidents resolve after 2 quiet seconds.
const CONTROL_PLANE: &str = "\
[rules]\ncrash_loop_restarts = 3\ncrash_loop_window_secs = 60\ncrash_loop_service_uptime_secs = 0\n\
[incidents]\nresolve_after_secs = 2\n\
[detection]\nenabled = true\nwindow_ms = 1000\ngrace_ms = 500\nlearning_windows = 5\n\
shape_training_windows = 0\nforest_min_training = 16\n";

fn first_value(result: &[serde_json::Value]) -> f64 {
    result
        .first()
        .and_then(|r| r["value"][1].as_str())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Every metric name a PromQL expression references (`vigil_…` identifiers).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("vigil_") {
        let start = i + at;
        let boundary = start == 0 || {
            let c = bytes[start - 1];
            !(c.is_ascii_alphanumeric() || c == b'_' || c == b'"' || c == b'$')
        };
        let end = expr[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(expr.len(), |e| start + e);
        if boundary {
            names.insert(expr[start..end].to_string());
        }
        i = end;
    }
    names
}

/// Every `expr` in a dashboard's panels and their targets (rows nest panels).
fn dashboard_queries(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                if k == "expr" || k == "definition" {
                    if let Some(e) = child.as_str() {
                        out.push(e.to_string());
                    }
                } else {
                    dashboard_queries(child, out);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|c| dashboard_queries(c, out)),
        _ => {}
    }
}

fn dashboards() -> Vec<(PathBuf, serde_json::Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/daemonset/base/dashboards");
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read dashboard");
            let v = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()));
            (p, v)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[test]
fn metric_name_extraction() {
    assert_eq!(
        metric_names(
            "sum by (kind) (rate(vigil_ingest_events_total{node=~\"$node\"}[5m])) / ignoring(x) vigil_agent_probe_up"
        ),
        BTreeSet::from(["vigil_ingest_events_total".into(), "vigil_agent_probe_up".into()])
    );
    assert!(metric_names("label_values(vigil_agent_build_info, node)")
        .contains("vigil_agent_build_info"));
    assert!(
        metric_names("up{job=\"vigil_x\"}").is_empty(),
        "label values are not metrics"
    );
}

#[test]
fn prometheus_scrapes_agent_and_control_plane_and_dashboards_query_live_metrics() {
    let mut options = AgentOptions::new("prom-node");
    let agent_metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    options.metrics_listen = agent_metrics.to_string();
    let Stack {
        dir,
        cp,
        api,
        agent: _agent,
    } = Stack::start_with(&options, CONTROL_PLANE);

    // Both endpoints speak the exposition format before Prometheus is involved.
    let agent_text = vigil_tests::Api::new(format!("http://{agent_metrics}"))
        .try_text("/metrics")
        .expect("the agent serves /metrics");
    assert!(
        agent_text.contains("# TYPE vigil_agent_dropped_events counter")
            && agent_text.contains("vigil_agent_probe_up{probe=")
            && agent_text.ends_with("# EOF\n"),
        "{agent_text}"
    );

    let prometheus = Prometheus::start(
        dir.path(),
        &[
            ("vigil-agent", agent_metrics),
            ("vigil-control-plane", cp.http),
        ],
    );

    // A crash loop: exits the agent counts, an incident the control plane counts.
    let cg = Cgroup::memory_v1(&unique_name("promloop"), None);
    for _ in 0..3 {
        let (_, status) = run_crash_helper(&cg, &["exit", "1"]);
        assert_eq!(status.code(), Some(1));
    }
    let key = format!("cgroup{}", cg.path());
    // The whole suite runs beside it on 2 cores: once the incident took longer than 10 s.
    wait_for(Duration::from_secs(30), "the crash-loop incident", || {
        api.incidents()
            .into_iter()
            .find(|i| i["kind"] == "crash_loop" && i["workload_key"] == key.as_str())
    });

    wait_for(Duration::from_secs(20), "both targets up", || {
        let t = prometheus.targets();
        (t.len() == 2 && t.iter().all(|(_, h, _)| h == "up")).then_some(())
    });

    // The agent's event counters, through PromQL.
    let exits = wait_for(
        Duration::from_secs(20),
        "the agent's exit counter in Prometheus",
        || {
            let v =
                first_value(&prometheus.query(
                    "sum(vigil_agent_events_total{job=\"vigil-agent\",kind=\"process_exit\"})",
                ));
            (v >= 3.0).then_some(v)
        },
    );
    // Once the series exists, more exits make its rate() positive.
    for _ in 0..2 {
        run_crash_helper(&cg, &["exit", "0"]);
    }
    wait_for(
        Duration::from_secs(20),
        "rate() over the agent's exit counter",
        || {
            let r = prometheus
                .query("sum(rate(vigil_agent_events_total{kind=\"process_exit\"}[1m])) > 0");
            (!r.is_empty()).then_some(())
        },
    );
    // Nothing is lost between them: every exit the agent had read by now is, soon after,
    // among those the control plane stored. (Both count the whole host, where other tests
    // keep exiting processes, so the two never stand still long enough to compare equal.)
    let read = wait_for(
        Duration::from_secs(20),
        "the agent's count of this test's 5 exits",
        || {
            let read =
                first_value(&prometheus.query(
                    "sum(vigil_agent_events_total{job=\"vigil-agent\",kind=\"process_exit\"})",
                ));
            (read >= 5.0).then_some(read)
        },
    );
    let stored = wait_for(
        Duration::from_secs(20),
        "the control plane to have stored what the agent read",
        || {
            let stored = first_value(&prometheus.query(
                "sum(vigil_ingest_events_total{job=\"vigil-control-plane\",node=\"prom-node\",kind=\"process_exit\"})",
            ));
            (stored >= read).then_some(stored)
        },
    );
    let opened = wait_for(Duration::from_secs(20), "the incident counter", || {
        let v =
            first_value(&prometheus.query(
                "sum(vigil_incidents_opened_total{kind=\"crash_loop\",severity=\"critical\"})",
            ));
        (v >= 1.0).then_some(v)
    });
    assert!(opened >= 1.0);
    let latency = first_value(
        &prometheus.query("sum(vigil_detection_latency_seconds_count{kind=\"crash_loop\"})"),
    );
    assert!(
        latency >= 1.0,
        "detection latency observed for the incident"
    );
    let probes = prometheus.query("vigil_agent_probe_up{job=\"vigil-agent\"} == 1");
    assert!(probes.len() >= 4, "attached probes: {probes:#?}");

    // Dashboards: every metric a query names exists in what Prometheus scraped from this
    // system. Wait for the slower ones (detection scores after learning, resolution).
    let boards = dashboards();
    assert!(
        boards.len() >= 4,
        "fleet, incidents, service graph, agent health"
    );
    let mut wanted = BTreeSet::new();
    for (path, board) in &boards {
        let mut queries = Vec::new();
        dashboard_queries(board, &mut queries);
        assert!(!queries.is_empty(), "{} has no queries", path.display());
        for q in &queries {
            let names = metric_names(q);
            assert!(
                !names.is_empty(),
                "{}: query {q:?} names no vigil metric",
                path.display()
            );
            wanted.extend(names);
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let missing = loop {
        let missing: Vec<_> = wanted
            .iter()
            .filter(|name| {
                prometheus
                    .query(&format!("count({{__name__=\"{name}\"}})"))
                    .is_empty()
            })
            .cloned()
            .collect();
        if missing.is_empty() || std::time::Instant::now() > deadline {
            break missing;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert!(
        missing.is_empty(),
        "dashboard queries name metrics this system never produced: {missing:?}"
    );
    eprintln!(
        "Prometheus: {exits} then {read} exits read by the agent, {stored} stored, {opened} incident(s); {} dashboard metrics all live: {wanted:?}",
        wanted.len()
    );
}
