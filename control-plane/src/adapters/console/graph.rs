//! The service graph: every workload and endpoint the flows showed, nodes coloured by their
//! open incidents, edges by error ratio (width by latency); clicking a node highlights its
//! blast radius (what transitively depends on it, from `/api/v1/graph/blast-radius`). Drawn
//! by cytoscape.js from `/console/graph.json`, refreshed every few seconds.

use std::collections::HashMap;

use axum::{extract::State, response::Response, Extension, Json};
use maud::html;
use serde::Serialize;

use super::{assets, blocking, format, layout, respond, ConsoleState, PageError};
use crate::domain::{
    access::Principal,
    graph::service_graph::GraphSnapshot,
    incident::{Incident, IncidentStatus, Severity},
};

#[derive(Debug, Serialize)]
pub struct GraphView {
    nodes: Vec<NodeView>,
    edges: Vec<EdgeView>,
}

#[derive(Debug, Serialize)]
struct NodeView {
    id: String,
    kind: String,
    /// `ok`, `warning` or `critical`: the worst open incident on it.
    health: &'static str,
    incidents: usize,
}

#[derive(Debug, Serialize)]
struct EdgeView {
    source: String,
    target: String,
    /// Failed replies / replies when the protocol is parsed, else failed connects and resets
    /// over connections.
    error_ratio: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt_ms: Option<f64>,
    connections: u64,
    retransmit_rate: f64,
}

/// The snapshot with each node's health from the open incidents on it.
pub fn view(snapshot: GraphSnapshot, open: &[Incident]) -> GraphView {
    let mut on: HashMap<String, (usize, Severity)> = HashMap::new();
    for i in open.iter().filter(|i| i.status == IncidentStatus::Open) {
        let e = on
            .entry(i.workload_key.to_string())
            .or_insert((0, Severity::Warning));
        e.0 += 1;
        if i.severity == Severity::Critical {
            e.1 = Severity::Critical;
        }
    }
    GraphView {
        nodes: snapshot
            .nodes
            .into_iter()
            .map(|n| {
                let id = n.id.to_string();
                let (incidents, severity) = on.get(&id).copied().unwrap_or((0, Severity::Warning));
                NodeView {
                    health: match (incidents, severity) {
                        (0, _) => "ok",
                        (_, Severity::Critical) => "critical",
                        _ => "warning",
                    },
                    incidents,
                    kind: format::wire(&n.kind),
                    id,
                }
            })
            .collect(),
        edges: snapshot
            .edges
            .into_iter()
            .map(|e| {
                let failures = (e.failed_connects + e.resets) as f64;
                EdgeView {
                    error_ratio: match &e.requests {
                        Some(r) => r.error_ratio,
                        None if e.connections > 0 => (failures / e.connections as f64).min(1.0),
                        None => 0.0,
                    },
                    p99_ms: e.requests.as_ref().and_then(|r| r.p99_ms),
                    rtt_ms: e.recent_rtt_us.or(e.rtt_us).map(|us| us / 1e3),
                    connections: e.connections,
                    retransmit_rate: e.recent_retransmit_rate,
                    source: e.from.to_string(),
                    target: e.to.to_string(),
                }
            })
            .collect(),
    }
}

pub async fn data(State(s): State<ConsoleState>) -> Result<Json<GraphView>, PageError> {
    let snapshot = s.api.graph.snapshot(s.api.clock.now_unix_ns());
    let open = {
        let s = s.clone();
        blocking(move || {
            Ok(crate::adapters::http::incident_list(
                &s.api,
                Some("open"),
                None,
                10_000,
            )?)
        })
        .await?
    };
    Ok(Json(view(snapshot, &open)))
}

pub async fn page(Extension(who): Extension<Principal>) -> Response {
    respond(layout::page(
        "service graph",
        "/console/graph",
        &who,
        html! {
            h1 { "Service graph" }
            p.legend {
                span.dot.ok {} "no open incident " span.dot.warning {} "warning " span.dot.critical {} "critical · "
                "edges: red as the error ratio rises, thicker as p99 latency (or RTT) grows · click a node for its blast radius"
            }
            div #graph-status.muted { "loading…" }
            div #graph data-src="/console/graph.json" {}
            div #blast {}
            script src=(assets::path("cytoscape.min.js")) defer {}
            script src=(assets::path("graph.js")) defer {}
        },
    ))
}
