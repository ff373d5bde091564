//! The live service dependency graph, built from the flows the agents report.

pub mod live;
pub mod ports;
pub mod requests;
pub mod service_graph;

pub use live::LiveGraph;
pub use requests::RequestSummary;
pub use service_graph::{
    call_graph, BlastRadius, Edge, EdgeView, EntityInfo, GraphConfig, GraphSnapshot, ServiceGraph,
};
