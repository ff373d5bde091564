//! The fleet as the live service graph shows it, for hosts without a cluster to ask.

use std::{collections::BTreeMap, sync::Arc};

use super::{fleet::Workload, ports::FleetView};
use crate::{clock::Clock, detection::ports::GraphView, entity::EntityId, store::StoreError};

/// The fleet as the live service graph shows it, where nothing says how many replicas a
/// workload has: one each (so a disruptive action on anything with callers is refused by the
/// last-healthy-endpoint guardrail), its callers as its dependents.
pub struct GraphFleet {
    pub graph: Arc<dyn GraphView>,
    pub clock: Arc<dyn Clock>,
}

impl FleetView for GraphFleet {
    fn fleet(&self) -> Result<BTreeMap<EntityId, Workload>, StoreError> {
        let mut fleet: BTreeMap<EntityId, Workload> = BTreeMap::new();
        let one = || Workload {
            replicas: 1,
            healthy: 1,
            ..Workload::default()
        };
        for edge in self.graph.call_edges(self.clock.now_unix_ns()) {
            fleet.entry(edge.client.clone()).or_insert_with(one);
            fleet
                .entry(edge.server.clone())
                .or_insert_with(one)
                .dependents
                .insert(edge.client);
        }
        Ok(fleet)
    }

    /// The graph lists only workloads that call or are called: one the kernel saw (an
    /// incident names it) that does neither is a lone replica nothing depends on.
    fn unlisted(&self, _target: &EntityId) -> Option<Workload> {
        Some(Workload {
            replicas: 1,
            healthy: 1,
            ..Workload::default()
        })
    }
}
