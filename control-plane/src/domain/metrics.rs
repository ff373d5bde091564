//! The metrics use case: store each interval once, feed new ones to the service graph, answer
//! graph queries.

use std::sync::{Arc, Mutex, MutexGuard};

use tracing::info;

use super::{
    detection::{DetectionService, GraphView},
    graph::{BlastRadius, GraphConfig, GraphSnapshot, ServiceGraph},
    telemetry::{Endpoint, MetricInterval},
};
use crate::ports::{EndpointResolver, NoObserver, Observer, StoreError, TelemetryStore};

pub struct MetricsService {
    store: Arc<dyn TelemetryStore>,
    /// New intervals are queued here for their detection window.
    detection: Option<Arc<DetectionService>>,
    graph: Mutex<ServiceGraph>,
    config: GraphConfig,
    observer: Arc<dyn Observer>,
}

impl MetricsService {
    pub fn new(
        store: Arc<dyn TelemetryStore>,
        resolver: Arc<dyn EndpointResolver>,
        config: GraphConfig,
    ) -> Self {
        Self {
            store,
            detection: None,
            graph: Mutex::new(ServiceGraph::new(config, resolver)),
            config,
            observer: Arc::new(NoObserver),
        }
    }

    /// Reports each stored interval to `observer` (exporters).
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// Feeds every new interval to detection too.
    pub fn with_detection(mut self, detection: Arc<DetectionService>) -> Self {
        self.detection = Some(detection);
        self
    }

    fn graph(&self) -> MutexGuard<'_, ServiceGraph> {
        self.graph.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replays the stored intervals still within the edge TTL, so a restarted control plane
    /// serves the graph it had.
    pub fn rebuild(&self, now_unix_ns: i64) -> Result<usize, StoreError> {
        let intervals = self
            .store
            .intervals_since(now_unix_ns - self.config.edge_ttl_ns)?;
        let mut graph = self.graph();
        for i in &intervals {
            graph.observe(i);
        }
        if !intervals.is_empty() {
            info!(
                intervals = intervals.len(),
                "service graph rebuilt from the store"
            );
        }
        Ok(intervals.len())
    }

    pub fn last_interval_seq(&self, node: &str) -> Result<u64, StoreError> {
        self.store.last_interval_seq(node)
    }

    /// Stores the interval; returns false for a duplicate (already stored, not re-applied).
    pub fn ingest(&self, interval: &MetricInterval) -> Result<bool, StoreError> {
        let new = self.store.insert_interval(interval)?;
        if new {
            self.observer.intervals_ingested(&interval.node, 1);
            self.graph().observe(interval);
            if let Some(d) = &self.detection {
                d.push(interval.clone());
            }
        }
        Ok(new)
    }

    pub fn snapshot(&self, now_unix_ns: i64) -> GraphSnapshot {
        let mut graph = self.graph();
        graph.age_out(now_unix_ns);
        graph.snapshot()
    }

    pub fn blast_radius(&self, entity: &str, now_unix_ns: i64) -> Option<BlastRadius> {
        let mut graph = self.graph();
        graph.age_out(now_unix_ns);
        graph.blast_radius(entity)
    }
}

impl GraphView for MetricsService {
    fn server_entity(&self, node: &str, endpoint: &Endpoint) -> String {
        self.graph().server_entity(node, endpoint).0
    }

    fn call_edges(&self, now_unix_ns: i64) -> Vec<(String, String)> {
        self.snapshot(now_unix_ns)
            .edges
            .into_iter()
            .map(|e| (e.from, e.to))
            .collect()
    }
}
