//! The live service graph shared by the use cases: fed every new interval (an `IntervalSink`),
//! read by the API, alerts and detection (`GraphView`), aged out as it is read.

use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    ports::EndpointResolver,
    service_graph::{BlastRadius, GraphConfig, GraphSnapshot, ServiceGraph},
};
use crate::{
    detection::ports::GraphView,
    entity::{EdgeId, EntityId},
    interval::{ports::IntervalSink, Endpoint, MetricInterval},
};

pub struct LiveGraph {
    graph: Mutex<ServiceGraph>,
    config: GraphConfig,
}

impl LiveGraph {
    pub fn new(config: GraphConfig, resolver: Arc<dyn EndpointResolver>) -> Self {
        Self {
            graph: Mutex::new(ServiceGraph::new(config, resolver)),
            config,
        }
    }

    pub fn config(&self) -> &GraphConfig {
        &self.config
    }

    fn graph(&self) -> MutexGuard<'_, ServiceGraph> {
        self.graph.lock().unwrap_or_else(|p| p.into_inner())
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

impl IntervalSink for LiveGraph {
    fn accept(&self, interval: &MetricInterval) {
        self.graph().observe(interval);
    }
}

impl GraphView for LiveGraph {
    fn server_entity(&self, node: &str, endpoint: &Endpoint) -> EntityId {
        self.graph().server_entity(node, endpoint).0
    }

    fn call_edges(&self, now_unix_ns: i64) -> Vec<EdgeId> {
        self.snapshot(now_unix_ns)
            .edges
            .into_iter()
            .map(|e| EdgeId::new(e.from, e.to))
            .collect()
    }
}
