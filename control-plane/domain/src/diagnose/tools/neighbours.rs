//! `service_neighbours`: what an entity calls, what calls it, and everything that depends on
//! it (its blast radius), from the live service graph. Context for the other tools: it casts
//! no vote.

use std::collections::{BTreeSet, VecDeque};

use crate::{
    diagnose::{
        ports::Sources,
        tool::{EvidenceTool, Observation, Scope, ToolOutput, ToolSpec},
    },
    store::StoreError,
};

pub struct ServiceNeighbours;

impl EvidenceTool for ServiceNeighbours {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "service_neighbours",
            description: "One entity's neighbours in the live service graph: its callers, its dependencies, and its blast radius (everything that transitively depends on it).",
        }
    }

    fn call(&self, sources: &Sources, scope: &Scope) -> Result<ToolOutput, StoreError> {
        let edges = sources.graph.call_edges(scope.to_unix_ns);
        let me = &scope.entity;
        let callers: BTreeSet<_> = edges
            .iter()
            .filter(|e| &e.server == me)
            .map(|e| e.client.clone())
            .collect();
        let callees: BTreeSet<_> = edges
            .iter()
            .filter(|e| &e.client == me)
            .map(|e| e.server.clone())
            .collect();
        // Breadth-first over callers of callers.
        let mut radius = BTreeSet::new();
        let mut queue: VecDeque<_> = callers.iter().cloned().collect();
        while let Some(n) = queue.pop_front() {
            if &n != me && radius.insert(n.clone()) {
                queue.extend(
                    edges
                        .iter()
                        .filter(|e| e.server == n)
                        .map(|e| e.client.clone()),
                );
            }
        }
        let list = |s: &BTreeSet<crate::entity::EntityId>| {
            s.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let obs = vec![
            Observation::new("callers", callers.len() as f64, "entities")
                .detail(list(&callers))
                .weight(3.0),
            Observation::new("dependencies", callees.len() as f64, "entities")
                .detail(list(&callees))
                .weight(2.0),
            Observation::new("blast radius", radius.len() as f64, "entities")
                .detail(list(&radius))
                .weight(1.0),
        ];
        let summary = format!(
            "{} callers, {} dependencies, {} entities depend on it",
            callers.len(),
            callees.len(),
            radius.len()
        );
        Ok(ToolOutput::new(
            "service_neighbours",
            scope,
            summary,
            obs,
            Vec::new(),
        ))
    }
}
