//! Metric intervals: one interval of a node's in-kernel aggregates, validated — flows between
//! workloads and endpoints, syscalls, DNS, run-queue and block IO latency — stored once and
//! fanned out to the graph and detection (`service`).

pub mod ports;
pub mod service;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::event::WorkloadRef;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowRole {
    Client,
    Server,
}

/// An ip:port (port 0 when folded away).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            IpAddr::V4(ip) => write!(f, "{ip}:{}", self.port),
            IpAddr::V6(ip) => write!(f, "[{ip}]:{}", self.port),
        }
    }
}

/// Counts of TCP connections over one interval (see the proto's `FlowSample`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowCounts {
    pub connects: u64,
    pub established: u64,
    pub failed: u64,
    pub closed: u64,
    pub active: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub retransmits: u64,
    pub resets_sent: u64,
    pub resets_received: u64,
    pub srtt_sum_us: u64,
    pub srtt_samples: u64,
}

impl FlowCounts {
    pub fn add(&mut self, o: &Self) {
        self.connects += o.connects;
        self.established += o.established;
        self.failed += o.failed;
        self.closed += o.closed;
        self.active += o.active;
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.packets_sent += o.packets_sent;
        self.packets_received += o.packets_received;
        self.retransmits += o.retransmits;
        self.resets_sent += o.resets_sent;
        self.resets_received += o.resets_received;
        self.srtt_sum_us += o.srtt_sum_us;
        self.srtt_samples += o.srtt_samples;
    }

    /// Mean smoothed RTT in microseconds, if any segment carried one.
    pub fn mean_rtt_us(&self) -> Option<f64> {
        (self.srtt_samples > 0).then(|| self.srtt_sum_us as f64 / self.srtt_samples as f64)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowObservation {
    pub workload: WorkloadRef,
    pub role: FlowRole,
    pub local: Endpoint,
    pub remote: Endpoint,
    pub process: String,
    pub counts: FlowCounts,
}

/// A log2 histogram: `log2_buckets[i]` counts values in [2^i, 2^(i+1)) ns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    pub count: u64,
    pub sum_ns: u64,
    pub log2_buckets: Vec<u64>,
}

impl Histogram {
    /// Upper bound of the bucket holding quantile `q` (0..=1), in ns.
    pub fn quantile_ns(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let target = (q.clamp(0.0, 1.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.log2_buckets.iter().enumerate() {
            seen += n;
            if seen >= target {
                return Some(1u64 << (i + 1).min(63));
            }
        }
        self.log2_buckets
            .len()
            .checked_sub(1)
            .map(|i| 1u64 << (i + 1).min(63))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrnoCount {
    pub errno: u32,
    pub name: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyscallObservation {
    pub workload: WorkloadRef,
    pub nr: u32,
    pub name: String,
    pub errors: u64,
    pub errors_by_errno: Vec<ErrnoCount>,
    pub latency: Histogram,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyKind {
    RunQueue,
    BlockIo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyObservation {
    pub workload: WorkloadRef,
    pub kind: LatencyKind,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub device: String,
    pub latency: Histogram,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsObservation {
    pub workload: WorkloadRef,
    pub queries: u64,
    pub answers: u64,
    pub nxdomain: u64,
    pub servfail: u64,
    pub other_errors: u64,
    pub timeouts: u64,
    pub latency: Histogram,
}

/// One workload cgroup's resources, from its cgroup files: memory at the interval's end,
/// throttling and PSI stall time during it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceObservation {
    pub workload: WorkloadRef,
    pub memory_usage_bytes: u64,
    pub memory_working_set_bytes: u64,
    /// `None`: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_bytes: Option<u64>,
    /// PSI "some" stall during the interval, µs (`None` without PSI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_stall_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_stall_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_stall_us: Option<u64>,
    pub cpu_periods: u64,
    pub cpu_throttled_periods: u64,
    pub cpu_throttled_us: u64,
}

impl ResourceObservation {
    /// Working set over the limit, where there is one.
    pub fn memory_limit_ratio(&self) -> Option<f64> {
        let limit = self.memory_limit_bytes.filter(|&l| l > 0)?;
        Some(self.memory_working_set_bytes as f64 / limit as f64)
    }

    /// Share of CFS periods in which the quota ran out, where there were periods.
    pub fn throttled_ratio(&self) -> Option<f64> {
        (self.cpu_periods > 0).then(|| self.cpu_throttled_periods as f64 / self.cpu_periods as f64)
    }
}

impl DnsObservation {
    pub fn failures(&self) -> u64 {
        self.nxdomain + self.servfail + self.other_errors + self.timeouts
    }
}

/// The request-level protocol an edge speaks (parsed by the kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Http1,
    Redis,
    Postgres,
    /// HTTP/2 and gRPC: streams and failures, not timed.
    Http2,
    Unknown,
}

/// Failing replies with one code: the HTTP status ("503"), the Redis error prefix
/// ("WRONGPASS"), the SQLSTATE ("28P01"); empty when the reply did not say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCount {
    pub code: String,
    pub count: u64,
}

/// Requests between a workload and an endpoint over one interval, from one side (see the
/// proto's `RequestSample`); endpoints as in [`FlowObservation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestObservation {
    pub workload: WorkloadRef,
    pub role: FlowRole,
    pub local: Endpoint,
    pub remote: Endpoint,
    pub protocol: Protocol,
    pub requests: u64,
    pub responses: u64,
    pub errors: u64,
    pub client_errors: u64,
    pub timeouts: u64,
    pub closed_pending: u64,
    pub pipelined: u64,
    pub unparsed: u64,
    pub statuses: Vec<StatusCount>,
    pub latency: Histogram,
    /// Outstanding past the agent's timeout at the end of the interval (a level).
    #[serde(default)]
    pub stuck: u64,
    /// Read from OpenSSL's plaintext by the agent's uprobes (the connection is TLS).
    #[serde(default)]
    pub tls: bool,
    /// The first bytes of the first failing reply with each new code (evidence: what the
    /// server said, e.g. `-WRONGPASS invalid username-password pair`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_samples: Vec<ErrorSample>,
}

/// A failing reply's first bytes, as the agent sampled them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorSample {
    pub code: String,
    pub text: String,
}

impl RequestObservation {
    /// Requests that failed without a reply: timed out, or cut off by a close.
    pub fn unanswered(&self) -> u64 {
        self.timeouts + self.closed_pending
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapUsage {
    pub name: String,
    pub capacity: u64,
    pub entries: u64,
    pub inserted: u64,
    pub evicted: u64,
}

/// One agent interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricInterval {
    pub node: String,
    pub seq: u64,
    pub start_unix_ns: i64,
    pub end_unix_ns: i64,
    pub flows: Vec<FlowObservation>,
    pub syscalls: Vec<SyscallObservation>,
    pub latencies: Vec<LatencyObservation>,
    pub dns: Vec<DnsObservation>,
    pub maps: Vec<MapUsage>,
    /// Absent in intervals stored before request-level parsing.
    #[serde(default)]
    pub requests: Vec<RequestObservation>,
    /// Absent in intervals from agents before resource pressure.
    #[serde(default)]
    pub resources: Vec<ResourceObservation>,
    #[serde(default)]
    pub filesystems: Vec<FilesystemObservation>,
}

/// A node's data filesystem at the interval's end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesystemObservation {
    pub device: String,
    pub mount_point: String,
    pub fs_type: String,
    pub size_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
}

/// Which kind of stored sample a query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleKind {
    Flow,
    Syscall,
    Latency,
    Dns,
    Request,
    Resource,
}

impl SampleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Flow => "flow",
            Self::Syscall => "syscall",
            Self::Latency => "latency",
            Self::Dns => "dns",
            Self::Request => "request",
            Self::Resource => "resource",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Flow,
            Self::Syscall,
            Self::Latency,
            Self::Dns,
            Self::Request,
            Self::Resource,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One observation of an interval, as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Sample {
    Flow(FlowObservation),
    Syscall(SyscallObservation),
    Latency(LatencyObservation),
    Dns(DnsObservation),
    Request(RequestObservation),
    Resource(ResourceObservation),
}

impl Sample {
    pub fn kind(&self) -> SampleKind {
        match self {
            Self::Flow(_) => SampleKind::Flow,
            Self::Syscall(_) => SampleKind::Syscall,
            Self::Latency(_) => SampleKind::Latency,
            Self::Dns(_) => SampleKind::Dns,
            Self::Request(_) => SampleKind::Request,
            Self::Resource(_) => SampleKind::Resource,
        }
    }

    pub fn workload(&self) -> &WorkloadRef {
        match self {
            Self::Flow(o) => &o.workload,
            Self::Syscall(o) => &o.workload,
            Self::Latency(o) => &o.workload,
            Self::Dns(o) => &o.workload,
            Self::Request(o) => &o.workload,
            Self::Resource(o) => &o.workload,
        }
    }
}

/// A stored sample: which node and interval it came from, and the observation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredSample {
    pub node: String,
    pub interval_seq: u64,
    pub start_unix_ns: i64,
    pub end_unix_ns: i64,
    pub kind: SampleKind,
    pub workload_key: String,
    pub sample: Sample,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles() {
        let mut b = vec![0; 32];
        b[10] = 90; // ~1 µs
        b[20] = 10; // ~1 ms
        let h = Histogram {
            count: 100,
            sum_ns: 0,
            log2_buckets: b,
        };
        assert_eq!(h.quantile_ns(0.5), Some(2048));
        assert_eq!(h.quantile_ns(0.99), Some(1 << 21));
        assert_eq!(Histogram::default().quantile_ns(0.5), None);
    }
}
