//! The detection pipeline on synthetic intervals through the real store: a healthy chain is
//! learned, a slow dependency makes exactly one incident naming it, the incident resolves
//! when the signals return, and the baselines survive a restart.

use std::sync::Arc;

use control_plane::{
    adapters::sqlite::SqliteStore,
    domain::{
        clock::{Clock, ManualClock, SystemClock},
        detection::{
            forest::ForestConfig, robust::RobustConfig, univariate::UnivariateConfig,
            DetectionConfig, DetectionParts, DetectionService,
        },
        graph::{ports::NoCluster, GraphConfig, LiveGraph},
        incident::{
            ports::{IncidentQuery, IncidentStore},
            IncidentKind, IncidentStatus,
        },
        interval::{
            service::MetricsService, Endpoint, FlowRole, Histogram, Protocol, RequestObservation,
            StatusCount,
        },
        synthetic,
    },
    eval::synthetic::{Fleet, SlowRedis, SEC},
};

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
    clock: Arc<ManualClock>,
}

fn pipeline(path: &std::path::Path) -> Pipeline {
    let store = Arc::new(SqliteStore::open(path).expect("store"));
    let clock = Arc::new(ManualClock::at(0));
    let graph = Arc::new(LiveGraph::new(GraphConfig::default(), Arc::new(NoCluster)));
    let detection = Arc::new(
        DetectionService::new(DetectionParts {
            config: config(),
            incidents: store.clone(),
            baselines: store.clone(),
            graph: graph.clone(),
            clock: clock.clone(),
        })
        .expect("detection"),
    );
    let metrics = MetricsService::new(store.clone())
        .with_sink(graph)
        .with_sink(detection.clone());
    Pipeline {
        store,
        detection,
        metrics,
        clock,
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
    let start = SystemClock.now_unix_ns() / SEC * SEC - 200 * SEC;
    // Chain 0 gets the fault; chain 1 is unrelated.
    let fleet = Fleet::new(2);
    let mut seq = 0;
    let mut step = |fault: Option<SlowRedis>| {
        seq += 1;
        let end = start + seq as i64 * SEC;
        p.metrics
            .ingest(&fleet.interval(seq, end, fault))
            .expect("ingest");
        // Judge every window as soon as it closes.
        p.clock.set(end + 2 * SEC);
        p.detection.tick().expect("tick")
    };
    for _ in 0..60 {
        step(None);
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
            .any(|b| b.entity.to_string() == "app0->redis0" && !b.learning),
        "{learned:?}"
    );
    // Redis slows down 1500×; app and web wait on it.
    for _ in 0..10 {
        step(Some(SlowRedis {
            chain: 0,
            rtt_us: 150_000,
        }));
    }
    let incidents = anomaly_incidents(&p.store);
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let i = &incidents[0];
    assert_eq!(i.workload_key, "redis0", "top root cause: {}", i.summary);
    let attributes = serde_json::to_value(&i.attributes).expect("attributes as the API shows them");
    let ranked = attributes["root_causes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(ranked[0]["entity"], "redis0", "{ranked:?}");
    let entities = attributes["entities"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(entities.contains_key("app0->redis0"), "{entities:?}");
    assert!(
        !entities.keys().any(|e| e.ends_with('1')),
        "unrelated entity joined: {entities:?}"
    );
    assert_eq!(i.status, IncidentStatus::Open);
    // Back to normal: the incident resolves after the quiet windows.
    for _ in 0..10 {
        step(None);
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
            .any(|b| b.entity.to_string() == "app0->redis0" && !b.learning),
        "{baselines:?}"
    );
}

/// The web's HTTP requests to the app in one interval: `errors` of `n` fail, each reply in
/// [2^bucket, 2^(bucket+1)) ns.
fn http_requests(n: u64, errors: u64, bucket: usize) -> RequestObservation {
    let mut log2_buckets = vec![0; 32];
    log2_buckets[bucket] = n;
    RequestObservation {
        workload: synthetic::workload("web0"),
        role: FlowRole::Client,
        local: Endpoint {
            ip: [10, 0, 0, 1].into(),
            port: 0,
        },
        remote: Endpoint {
            ip: [10, 0, 0, 2].into(),
            port: 8080,
        },
        protocol: Protocol::Http1,
        requests: n,
        responses: n,
        errors,
        client_errors: 0,
        timeouts: 0,
        closed_pending: 0,
        pipelined: 0,
        unparsed: 0,
        statuses: vec![StatusCount {
            code: "500".into(),
            count: errors,
        }],
        latency: Histogram {
            count: n,
            sum_ns: n << 20,
            log2_buckets,
        },
        stuck: 0,
        tls: false,
        error_samples: Vec::new(),
    }
}

/// One incident after 60 healthy windows and 6 with `fault`'s requests on web0->app0, with a
/// symptom of `feature` on that edge (and none on app0->redis0).
fn one_edge_incident(fault: impl Fn(u64) -> RequestObservation, feature: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = pipeline(&dir.path().join("vigil.db"));
    let start = SystemClock.now_unix_ns() / SEC * SEC - 200 * SEC;
    let fleet = Fleet::new(1);
    for seq in 1..=66u64 {
        let end = start + seq as i64 * SEC;
        let mut interval = fleet.interval(seq, end, None);
        let n = 200 + seq % 13;
        interval.requests.push(if seq > 60 {
            fault(n)
        } else {
            // A healthy edge fails now and then, and its latency wobbles by a bucket.
            http_requests(n, seq % 3 / 2, 19 + (seq % 2) as usize)
        });
        p.metrics.ingest(&interval).expect("ingest");
        p.clock.set(end + 2 * SEC);
        p.detection.tick().expect("tick");
    }
    let incidents = anomaly_incidents(&p.store);
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let attributes =
        serde_json::to_value(&incidents[0].attributes).expect("attributes as the API shows them");
    let symptoms = attributes["symptoms"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        symptoms
            .iter()
            .any(|s| s["entity"] == "web0->app0" && s["feature"] == feature),
        "{symptoms:?}"
    );
    let entities = attributes["entities"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(!entities.contains_key("app0->redis0"), "{entities:?}");
}

#[test]
fn a_p99_regression_on_one_edge_makes_one_incident_naming_that_edge() {
    // ~1 ms → ~300 ms: bucket 20 → bucket 28.
    one_edge_incident(|n| http_requests(n, 0, 28), "request_p99_us");
}

#[test]
fn an_error_ratio_spike_on_one_edge_makes_one_incident_naming_that_edge() {
    // The app answers 500 to half its requests; nothing else changes.
    one_edge_incident(|n| http_requests(n, n / 2, 20), "error_ratio");
}
