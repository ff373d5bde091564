//! Graphviz DOT rendering of the service graph (`GET /api/v1/graph?format=dot`, `vigil graph
//! --dot`).

use std::collections::HashMap;

use petgraph::graph::{DiGraph, NodeIndex};

use crate::domain::{
    entity::{EntityId, EntityKind},
    graph::{call_graph, GraphSnapshot},
};

/// Graphviz DOT: one node per entity, edges labelled with connections, failures,
/// retransmits and RTT.
pub fn to_dot(s: &GraphSnapshot) -> String {
    let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
    let (g, _) = call_graph(s);
    let kinds: HashMap<&EntityId, EntityKind> = s.nodes.iter().map(|n| (&n.id, n.kind)).collect();
    let labels: HashMap<(&str, &str), String> = s
        .edges
        .iter()
        .map(|e| {
            let rtt = e
                .recent_rtt_us
                .or(e.rtt_us)
                .map_or(String::new(), |r| format!(" rtt={:.0}us", r));
            (
                (e.from.as_str(), e.to.as_str()),
                format!(
                    "conn={} failed={} rst={} retx={}{}",
                    e.connections, e.failed_connects, e.resets, e.retransmits, rtt
                ),
            )
        })
        .collect();
    let edge_attrs = |g: &DiGraph<EntityId, ()>, e: petgraph::graph::EdgeReference<'_, ()>| {
        let from = g[petgraph::visit::EdgeRef::source(&e)].as_str();
        let to = g[petgraph::visit::EdgeRef::target(&e)].as_str();
        format!(
            "label = {}",
            quote(labels.get(&(from, to)).map_or("", String::as_str))
        )
    };
    let node_attrs = |_: &DiGraph<EntityId, ()>, (_, id): (NodeIndex, &EntityId)| {
        let shape = match kinds.get(id) {
            Some(EntityKind::External) => "ellipse, style=dashed",
            Some(EntityKind::Service) => "hexagon",
            _ => "box",
        };
        format!("label = {}, shape = {shape}", quote(id.as_str()))
    };
    let config = [
        petgraph::dot::Config::EdgeNoLabel,
        petgraph::dot::Config::NodeNoLabel,
    ];
    let dot = petgraph::dot::Dot::with_attr_getters(&g, &config, &edge_attrs, &node_attrs);
    format!("{dot:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::graph::{Edge, EntityInfo};

    #[test]
    fn renders_entities_and_labelled_edges() {
        let node = |id: &str, kind| EntityInfo {
            id: id.into(),
            kind,
            workload: None,
            nodes: Vec::new(),
            processes: Vec::new(),
        };
        let snapshot = GraphSnapshot {
            nodes: vec![
                node("cgroup/app", EntityKind::Workload),
                node("k8s-svc/default/redis", EntityKind::Service),
            ],
            edges: vec![Edge {
                from: "cgroup/app".into(),
                to: "k8s-svc/default/redis".into(),
                connections: 3,
                failed_connects: 1,
                resets: 0,
                retransmits: 2,
                retransmit_rate: 0.0,
                recent_retransmits: 0,
                recent_retransmit_rate: 0.0,
                rtt_us: Some(150.0),
                recent_rtt_us: None,
                bytes_forward: 0,
                bytes_backward: 0,
                last_seen_unix_ns: 0,
                endpoints: Vec::new(),
                client_view: None,
                server_view: None,
                requests: None,
            }],
        };
        let dot = to_dot(&snapshot);
        assert!(
            dot.contains("\"k8s-svc/default/redis\", shape = hexagon"),
            "{dot}"
        );
        assert!(
            dot.contains("conn=3 failed=1 rst=0 retx=2 rtt=150us"),
            "{dot}"
        );
    }
}
