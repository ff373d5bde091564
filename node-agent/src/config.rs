//! Agent configuration: a TOML file, every field defaulted, unknown fields rejected.

use std::{path::Path, time::Duration};

use serde::Deserialize;

pub use vigil_config_file::{ConfigError, Validate};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    #[default]
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Defaults to `$NODE_NAME` (the DaemonSet's downward API) or the host name.
    pub node_name: Option<String>,
    pub control_plane: ControlPlaneConfig,
    pub batch: BatchConfig,
    pub buffer: BufferConfig,
    pub reconnect: ReconnectConfig,
    pub kernel: KernelConfig,
    pub telemetry: TelemetryConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub budget: crate::governor::BudgetConfig,
    /// Where the event sequence is written down across restarts, so what a killed agent
    /// lost is counted by the control plane (tmpfs: a reboot needs no accounting). Empty:
    /// not kept.
    #[serde(default = "default_state_file")]
    pub state_file: std::path::PathBuf,
}

fn default_state_file() -> std::path::PathBuf {
    "/run/vigil-agent/sequence.json".into()
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            node_name: None,
            control_plane: ControlPlaneConfig::default(),
            batch: BatchConfig::default(),
            buffer: BufferConfig::default(),
            reconnect: ReconnectConfig::default(),
            kernel: KernelConfig::default(),
            telemetry: TelemetryConfig::default(),
            metrics: MetricsConfig::default(),
            log: LogConfig::default(),
            budget: crate::governor::BudgetConfig::default(),
            state_file: default_state_file(),
        }
    }
}

/// The agent's own Prometheus endpoint (`GET /metrics`): its event counters, losses, probe
/// health.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub listen: std::net::SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: std::net::SocketAddr::from(([0, 0, 0, 0], 9470)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlPlaneConfig {
    pub endpoint: String,
    pub compression: Compression,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    /// Mutual TLS with the control plane (an `https://` endpoint needs it).
    pub tls: Option<ClientTls>,
}

/// The files of this agent's mutual TLS. They are read on every connection and watched while
/// connected, so a rotated certificate is picked up without a restart.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// The CA the control plane's certificate chains to.
    pub ca_file: std::path::PathBuf,
    /// This agent's certificate: it must name this node (common name or DNS name).
    pub cert_file: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
    /// The name to verify the control plane's certificate against; the endpoint's host
    /// when empty.
    #[serde(default)]
    pub server_name: String,
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        Self {
            endpoint: "http://127.0.0.1:7070".into(),
            compression: Compression::default(),
            connect_timeout_ms: 2_000,
            request_timeout_ms: 10_000,
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most events in one gRPC request.
    pub max_events: usize,
    /// How long the first event of a batch waits for company before the batch is sent.
    pub flush_interval_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_events: 512,
            flush_interval_ms: 50,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    /// Events held while the control plane is unreachable; beyond it the oldest are dropped
    /// and counted.
    pub max_events: usize,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            max_events: 100_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconnectConfig {
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        Self {
            initial_backoff_ms: 100,
            max_backoff_ms: 5_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KernelConfig {
    /// Ring buffer size in bytes: a power of two and a multiple of the page size.
    pub ring_buffer_bytes: u32,
    pub tracefs: String,
    pub bpffs: String,
    pub cgroupfs: String,
    pub proc: String,
    /// Fail start-up when any probe cannot attach (instead of running degraded).
    pub require_all_probes: bool,
}

impl Default for KernelConfig {
    fn default() -> Self {
        Self {
            ring_buffer_bytes: 1 << 20,
            tracefs: "/sys/kernel/tracing".into(),
            bpffs: "/sys/fs/bpf".into(),
            cgroupfs: "/sys/fs/cgroup".into(),
            proc: "/proc".into(),
            require_all_probes: false,
        }
    }
}

/// In-kernel aggregates (flows, syscalls, DNS, run-queue and block IO latency), drained every
/// interval and shipped as metric batches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// How often the kernel maps are drained into one metric batch.
    pub interval_ms: u64,
    /// TCP flows (sock/tcp tracepoints + cgroup_skb on the cgroup2 root) and DNS.
    pub network: bool,
    /// Per-syscall counts, errors and latency (`raw_syscalls`).
    pub syscalls: bool,
    /// Time one syscall in this many, drawn at random (a power of two, 1 to 1024; 1 times
    /// every call). Failures are always counted; the latency histogram is scaled back up, so
    /// counts are estimates and percentiles come from the sample. Each untimed call skips
    /// the clock, the cgroup lookup and the hash-map update in the kernel.
    pub syscall_latency_sample_every: u32,
    /// Run-queue latency (`sched_wakeup`/`sched_switch`).
    pub runqueue: bool,
    /// Block request latency (`block_rq_issue`/`block_rq_complete`).
    pub block_io: bool,
    /// Memory, throttling and PSI of each active workload cgroup, from its cgroup files,
    /// and the usage of the node's data filesystems.
    pub resources: bool,
    /// HTTP/1.x, Redis and PostgreSQL requests parsed from TCP payloads (needs `network`).
    pub requests: bool,
    /// The same requests over TLS, read from OpenSSL's plaintext by uprobes on
    /// `tls_library` (needs `requests`).
    pub tls: bool,
    /// The OpenSSL library the TLS uprobes attach to: a path, or a name without `.so` that
    /// the dynamic linker's cache resolves (`libssl` finds the first `libssl.so*` that
    /// `ldconfig -p` lists). Every process that maps this file is seen; one with its own copy
    /// (a container image's) is not.
    pub tls_library: String,
    /// Ship the first bytes of the first failing reply of each new (edge, code), e.g.
    /// `-WRONGPASS invalid username-password pair`: never a request's bytes; off keeps
    /// only the counts.
    pub error_samples: bool,
    /// A DNS query without an answer after this long counts as a timeout.
    pub dns_timeout_ms: u64,
    /// An HTTP, Redis or PostgreSQL request without a reply after this long counts as timed
    /// out (once; a late reply is still timed).
    pub request_timeout_ms: u64,
    /// An aggregate unchanged for this many intervals is removed from its kernel map.
    pub idle_intervals: u32,
    /// Metric batches held while the control plane is unreachable; beyond it the oldest are
    /// dropped and counted.
    pub max_buffered_intervals: usize,
    pub maps: MapSizes,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            interval_ms: 1_000,
            network: true,
            syscalls: true,
            syscall_latency_sample_every: 8,
            runqueue: true,
            block_io: true,
            resources: true,
            requests: true,
            tls: true,
            tls_library: "libssl".into(),
            error_samples: true,
            dns_timeout_ms: 5_000,
            request_timeout_ms: 5_000,
            idle_intervals: 30,
            max_buffered_intervals: 600,
            maps: MapSizes::default(),
        }
    }
}

/// Entries of each LRU map: what bounds cardinality. Evictions are counted and reported.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MapSizes {
    pub flows: u32,
    pub syscalls: u32,
    pub syscall_errors: u32,
    pub dns: u32,
    pub dns_pending: u32,
    pub runqueue: u32,
    pub block_io: u32,
    pub requests: u32,
    pub request_errors: u32,
    pub request_connections: u32,
    pub tls_connections: u32,
}

impl Default for MapSizes {
    fn default() -> Self {
        Self {
            flows: 65_536,
            syscalls: 8_192,
            syscall_errors: 4_096,
            dns: 1_024,
            dns_pending: 4_096,
            runqueue: 1_024,
            block_io: 1_024,
            requests: 4_096,
            request_errors: 4_096,
            request_connections: 65_536,
            tls_connections: 16_384,
        }
    }
}

impl MapSizes {
    /// (kernel map name, config key, size).
    pub fn entries(&self) -> [(&'static str, &'static str, u32); 11] {
        [
            ("FLOWS", "telemetry.maps.flows", self.flows),
            ("SYSCALLS", "telemetry.maps.syscalls", self.syscalls),
            (
                "SYSCALL_ERRORS",
                "telemetry.maps.syscall_errors",
                self.syscall_errors,
            ),
            ("DNS", "telemetry.maps.dns", self.dns),
            (
                "DNS_PENDING",
                "telemetry.maps.dns_pending",
                self.dns_pending,
            ),
            ("RUNQ", "telemetry.maps.runqueue", self.runqueue),
            ("BLOCK_IO", "telemetry.maps.block_io", self.block_io),
            ("L7_STATS", "telemetry.maps.requests", self.requests),
            (
                "L7_ERRORS",
                "telemetry.maps.request_errors",
                self.request_errors,
            ),
            (
                "L7_CONNS",
                "telemetry.maps.request_connections",
                self.request_connections,
            ),
            (
                "TLS_CONNS",
                "telemetry.maps.tls_connections",
                self.tls_connections,
            ),
        ]
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
}

impl AgentConfig {
    /// Reads and validates `path`.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        vigil_config_file::from_file(path)
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        vigil_config_file::from_toml(text, origin)
    }

    /// Checks values serde cannot; `origin` names where they came from in errors.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| ConfigError::invalid(origin, field, reason);
        let endpoint = &self.control_plane.endpoint;
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(invalid(
                "control_plane.endpoint",
                &format!("{endpoint:?} must be a URL like http://host:port"),
            ));
        }
        tonic::transport::Endpoint::from_shared(endpoint.clone())
            .map_err(|e| invalid("control_plane.endpoint", &format!("{endpoint:?}: {e}")))?;
        match (endpoint.starts_with("https://"), &self.control_plane.tls) {
            (true, None) => {
                return Err(invalid(
                    "control_plane.tls",
                    &format!("{endpoint:?} is https: set [control_plane.tls] ca_file, cert_file and key_file (`vigil certs issue --role agent NODE` mints development ones)"),
                ))
            }
            (false, Some(_)) => {
                return Err(invalid(
                    "control_plane.endpoint",
                    &format!("{endpoint:?} is plaintext but [control_plane.tls] is set: use https://"),
                ))
            }
            _ => {}
        }
        if self.batch.max_events == 0 {
            return Err(invalid("batch.max_events", "must be at least 1"));
        }
        if self.buffer.max_events < self.batch.max_events {
            return Err(invalid(
                "buffer.max_events",
                "must be at least batch.max_events so a full batch fits",
            ));
        }
        if self.reconnect.initial_backoff_ms == 0
            || self.reconnect.initial_backoff_ms > self.reconnect.max_backoff_ms
        {
            return Err(invalid(
                "reconnect.initial_backoff_ms",
                "must be positive and not above reconnect.max_backoff_ms",
            ));
        }
        let ring = self.kernel.ring_buffer_bytes;
        if !ring.is_power_of_two() || ring < 4096 {
            return Err(invalid(
                "kernel.ring_buffer_bytes",
                &format!("{ring} must be a power of two of at least 4096 (the page size)"),
            ));
        }
        let t = &self.telemetry;
        if t.interval_ms < 100 {
            return Err(invalid(
                "telemetry.interval_ms",
                &format!("{} is too short: at least 100 ms", t.interval_ms),
            ));
        }
        let every = t.syscall_latency_sample_every;
        if !every.is_power_of_two() || every > 1024 {
            return Err(invalid(
                "telemetry.syscall_latency_sample_every",
                &format!("{every} must be a power of two from 1 (every call) to 1024"),
            ));
        }
        if t.dns_timeout_ms == 0 {
            return Err(invalid("telemetry.dns_timeout_ms", "must be positive"));
        }
        if t.request_timeout_ms == 0 {
            return Err(invalid("telemetry.request_timeout_ms", "must be positive"));
        }
        if t.max_buffered_intervals == 0 || t.idle_intervals == 0 {
            return Err(invalid(
                "telemetry.max_buffered_intervals",
                "max_buffered_intervals and idle_intervals must be at least 1",
            ));
        }
        for (_, field, size) in t.maps.entries() {
            if size == 0 || size > 1 << 24 {
                return Err(invalid(
                    field,
                    &format!("{size} entries: must be between 1 and 16777216"),
                ));
            }
        }
        if let Some(name) = &self.node_name {
            if name.trim().is_empty() {
                return Err(invalid("node_name", "must not be empty"));
            }
        }
        self.budget.validate(origin)
    }

    /// The node name to report: config, then `$NODE_NAME`, then the host name.
    pub fn resolved_node_name(&self) -> String {
        self.node_name
            .clone()
            .or_else(|| std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()))
            .or_else(|| {
                nix::unistd::gethostname()
                    .ok()
                    .and_then(|h| h.into_string().ok())
            })
            .unwrap_or_else(|| "unknown-node".into())
    }

    pub fn telemetry_interval(&self) -> Duration {
        Duration::from_millis(self.telemetry.interval_ms)
    }

    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.batch.flush_interval_ms)
    }
}

impl Validate for AgentConfig {
    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        AgentConfig::validate(self, origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use vigil_config_file::error_chain as chain;

    #[test]
    fn defaults_are_valid() {
        AgentConfig::default()
            .validate("defaults")
            .expect("defaults validate");
    }

    #[test]
    fn unknown_field_is_named() {
        let err = AgentConfig::from_toml("[batch]\nmax_event = 3\n", "agent.toml")
            .expect_err("typo must be rejected");
        let msg = chain(&err);
        assert!(
            msg.contains("agent.toml") && msg.contains("max_event"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_type_is_named() {
        let err = AgentConfig::from_toml("[buffer]\nmax_events = \"many\"\n", "a.toml")
            .expect_err("string for integer must be rejected");
        assert!(chain(&err).contains("max_events"), "{err}");
    }

    #[test]
    fn ring_buffer_must_be_power_of_two() {
        let err = AgentConfig::from_toml("[kernel]\nring_buffer_bytes = 5000\n", "a.toml")
            .expect_err("5000 is not a power of two");
        assert!(
            err.to_string().contains("kernel.ring_buffer_bytes"),
            "{err}"
        );
    }

    #[test]
    fn map_size_zero_is_named() {
        let err = AgentConfig::from_toml("[telemetry.maps]\nflows = 0\n", "a.toml")
            .expect_err("an empty map cannot hold flows");
        assert!(chain(&err).contains("telemetry.maps.flows"), "{err}");
    }

    #[test]
    fn request_settings_are_checked_and_named() {
        let err = AgentConfig::from_toml("[telemetry]\nrequest_timeout_ms = 0\n", "a.toml")
            .expect_err("a zero timeout would time out every request");
        assert!(
            chain(&err).contains("telemetry.request_timeout_ms"),
            "{err}"
        );
        let err = AgentConfig::from_toml("[telemetry.maps]\nrequest_connections = 0\n", "a.toml")
            .expect_err("an empty map cannot hold connections");
        assert!(
            chain(&err).contains("telemetry.maps.request_connections"),
            "{err}"
        );
        let off = AgentConfig::from_toml("[telemetry]\nrequests = false\n", "a.toml")
            .expect("the switch parses");
        assert!(!off.telemetry.requests);
    }

    #[test]
    fn endpoint_must_be_url() {
        let err = AgentConfig::from_toml("[control_plane]\nendpoint = \"localhost:7070\"\n", "a")
            .expect_err("missing scheme");
        assert!(chain(&err).contains("control_plane.endpoint"), "{err}");
    }
}
