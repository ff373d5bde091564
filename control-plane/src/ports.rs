//! Ports: what the domain needs from the outside world. Adapters implement them.

use crate::domain::{
    detect::features::EntityClass,
    event::{KernelEvent, StoredEvent},
    incident::{EvidenceRef, Finding, Incident, IncidentKind, IncidentStatus},
    telemetry::{Endpoint, MapUsage, MetricInterval, SampleKind, StoredSample},
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage backend failed while {action}: {source}")]
    Backend {
        action: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("incident {0} does not exist")]
    NoSuchIncident(i64),
}

/// What inserting a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Sequence numbers stored by this call (not seen before).
    pub inserted: Vec<u64>,
    /// Events already stored (a retried batch).
    pub duplicates: u32,
}

#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub node: Option<String>,
    pub kind: Option<String>,
    pub workload_key: Option<String>,
    pub since_unix_ns: Option<i64>,
    pub limit: usize,
}

#[derive(Debug, Clone, Default)]
pub struct IncidentQuery {
    pub status: Option<IncidentStatus>,
    pub kind: Option<IncidentKind>,
    pub limit: usize,
}

impl IncidentQuery {
    /// Open incidents of every kind, at most `limit`.
    pub fn open(limit: usize) -> Self {
        Self {
            status: Some(IncidentStatus::Open),
            kind: None,
            limit,
        }
    }
}

/// A node as it introduced itself, plus the loss counters it last reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub kernel_release: String,
    pub agent_version: String,
    pub protocol_version: u32,
    /// Probe name → error (empty when attached).
    pub probes: Vec<(String, String)>,
    pub stats: AgentStats,
    pub last_seen_unix_ns: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AgentStats {
    pub kernel_dropped: u64,
    pub buffer_dropped: u64,
    pub events_read: u64,
    pub malformed: u64,
    #[serde(default)]
    pub metric_intervals_dropped: u64,
}

impl AgentStats {
    /// Events lost, by where: the labels every exporter reports them under.
    pub fn losses(&self) -> [(&'static str, u64); 4] {
        [
            ("kernel", self.kernel_dropped),
            ("buffer", self.buffer_dropped),
            ("malformed", self.malformed),
            ("metric_interval", self.metric_intervals_dropped),
        ]
    }
}

pub trait EventStore: Send + Sync {
    /// Stores the events not stored before, keyed on (node, seq), atomically.
    fn insert_batch(
        &self,
        events: &[KernelEvent],
        received_unix_ns: i64,
    ) -> Result<InsertOutcome, StoreError>;
    /// Highest sequence number stored for `node`, 0 if none.
    fn last_seq(&self, node: &str) -> Result<u64, StoreError>;
    fn list_events(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, StoreError>;
    fn get_event(&self, node: &str, seq: u64) -> Result<Option<StoredEvent>, StoreError>;
}

pub trait IncidentStore: Send + Sync {
    /// The open incident of this kind for this workload on this node, if any.
    fn find_open(
        &self,
        kind: IncidentKind,
        node: &str,
        workload_key: &str,
    ) -> Result<Option<Incident>, StoreError>;
    fn create(&self, finding: &Finding) -> Result<Incident, StoreError>;
    /// Merges another finding into an open incident.
    fn add_occurrence(&self, id: i64, finding: &Finding) -> Result<Incident, StoreError>;
    fn resolve(&self, id: i64, at_unix_ns: i64) -> Result<(), StoreError>;
    /// Opens a resolved incident again (a recurrence within its cooldown).
    fn reopen(&self, id: i64, at_unix_ns: i64) -> Result<(), StoreError>;
    fn list(&self, query: &IncidentQuery) -> Result<Vec<Incident>, StoreError>;
    fn get(&self, id: i64) -> Result<Option<Incident>, StoreError>;
    fn evidence(&self, id: i64) -> Result<Vec<EvidenceRef>, StoreError>;
}

pub trait NodeStore: Send + Sync {
    fn record_hello(&self, node: &NodeInfo) -> Result<(), StoreError>;
    fn record_stats(
        &self,
        node: &str,
        stats: &AgentStats,
        at_unix_ns: i64,
    ) -> Result<(), StoreError>;
    fn list_nodes(&self) -> Result<Vec<NodeInfo>, StoreError>;
}

/// Who is behind an address in the cluster: implemented against the Kubernetes API (Pods,
/// Services, EndpointSlices) where there is one.
pub trait EndpointResolver: Send + Sync {
    /// The Service or Pod serving `endpoint` (port 0: any port of that address).
    fn resolve(&self, endpoint: &Endpoint) -> Option<ResolvedEndpoint>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedEndpoint {
    /// Graph entity id, e.g. "k8s-svc/default/redis" or "k8s-pod/<uid>".
    pub entity: String,
    /// "service" or "pod".
    pub kind: &'static str,
}

/// No cluster: endpoints resolve through the listeners the agents report.
pub struct NoCluster;

impl EndpointResolver for NoCluster {
    fn resolve(&self, _: &Endpoint) -> Option<ResolvedEndpoint> {
        None
    }
}

#[derive(Debug, Clone, Default)]
pub struct SampleQuery {
    pub kind: Option<SampleKind>,
    pub node: Option<String>,
    pub workload_key: Option<String>,
    pub since_unix_ns: Option<i64>,
    pub limit: usize,
}

pub trait TelemetryStore: Send + Sync {
    /// Stores an interval unless (node, seq) is already stored; returns whether it was new.
    fn insert_interval(&self, interval: &MetricInterval) -> Result<bool, StoreError>;
    /// Highest interval stored for `node`, 0 if none.
    fn last_interval_seq(&self, node: &str) -> Result<u64, StoreError>;
    /// Newest first.
    fn samples(&self, query: &SampleQuery) -> Result<Vec<StoredSample>, StoreError>;
    /// Kernel map usage of the node's latest interval (empty before the first).
    fn map_usage(&self, node: &str) -> Result<Vec<MapUsage>, StoreError>;
    /// Intervals that ended after `since`, oldest first (to rebuild the graph on start).
    fn intervals_since(&self, since_unix_ns: i64) -> Result<Vec<MetricInterval>, StoreError>;
}

/// Detection baselines, persisted so a restarted control plane does not relearn from zero.
pub trait BaselineStore: Send + Sync {
    /// Every stored baseline: (entity, serialised state).
    fn load_baselines(&self) -> Result<Vec<(String, String)>, StoreError>;
    /// Upserts these baselines atomically.
    fn save_baselines(&self, baselines: &[(String, String)]) -> Result<(), StoreError>;
}

/// A change in an incident's life, as observers (metrics, traces, the Kubernetes mirror) see
/// it.
#[derive(Debug, Clone)]
pub enum IncidentChange {
    /// Carries the finding that opened it: its stages are the incident's trace.
    Opened {
        incident: Incident,
        finding: Finding,
    },
    Updated(Incident),
    Reopened(Incident),
    Resolved(Incident),
}

impl IncidentChange {
    pub fn incident(&self) -> &Incident {
        match self {
            Self::Opened { incident, .. }
            | Self::Updated(incident)
            | Self::Reopened(incident)
            | Self::Resolved(incident) => incident,
        }
    }
}

/// How anomalous an entity looked in the window just judged.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityScore {
    pub entity: String,
    pub class: EntityClass,
    /// Largest robust z-score of its features (0 while learning).
    pub max_z: f64,
    /// The isolation forest's score in [0, 1], once its forest is trained.
    pub forest: Option<f64>,
}

/// What Vigil reports about its own work: implemented by the Prometheus and OTLP exporters
/// and the Kubernetes mirror. Calls run on the ingest and detection paths: they must not
/// block (queue, or update in-memory instruments).
pub trait Observer: Send + Sync {
    fn incident(&self, _change: &IncidentChange) {}
    /// Events newly stored from `node`, by kind.
    fn events_ingested(&self, _node: &str, _kind: &str, _count: u64) {}
    /// Metric intervals newly stored from `node`.
    fn intervals_ingested(&self, _node: &str, _count: u64) {}
    /// Scores of every entity judged in a window.
    fn anomaly_scores(&self, _scores: &[EntityScore]) {}
}

/// Nobody is listening.
pub struct NoObserver;

impl Observer for NoObserver {}
