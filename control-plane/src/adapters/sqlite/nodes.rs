//! Nodes: how each agent introduced itself and the loss counters it last reported.

use rusqlite::params;

use super::{
    errors::{backend, corrupt, json_err},
    SqliteStore,
};
use crate::domain::{
    node::{ports::NodeStore, AgentStats, NodeInfo},
    store::StoreError,
};

impl NodeStore for SqliteStore {
    fn record_hello(&self, n: &NodeInfo) -> Result<(), StoreError> {
        let probes = serde_json::to_string(&n.probes).map_err(json_err("encoding probes"))?;
        let stats = serde_json::to_string(&n.stats).map_err(json_err("encoding stats"))?;
        self.conn()
            .execute(
                "INSERT INTO nodes (name, kernel_release, agent_version, protocol_version, probes, stats, last_seen_unix_ns) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (name) DO UPDATE SET kernel_release = ?2, agent_version = ?3, \
                 protocol_version = ?4, probes = ?5, last_seen_unix_ns = ?7",
                params![n.name, n.kernel_release, n.agent_version, n.protocol_version, probes, stats, n.last_seen_unix_ns],
            )
            .map_err(backend("recording a node"))?;
        Ok(())
    }

    fn record_stats(&self, node: &str, stats: &AgentStats, at: i64) -> Result<(), StoreError> {
        let stats = serde_json::to_string(stats).map_err(json_err("encoding stats"))?;
        self.conn()
            .execute(
                "UPDATE nodes SET stats = ?2, last_seen_unix_ns = ?3 WHERE name = ?1",
                params![node, stats, at],
            )
            .map_err(backend("recording node stats"))?;
        Ok(())
    }

    fn list_nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT name, kernel_release, agent_version, protocol_version, probes, stats, last_seen_unix_ns \
                 FROM nodes ORDER BY name",
            )
            .map_err(backend("preparing the node query"))?;
        let rows = stmt
            .query_map([], |r| {
                let node = NodeInfo {
                    name: r.get(0)?,
                    kernel_release: r.get(1)?,
                    agent_version: r.get(2)?,
                    protocol_version: r.get(3)?,
                    probes: Vec::new(),
                    stats: AgentStats::default(),
                    last_seen_unix_ns: r.get(6)?,
                };
                Ok((node, r.get::<_, String>(4)?, r.get::<_, String>(5)?))
            })
            .map_err(backend("querying nodes"))?;
        rows.map(|row| {
            let (mut node, probes, stats) = row.map_err(backend("reading nodes"))?;
            node.probes =
                serde_json::from_str(&probes).map_err(|e| corrupt("node probes", &node.name, e))?;
            node.stats =
                serde_json::from_str(&stats).map_err(|e| corrupt("node stats", &node.name, e))?;
            Ok(node)
        })
        .collect()
    }
}
