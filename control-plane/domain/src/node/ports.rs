//! What ingest needs to remember nodes.

use super::{AgentStats, NodeInfo};
use crate::store::StoreError;

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
