//! The evidence tools, one file each, and the one registry that lists them: the deterministic
//! diagnoser runs them all, the LLM loop and the MCP server call them by name.

mod dns_lookups;
mod edge_stats;
mod errno_profile;
mod kernel_events;
mod latency;
mod neighbours;
mod process_exits;
mod recent_changes;
mod resource_pressure;
mod workload_logs;

use std::sync::Arc;

pub use self::edge_stats::is_auth_refusal;
use super::tool::{EvidenceTool, ToolSpec};

/// Every evidence tool, by name.
#[derive(Clone)]
pub struct Registry {
    tools: Vec<Arc<dyn EvidenceTool>>,
}

impl Registry {
    /// The tools Vigil ships.
    pub fn standard() -> Self {
        Self {
            tools: vec![
                Arc::new(kernel_events::KernelEvents),
                Arc::new(process_exits::ProcessExits),
                Arc::new(errno_profile::ErrnoProfile),
                Arc::new(edge_stats::EdgeStats),
                Arc::new(latency::LatencyHistograms),
                Arc::new(resource_pressure::ResourcePressure),
                Arc::new(dns_lookups::DnsLookups),
                Arc::new(neighbours::ServiceNeighbours),
                Arc::new(recent_changes::RecentChanges),
                Arc::new(workload_logs::WorkloadLogs),
            ],
        }
    }

    pub fn tools(&self) -> &[Arc<dyn EvidenceTool>] {
        &self.tools
    }

    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.iter().map(|t| t.spec()).collect()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn EvidenceTool>> {
        self.tools.iter().find(|t| t.spec().name == name)
    }
}
