//! Metric intervals through the SQLite store: stored once, the graph not double-counted on a
//! retry, and rebuilt from the store after a restart.

use std::sync::Arc;

use control_plane::{
    adapters::sqlite::SqliteStore,
    domain::{
        clock::{Clock, SystemClock},
        graph::{ports::NoCluster, GraphConfig, LiveGraph},
        interval::{
            ports::{IntervalStore, SampleQuery},
            service::MetricsService,
            Endpoint, FlowCounts, FlowObservation, FlowRole, MetricInterval, SampleKind,
        },
    },
    eval::synthetic::workload,
};

/// The metrics use case feeding a fresh service graph.
fn metrics_service(store: Arc<SqliteStore>) -> (MetricsService, Arc<LiveGraph>) {
    let graph = Arc::new(LiveGraph::new(GraphConfig::default(), Arc::new(NoCluster)));
    (MetricsService::new(store).with_sink(graph.clone()), graph)
}

/// What a restarted control plane does: replay the intervals within the edge TTL.
fn rebuild(metrics: &MetricsService, graph: &LiveGraph, now: i64) -> usize {
    metrics
        .replay(now - graph.config().edge_ttl_ns, graph)
        .expect("rebuild")
}

fn interval(seq: u64, end: i64) -> MetricInterval {
    let ep = |s: &str| {
        let (ip, port) = s.rsplit_once(':').expect("ip:port");
        Endpoint {
            ip: ip.parse().expect("ip"),
            port: port.parse().expect("port"),
        }
    };
    MetricInterval {
        node: "n1".into(),
        seq,
        start_unix_ns: end - 1_000_000_000,
        end_unix_ns: end,
        flows: vec![
            FlowObservation {
                workload: workload("cgroup/api"),
                role: FlowRole::Client,
                local: ep("10.0.0.2:0"),
                remote: ep("10.0.0.3:6379"),
                process: "api".into(),
                counts: FlowCounts {
                    connects: 10,
                    failed: 2,
                    ..Default::default()
                },
            },
            FlowObservation {
                workload: workload("cgroup/redis"),
                role: FlowRole::Server,
                local: ep("10.0.0.3:6379"),
                remote: ep("10.0.0.2:0"),
                process: String::new(),
                counts: FlowCounts {
                    connects: 8,
                    ..Default::default()
                },
            },
        ],
        syscalls: vec![],
        latencies: vec![],
        dns: vec![],
        maps: vec![],
        requests: vec![],
        resources: vec![],
        filesystems: vec![],
    }
}

fn now() -> i64 {
    SystemClock.now_unix_ns()
}

#[test]
fn intervals_are_stored_once_and_the_graph_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vigil.db");
    let t = now();
    {
        let store = Arc::new(SqliteStore::open(&path).expect("store"));
        let (metrics, graph) = metrics_service(store.clone());
        assert!(metrics
            .ingest(&interval(1, t - 2_000_000_000))
            .expect("ingest"));
        assert!(
            !metrics
                .ingest(&interval(1, t - 2_000_000_000))
                .expect("retry"),
            "a retried interval is a duplicate"
        );
        assert!(metrics
            .ingest(&interval(2, t - 1_000_000_000))
            .expect("ingest"));
        assert_eq!(metrics.last_interval_seq("n1").expect("last"), 2);
        let edges = graph.snapshot(t).edges;
        assert_eq!(edges.len(), 1, "{edges:?}");
        assert_eq!(
            (edges[0].from.as_str(), edges[0].to.as_str()),
            ("cgroup/api", "cgroup/redis")
        );
        assert_eq!(
            edges[0].connections, 20,
            "two intervals of 10, the retry not counted"
        );
        assert_eq!(edges[0].failed_connects, 4);
        let flows = store
            .samples(&SampleQuery {
                kind: Some(SampleKind::Flow),
                limit: 100,
                ..Default::default()
            })
            .expect("samples");
        assert_eq!(flows.len(), 4, "two flows per stored interval");
    }
    // A new control plane on the same store serves the same graph.
    let store = Arc::new(SqliteStore::open(&path).expect("reopen"));
    let (metrics, graph) = metrics_service(store);
    assert_eq!(rebuild(&metrics, &graph, t), 2);
    let edges = graph.snapshot(t).edges;
    assert_eq!(edges.len(), 1);
    assert_eq!((edges[0].connections, edges[0].failed_connects), (20, 4));
    // Intervals older than the edge TTL are not replayed.
    let later = t + GraphConfig::default().edge_ttl_ns + 10_000_000_000;
    let (fresh, graph) = metrics_service(Arc::new(SqliteStore::open(&path).expect("reopen")));
    assert_eq!(rebuild(&fresh, &graph, later), 0);
}
