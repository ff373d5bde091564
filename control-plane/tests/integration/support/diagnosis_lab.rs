//! The diagnosis use case's test lab: the real SQLite store in memory, ingest as the agent's
//! stream drives it, a manual clock, and endpoints that resolve as the live graph would.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    sync::Arc,
};

use control_plane::{
    adapters::sqlite::SqliteStore,
    domain::{
        clock::{Clock, ManualClock, SystemClock},
        detection::ports::GraphView,
        diagnose::{
            ports::{DiagnosisStore, NoChanges, NoLogs, Sources},
            tools::Registry,
            Diagnosis, DiagnosisParts, DiagnosisPolicy, DiagnosisService,
        },
        entity::{EdgeId, EntityId},
        event::KernelEvent,
        incident::{
            details::{AlertDetails, AnomalyDetails, VigilContext},
            evidence::RootCause,
            ports::IncidentStore,
            Details, Finding, Incident, Severity,
        },
        ingest::{Batch, IngestService},
        interval::{ports::IntervalStore, Endpoint, MetricInterval},
        synthetic::empty_interval,
    },
};

pub const SECOND: i64 = 1_000_000_000;
pub const APP: &str = "cgroup/app";
pub const WEB: &str = "cgroup/web";
pub const REDIS: &str = "cgroup/redis";
pub const REDIS_IP: &str = "10.0.0.5";
pub const APP_IP: &str = "10.0.0.7";

/// Endpoints resolve as the live graph would: a known address is its server's workload.
struct Addresses(HashMap<IpAddr, EntityId>);

impl GraphView for Addresses {
    fn server_entity(&self, _node: &str, endpoint: &Endpoint) -> EntityId {
        self.0
            .get(&endpoint.ip)
            .cloned()
            .unwrap_or_else(|| EntityId::external(endpoint))
    }

    fn call_edges(&self, _now: i64) -> Vec<EdgeId> {
        Vec::new()
    }
}

pub struct Lab {
    pub store: Arc<SqliteStore>,
    pub clock: Arc<ManualClock>,
    pub ingest: IngestService,
    pub diagnosis: DiagnosisService,
    pub now: i64,
    pub seq: u64,
}

impl Lab {
    pub fn new() -> Self {
        // No time budget: which incidents a tick takes must not depend on the machine's speed.
        Self::with_policy(DiagnosisPolicy {
            tick_budget_ns: i64::MAX,
            ..DiagnosisPolicy::default()
        })
    }

    pub fn with_policy(policy: DiagnosisPolicy) -> Self {
        let store = Arc::new(SqliteStore::in_memory().expect("store"));
        let now = SystemClock.now_unix_ns();
        let clock = Arc::new(ManualClock::at(now));
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let graph = Arc::new(Addresses(HashMap::from([
            (ip(REDIS_IP), EntityId::new(REDIS)),
            (ip(APP_IP), EntityId::new(APP)),
        ])));
        let ingest = super::ingest::ingest(&store, store.clone(), clock.clone());
        let diagnosis = DiagnosisService::new(DiagnosisParts {
            sources: Sources {
                events: store.clone(),
                samples: store.clone(),
                graph,
                logs: Arc::new(NoLogs),
                changes: Arc::new(NoChanges),
            },
            incidents: store.clone(),
            store: store.clone(),
            clock: clock.clone(),
            registry: Registry::standard(),
            policy,
        });
        Self {
            store,
            clock,
            ingest,
            diagnosis,
            now,
            seq: 0,
        }
    }

    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Events go through ingest, as the agent's stream does; returns the incidents opened.
    pub fn events(&mut self, events: Vec<KernelEvent>) -> Vec<Incident> {
        let report = self
            .ingest
            .ingest(&Batch {
                node: "n1".into(),
                events,
                stats: None,
            })
            .expect("ingest");
        report
            .incidents_opened
            .iter()
            .map(|id| self.store.get(*id).expect("get").expect("opened"))
            .collect()
    }

    /// One interval per second from `from` to `to` (relative to now), each filled by `fill`
    /// with its end time.
    pub fn intervals(&mut self, from: i64, to: i64, fill: impl Fn(i64, &mut MetricInterval)) {
        for t in from..to {
            let end = self.now + t * SECOND;
            let seq = self.next_seq();
            let mut i = empty_interval("n1", seq, end);
            fill(t, &mut i);
            self.store.insert_interval(&i).expect("interval");
        }
    }

    /// A correlated anomaly localized to `root`, its first symptom at `onset` (relative).
    pub fn anomaly(&self, root: &str, onset: i64) -> Incident {
        let first = self.now + onset * SECOND;
        let finding = Finding {
            severity: Severity::Critical,
            node: "n1".into(),
            workload_key: EntityId::new(root),
            title: format!("{root} anomalous"),
            summary: String::new(),
            time_unix_ns: first + SECOND,
            evidence: Vec::new(),
            details: Details::ServiceAnomaly(AnomalyDetails {
                root_causes: vec![RootCause {
                    entity: EntityId::new(root),
                    score: 1.0,
                    anomaly: 5.0,
                }],
                entities: BTreeMap::new(),
                first_anomaly_unix_ns: Some(first),
                episode_started_unix_ns: first,
                symptoms: Vec::new(),
                timeline: Vec::new(),
            }),
            stages: Vec::new(),
        };
        self.store.create(&finding).expect("create")
    }

    /// An alert about `entity` received now, as the alert receiver opens one (someone else's
    /// word: no evidence of its own).
    pub fn alert(&self, entity: &str) -> Incident {
        let now = self.clock.now_unix_ns();
        let finding = Finding {
            severity: Severity::Critical,
            node: "n1".into(),
            workload_key: EntityId::new(entity),
            title: format!("Alert PodRestarting on {entity}"),
            summary: String::new(),
            time_unix_ns: now,
            evidence: Vec::new(),
            details: Details::Alert(AlertDetails {
                alertname: "PodRestarting".into(),
                alerts: BTreeMap::from([("f1".to_string(), true)]),
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
                starts_at: String::new(),
                ends_at: String::new(),
                generator_url: String::new(),
                vigil: VigilContext::default(),
            }),
            stages: Vec::new(),
        };
        self.store.create(&finding).expect("create")
    }

    pub fn diagnose(&self, incident: &Incident) -> Diagnosis {
        let d = self
            .diagnosis
            .diagnose_and_store(incident)
            .expect("diagnose");
        let kept = self
            .store
            .diagnosis(incident.id)
            .expect("read")
            .expect("kept");
        assert_eq!(kept.class, d.class, "the stored diagnosis is the one made");
        d
    }
}
