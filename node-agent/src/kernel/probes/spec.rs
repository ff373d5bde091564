//! What a probe is: the group it belongs to, the program and where it attaches, and the
//! config switch that turns its group off.

use crate::config::TelemetryConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeGroup {
    Process,
    Network,
    Syscalls,
    RunQueue,
    BlockIo,
    /// HTTP/1.x, Redis and PostgreSQL requests parsed from TCP payloads (cgroup_skb).
    Requests,
    /// The same requests over TLS: uprobes on OpenSSL, and the read/write syscalls that name
    /// each connection's socket.
    Tls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    Tracepoint {
        category: &'static str,
        name: &'static str,
    },
    /// A raw tracepoint: the tracepoint's arguments, no trace record (cheaper). It attaches by
    /// `name`; `category` is where tracefs lists it, which must exist all the same.
    RawTracepoint {
        category: &'static str,
        name: &'static str,
    },
    /// On the cgroup v2 root, so every socket of the node is seen.
    CgroupSkb { egress: bool },
    /// On `symbol` of the configured OpenSSL library (`telemetry.tls_library`), in every
    /// process that maps it: at its entry, or at its return (`ret`).
    Uprobe { symbol: &'static str, ret: bool },
}

impl Attach {
    /// The tracefs event whose `format` file the group reads: every (raw) tracepoint it
    /// attaches to.
    pub fn tracepoint(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::Tracepoint { category, name } | Self::RawTracepoint { category, name } => {
                Some((category, name))
            }
            Self::CgroupSkb { .. } | Self::Uprobe { .. } => None,
        }
    }
}

/// One program of the object and where it attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSpec {
    pub program: &'static str,
    pub attach: Attach,
}

impl ProbeSpec {
    /// The probe's name in logs, node status and metrics (the control plane shows it).
    pub fn name(&self) -> String {
        match self.attach {
            Attach::Tracepoint { category, name } => format!("{category}:{name}"),
            Attach::RawTracepoint { name, .. } => format!("raw_tp:{name}"),
            Attach::CgroupSkb { egress: false } => "cgroup_skb/ingress".into(),
            Attach::CgroupSkb { egress: true } => "cgroup_skb/egress".into(),
            Attach::Uprobe { symbol, ret: false } => format!("uprobe:{symbol}"),
            Attach::Uprobe { symbol, ret: true } => format!("uretprobe:{symbol}"),
        }
    }
}

/// The config switch of a group that can be turned off.
#[derive(Debug, Clone, Copy)]
pub struct Switch {
    /// Its name in the config file.
    pub key: &'static str,
    pub enabled: fn(&TelemetryConfig) -> bool,
}
