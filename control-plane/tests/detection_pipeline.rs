//! The detection pipeline on synthetic intervals through the real store: a healthy chain is
//! learned, a slow dependency makes exactly one incident naming it, the incident resolves
//! when the signals return, and the baselines survive a restart.

use std::sync::Arc;

use control_plane::{
    adapters::sqlite::SqliteStore,
    domain::{
        detect::{forest::ForestConfig, robust::RobustConfig, univariate::UnivariateConfig},
        detection::{DetectionConfig, DetectionService},
        event::{WorkloadKind, WorkloadRef},
        graph::GraphConfig,
        incident::{IncidentKind, IncidentStatus},
        metrics::MetricsService,
        telemetry::{
            Endpoint, FlowCounts, FlowObservation, FlowRole, Histogram, MetricInterval,
            SyscallObservation,
        },
    },
    ports::{IncidentQuery, IncidentStore, NoCluster},
};

const SEC: i64 = 1_000_000_000;

fn workload(key: &str) -> WorkloadRef {
    WorkloadRef {
        kind: WorkloadKind::Cgroup,
        key: key.into(),
        pod_uid: None,
        container_id: None,
        container_runtime: None,
        systemd_unit: None,
        cgroup_path: format!("/{key}"),
        is_root_process: false,
    }
}

fn ep(s: &str) -> Endpoint {
    let (ip, port) = s.rsplit_once(':').unwrap_or((s, "0"));
    Endpoint {
        ip: ip.parse().unwrap_or([0, 0, 0, 0].into()),
        port: port.parse().unwrap_or(0),
    }
}

/// Both views of one call edge with `rtt_us` on the client side.
fn edge(
    client: &str,
    cip: &str,
    server: &str,
    sep: &str,
    rtt_us: u64,
    n: u64,
) -> [FlowObservation; 2] {
    [
        FlowObservation {
            workload: workload(client),
            role: FlowRole::Client,
            local: ep(&format!("{cip}:0")),
            remote: ep(sep),
            process: client.into(),
            counts: FlowCounts {
                connects: n,
                established: n,
                srtt_sum_us: rtt_us * n,
                srtt_samples: n,
                ..Default::default()
            },
        },
        FlowObservation {
            workload: workload(server),
            role: FlowRole::Server,
            local: ep(sep),
            remote: ep(&format!("{cip}:0")),
            process: server.into(),
            counts: FlowCounts {
                connects: n,
                established: n,
                ..Default::default()
            },
        },
    ]
}

/// `read` calls of `key` with latencies around `us` microseconds.
fn reads(key: &str, us: u64, n: u64) -> SyscallObservation {
    let bucket = (us * 1000).max(1).ilog2() as usize;
    let mut log2_buckets = vec![0; 40];
    log2_buckets[bucket] = n;
    SyscallObservation {
        workload: workload(key),
        nr: 0,
        name: "read".into(),
        errors: 0,
        errors_by_errno: vec![],
        latency: Histogram {
            count: n,
            sum_ns: us * 1000 * n,
            log2_buckets,
        },
    }
}

/// One second of the chain web → app → {redis, postgres}, plus an unrelated batch → queue.
fn interval(seq: u64, end: i64, redis_rtt_us: u64, app_read_us: u64) -> MetricInterval {
    let jitter = seq * 7919 % 11;
    let mut flows = Vec::new();
    flows.extend(edge(
        "web",
        "10.0.0.1",
        "app",
        "10.0.0.2:8080",
        80 + jitter,
        20 + jitter,
    ));
    flows.extend(edge(
        "app",
        "10.0.0.2",
        "redis",
        "10.0.0.3:6379",
        redis_rtt_us + jitter,
        20,
    ));
    flows.extend(edge(
        "app",
        "10.0.0.2",
        "postgres",
        "10.0.0.4:5432",
        90 + jitter,
        10,
    ));
    flows.extend(edge(
        "batch",
        "10.0.0.5",
        "queue",
        "10.0.0.6:9000",
        70 + jitter,
        5,
    ));
    MetricInterval {
        node: "n1".into(),
        seq,
        start_unix_ns: end - SEC,
        end_unix_ns: end,
        flows,
        syscalls: vec![
            reads("app", app_read_us + jitter, 200),
            reads("web", app_read_us + 30 + jitter, 200),
            reads("queue", 40 + jitter, 50),
        ],
        latencies: vec![],
        dns: vec![],
        maps: vec![],
    }
}

fn config() -> DetectionConfig {
    DetectionConfig {
        window_ns: SEC,
        grace_ns: 0,
        univariate: UnivariateConfig {
            robust: RobustConfig {
                long: 120,
                short: 3,
                min_history: 20,
                ..RobustConfig::default()
            },
            likelihood: None,
            conformal: None,
        },
        forest: ForestConfig {
            min_training: 16,
            ..ForestConfig::default()
        },
        persist_every: 10,
        ..DetectionConfig::default()
    }
}

struct Pipeline {
    store: Arc<SqliteStore>,
    detection: Arc<DetectionService>,
    metrics: MetricsService,
}

fn pipeline(path: &std::path::Path) -> Pipeline {
    let store = Arc::new(SqliteStore::open(path).expect("store"));
    let detection =
        Arc::new(DetectionService::new(config(), store.clone(), store.clone()).expect("detection"));
    let metrics = MetricsService::new(store.clone(), Arc::new(NoCluster), GraphConfig::default())
        .with_detection(detection.clone());
    Pipeline {
        store,
        detection,
        metrics,
    }
}

fn anomaly_incidents(store: &SqliteStore) -> Vec<control_plane::domain::incident::Incident> {
    store
        .list(&IncidentQuery {
            status: None,
            kind: Some(IncidentKind::ServiceAnomaly),
            limit: 100,
        })
        .expect("list")
}

#[test]
fn a_slow_dependency_makes_one_incident_that_names_it_then_resolves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vigil.db");
    let p = pipeline(&path);
    let start = control_plane::domain::ingest::now_unix_ns() / SEC * SEC - 200 * SEC;
    let mut seq = 0;
    let mut step = |redis_rtt: u64, app_read: u64| {
        seq += 1;
        let end = start + seq as i64 * SEC;
        p.metrics
            .ingest(&interval(seq, end, redis_rtt, app_read))
            .expect("ingest");
        // Judge every window as soon as it closes.
        p.detection.tick(end + 2 * SEC, &p.metrics).expect("tick")
    };
    for _ in 0..60 {
        step(100, 50);
    }
    assert!(
        anomaly_incidents(&p.store).is_empty(),
        "healthy chain opened an incident: {:?}",
        anomaly_incidents(&p.store)
    );
    let learned = p.detection.baselines();
    assert!(
        learned
            .iter()
            .any(|b| b.entity == "app->redis" && !b.learning),
        "{learned:?}"
    );
    // Redis slows down 1500×; app and web wait on it.
    for _ in 0..10 {
        step(150_000, 20_000);
    }
    let incidents = anomaly_incidents(&p.store);
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let i = &incidents[0];
    assert_eq!(i.workload_key, "redis", "top root cause: {}", i.summary);
    let ranked = i.attributes["root_causes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(ranked[0]["entity"], "redis", "{ranked:?}");
    let entities = i.attributes["entities"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(entities.contains_key("app->redis"), "{entities:?}");
    assert!(
        !entities.keys().any(|e| e.contains("queue")),
        "unrelated entity joined: {entities:?}"
    );
    assert_eq!(i.status, IncidentStatus::Open);
    // Back to normal: the incident resolves after the quiet windows.
    for _ in 0..10 {
        step(100, 50);
    }
    let after = anomaly_incidents(&p.store);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].status, IncidentStatus::Resolved, "{:?}", after[0]);
    p.detection.persist().expect("persist");

    // A restarted control plane judges at once: its baselines were loaded, not relearned.
    drop(p);
    let restarted = pipeline(&path);
    let baselines = restarted.detection.baselines();
    assert!(
        baselines
            .iter()
            .any(|b| b.entity == "app->redis" && !b.learning),
        "{baselines:?}"
    );
}
