//! Node agents as the control plane knows them: how each introduced itself and what it last
//! reported losing.

pub mod ports;

use serde::{Deserialize, Serialize};

/// A node as it introduced itself, plus the loss counters it last reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub kernel_release: String,
    pub agent_version: String,
    pub protocol_version: u32,
    /// Probe name → error (empty when attached).
    pub probes: Vec<(String, String)>,
    pub stats: AgentStats,
    pub last_seen_unix_ns: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStats {
    pub kernel_dropped: u64,
    pub buffer_dropped: u64,
    pub events_read: u64,
    pub malformed: u64,
    #[serde(default)]
    pub metric_intervals_dropped: u64,
    /// Telemetry the agent turned off to stay within its budget (empty: full telemetry).
    #[serde(default)]
    pub shed: Vec<String>,
    /// The budget it exceeded, while it sheds.
    #[serde(default)]
    pub degraded_cause: String,
}

impl AgentStats {
    /// Whether the agent sheds telemetry: its evidence is partial, and weaker for it.
    pub fn is_degraded(&self) -> bool {
        !self.shed.is_empty()
    }

    /// Events lost, by where: the labels every exporter reports them under.
    pub fn losses(&self) -> [(&'static str, u64); 4] {
        [
            ("kernel", self.kernel_dropped),
            ("buffer", self.buffer_dropped),
            ("malformed", self.malformed),
            ("metric_interval", self.metric_intervals_dropped),
        ]
    }
}
