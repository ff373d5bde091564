//! Per-entity feature vectors, one per detection window, computed with polars from the
//! agents' metric intervals.
//!
//! Entities are workloads and edges of the service graph (`client->server`). Each interval is
//! flattened into long rows (entity, window, feature, value) — plus log2-histogram rows for
//! latency quantiles — and polars does the windowing, the sums and the quantiles.

use std::collections::{BTreeMap, HashMap};

use polars::prelude::*;

use super::shed::ReplicaGroups;
use crate::{
    entity::{EntityId, Subject, SubjectClass},
    interval::{
        Endpoint, FlowRole, Histogram, LatencyKind, MetricInterval, RequestObservation,
        SyscallObservation,
    },
};

/// The features of a subject class, in vector order.
pub fn features_of(class: SubjectClass) -> &'static [Feature] {
    match class {
        SubjectClass::Workload => &WORKLOAD_FEATURES,
        SubjectClass::Edge => &EDGE_FEATURES,
    }
}

/// One feature: what it measures and when it is a symptom.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Feature {
    pub name: &'static str,
    /// Whether a rise of this feature is a symptom (errors, latency). Throughput features are
    /// context only: bursty load moves them both ways without anything being wrong.
    pub alerting: bool,
    /// The smallest rise that can matter, in the feature's unit (a baseline of zero errors
    /// must not turn one error into an incident).
    pub floor: f64,
    /// The smallest rise that can matter relative to the baseline (quantiles of log2
    /// histograms move in factors of two on their own).
    pub relative_floor: f64,
}

impl Feature {
    pub fn is_rate(&self) -> bool {
        self.name.ends_with("_per_s")
    }
}

const fn alerting(name: &'static str, floor: f64, relative_floor: f64) -> Feature {
    Feature {
        name,
        alerting: true,
        floor,
        relative_floor,
    }
}

const fn context(name: &'static str) -> Feature {
    Feature {
        name,
        alerting: false,
        floor: 0.0,
        relative_floor: 0.0,
    }
}

pub const WORKLOAD_DIM: usize = 19;
pub const EDGE_DIM: usize = 13;

pub const WORKLOAD_FEATURES: [Feature; WORKLOAD_DIM] = [
    context("syscalls_per_s"),
    alerting("syscall_errors_network_per_s", 1.0, 0.5),
    alerting("syscall_errors_permission_per_s", 0.5, 0.5),
    alerting("syscall_errors_space_per_s", 0.5, 0.5),
    // ENOENT and friends: every process start probes paths that do not exist, so this moves
    // with process churn. Context for the forest, not a symptom by itself.
    context("syscall_errors_other_per_s"),
    alerting("syscall_p99_us", 1_000.0, 1.5),
    // Scheduling delay: every process start and every burst on a busy node moves it (measured
    // in the lab: each fault's injection raised some workload's p99 from 2 to 34 ms), so by
    // itself it is context; what CPU saturation does to a service shows in its requests, and
    // the node's run-queue delay is what explains those (`explain`). Quota throttling has its
    // own rule.
    context("runqueue_p99_us"),
    alerting("block_io_p99_us", 5_000.0, 1.5),
    alerting("dns_failures_per_s", 0.5, 0.5),
    alerting("connect_failures_per_s", 0.5, 0.5),
    alerting("resets_received_per_s", 0.5, 0.5),
    alerting("retransmits_per_s", 1.0, 1.0),
    context("connects_out_per_s"),
    context("connects_in_per_s"),
    // Resource pressure, from the cgroup files. Context for the forest: the pressure rules
    // judge them against fixed limits (85 % of the memory limit, 25 % of periods throttled),
    // since a workload that always runs near its limit is not fine because it always does.
    context("memory_limit_ratio"),
    context("throttled_ratio"),
    context("memory_pressure_ratio"),
    context("cpu_pressure_ratio"),
    context("io_pressure_ratio"),
];

pub const EDGE_FEATURES: [Feature; EDGE_DIM] = [
    alerting("rtt_us", 2_000.0, 1.0),
    alerting("connect_failures_per_s", 0.5, 0.5),
    alerting("resets_per_s", 0.5, 0.5),
    alerting("retransmits_per_s", 1.0, 1.0),
    context("connects_per_s"),
    // Request-level, from the client's side of the edge (what its users feel). A ratio must
    // rise past 3× its baseline (a relative floor of 2) and by 5 points at least; requests
    // left unanswered (timed out, or cut off by a close) are a symptom from the first few;
    // p99 moves in factors of two with the log2 buckets, so it must at least double.
    context("requests_per_s"),
    alerting("error_ratio", 0.05, 2.0),
    alerting("client_error_ratio", 0.05, 2.0),
    alerting("unanswered_per_s", 0.1, 1.0),
    // Requests hanging past the agent's timeout right now, averaged over the window's
    // intervals: a frozen server's show in every window, not only when they give up.
    alerting("stuck_requests", 0.5, 1.0),
    alerting("request_p99_us", 10_000.0, 1.0),
    // A replica its caller moved away from after it failed (`shed`): from its fair share
    // of the caller's requests to that port (0) to under half of it.
    alerting("shed_ratio", 0.5, 0.0),
    // The run-queue delay of the client's node: on a busy node, scheduling delay inflates
    // loopback and veth RTT and request latency without anything wrong on the network.
    // What it explains is discounted (`explain`); never a symptom itself here.
    context("node_runqueue_p99_us"),
];

/// Syscalls that wait for something to happen — a peer, a timer, a child, a lock: their
/// latency measures idleness, not health. Receives are among them: a read on an idle
/// keep-alive connection blocks for as long as the client thinks. (A slow peer shows on the
/// connection's RTT instead; slow disks on block-IO latency.)
const WAITING_SYSCALLS: &[&str] = &[
    "read",
    "readv",
    "recvfrom",
    "recvmsg",
    "recvmmsg",
    "msgrcv",
    "semop",
    "semtimedop",
    "mq_timedreceive",
    "flock",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "poll",
    "ppoll",
    "select",
    "pselect6",
    "nanosleep",
    "clock_nanosleep",
    "futex",
    "futex_waitv",
    "wait4",
    "waitid",
    "accept",
    "accept4",
    "pause",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "io_getevents",
    "io_uring_enter",
];

/// Errors that are how non-blocking code works, not failures.
const ROUTINE_ERRNOS: &[&str] = &["EAGAIN", "EINTR", "EINPROGRESS", "EALREADY", "ERESTARTSYS"];

fn errno_class(name: &str) -> &'static str {
    match name {
        "ECONNREFUSED" | "ECONNRESET" | "ECONNABORTED" | "ETIMEDOUT" | "EHOSTUNREACH"
        | "ENETUNREACH" | "EPIPE" | "ENOTCONN" | "EADDRNOTAVAIL" => "syscall_errors_network_per_s",
        "EACCES" | "EPERM" => "syscall_errors_permission_per_s",
        "ENOSPC" | "EDQUOT" | "EFBIG" | "ENOMEM" => "syscall_errors_space_per_s",
        _ => "syscall_errors_other_per_s",
    }
}

/// The feature vector of one entity in one window (`NaN` where nothing was measured).
#[derive(Debug, Clone, PartialEq)]
pub struct WindowFeatures {
    /// Window index: `end_unix_ns / window_ns` of the intervals it holds.
    pub window: i64,
    pub entity: Subject,
    pub values: Vec<f64>,
}

#[derive(Debug, thiserror::Error)]
#[error("computing features with polars: {0}")]
pub struct FeatureError(#[from] PolarsError);

/// The subjects of one pass by the key their rows carry, to map polars' rows back to them.
#[derive(Default)]
struct Subjects(HashMap<String, Subject>);

impl Subjects {
    fn key(&mut self, subject: Subject) -> String {
        let key = subject.to_string();
        self.0.entry(key.clone()).or_insert(subject);
        key
    }
}

/// Long-format rows, built column by column.
#[derive(Default)]
struct Rows {
    entity: Vec<String>,
    class: Vec<&'static str>,
    window: Vec<i64>,
    feature: Vec<&'static str>,
    /// Summed per group, then divided by the summed weight, or by the window length when
    /// the weight is 0 (a rate).
    value: Vec<f64>,
    weight: Vec<f64>,
}

impl Rows {
    fn push(&mut self, e: &str, c: SubjectClass, w: i64, f: &'static str, value: f64, weight: f64) {
        self.entity.push(e.to_string());
        self.class.push(c.as_str());
        self.window.push(w);
        self.feature.push(f);
        self.value.push(value);
        self.weight.push(weight);
    }
}

/// Log2-histogram rows: one per non-empty bucket.
#[derive(Default)]
struct Buckets {
    entity: Vec<String>,
    class: Vec<&'static str>,
    window: Vec<i64>,
    feature: Vec<&'static str>,
    bucket: Vec<i32>,
    n: Vec<f64>,
}

impl Buckets {
    fn push(&mut self, e: &str, c: SubjectClass, w: i64, f: &'static str, h: &Histogram) {
        for (i, &n) in h.log2_buckets.iter().enumerate().filter(|(_, n)| **n > 0) {
            self.entity.push(e.to_string());
            self.class.push(c.as_str());
            self.window.push(w);
            self.feature.push(f);
            self.bucket.push(i32::try_from(i).unwrap_or(i32::MAX));
            self.n.push(n as f64);
        }
    }
}

fn flatten(
    intervals: &[MetricInterval],
    window_ns: i64,
    resolve: &dyn Fn(&str, &Endpoint) -> EntityId,
    groups: &mut ReplicaGroups,
) -> (Rows, Buckets, Subjects) {
    use SubjectClass::{Edge, Workload};
    let mut rows = Rows::default();
    let mut buckets = Buckets::default();
    let mut subjects = Subjects::default();
    let mut workload = |w: &EntityId| subjects.key(Subject::Workload(w.clone()));
    // Each (node, server endpoint) is resolved once per pass, not once per interval.
    let mut servers: HashMap<(&str, Endpoint), EntityId> = HashMap::new();
    let mut edges: Vec<Subject> = Vec::new();
    for i in intervals {
        let w = i.end_unix_ns.div_euclid(window_ns);
        let node_runqueue = node_runqueue(i);
        let first_edge = edges.len();
        for s in &i.syscalls {
            let key = &workload(&s.workload.key);
            rows.push(
                key,
                Workload,
                w,
                "syscalls_per_s",
                s.latency.count as f64,
                0.0,
            );
            syscall_errors(&mut rows, key, w, s);
            if !WAITING_SYSCALLS.contains(&s.name.as_str()) {
                buckets.push(key, Workload, w, "syscall_p99_us", &s.latency);
            }
        }
        for l in &i.latencies {
            let f = match l.kind {
                LatencyKind::RunQueue => "runqueue_p99_us",
                LatencyKind::BlockIo => "block_io_p99_us",
            };
            buckets.push(&workload(&l.workload.key), Workload, w, f, &l.latency);
        }
        for d in &i.dns {
            let f = d.failures() as f64;
            rows.push(
                &workload(&d.workload.key),
                Workload,
                w,
                "dns_failures_per_s",
                f,
                0.0,
            );
        }
        for f in &i.flows {
            let key = &workload(&f.workload.key);
            let c = &f.counts;
            match f.role {
                FlowRole::Client => {
                    let failed = c.failed as f64;
                    let resets = c.resets_received as f64;
                    let retrans = c.retransmits as f64;
                    rows.push(key, Workload, w, "connect_failures_per_s", failed, 0.0);
                    rows.push(key, Workload, w, "resets_received_per_s", resets, 0.0);
                    rows.push(key, Workload, w, "retransmits_per_s", retrans, 0.0);
                    rows.push(
                        key,
                        Workload,
                        w,
                        "connects_out_per_s",
                        c.connects as f64,
                        0.0,
                    );
                    let server = servers
                        .entry((i.node.as_str(), f.remote))
                        .or_insert_with(|| resolve(&i.node, &f.remote));
                    let subject = Subject::edge(f.workload.key.clone(), server.clone());
                    let edge = subject.to_string();
                    edges.push(subject);
                    rows.push(&edge, Edge, w, "connect_failures_per_s", failed, 0.0);
                    // Only the resets the server sent back: a reset the caller sends is its
                    // own decision (its client went away, it gave up), and a proxy does that
                    // whenever its downstream disconnects mid-request. A slow server shows
                    // in RTT; a refusing or crashing one in what the caller receives.
                    rows.push(&edge, Edge, w, "resets_per_s", resets, 0.0);
                    rows.push(&edge, Edge, w, "retransmits_per_s", retrans, 0.0);
                    rows.push(&edge, Edge, w, "connects_per_s", c.connects as f64, 0.0);
                    if c.srtt_samples > 0 {
                        let (sum, n) = (c.srtt_sum_us as f64, c.srtt_samples as f64);
                        rows.push(&edge, Edge, w, "rtt_us", sum, n);
                    }
                }
                FlowRole::Server => {
                    let n = c.connects.max(c.established) as f64;
                    rows.push(key, Workload, w, "connects_in_per_s", n, 0.0);
                    rows.push(
                        key,
                        Workload,
                        w,
                        "retransmits_per_s",
                        c.retransmits as f64,
                        0.0,
                    );
                }
            }
        }
        for r in &i.resources {
            let key = &workload(&r.workload.key);
            if let Some(x) = r.memory_limit_ratio() {
                rows.push(key, Workload, w, "memory_limit_ratio", x, 1.0);
            }
            if r.cpu_periods > 0 {
                let (t, p) = (r.cpu_throttled_periods as f64, r.cpu_periods as f64);
                rows.push(key, Workload, w, "throttled_ratio", t, p);
            }
            // Stall seconds per second: the share of time some task waited.
            for (f, stall) in [
                ("memory_pressure_ratio", r.memory_stall_us),
                ("cpu_pressure_ratio", r.cpu_stall_us),
                ("io_pressure_ratio", r.io_stall_us),
            ] {
                if let Some(us) = stall {
                    rows.push(key, Workload, w, f, us as f64 / 1e6, 0.0);
                }
            }
        }
        for r in i.requests.iter().filter(|r| r.role == FlowRole::Client) {
            let server = servers
                .entry((i.node.as_str(), r.remote))
                .or_insert_with(|| resolve(&i.node, &r.remote));
            let subject = Subject::edge(r.workload.key.clone(), server.clone());
            let edge = subject.to_string();
            edges.push(subject);
            request_rows(&mut rows, &mut buckets, &edge, w, r);
        }
        let mut server = |ep: &Endpoint| {
            servers
                .entry((i.node.as_str(), *ep))
                .or_insert_with(|| resolve(&i.node, ep))
                .clone()
        };
        for r in groups.interval(&i.node, w, &i.flows, &i.requests, &mut server) {
            rows.push(
                &r.edge.to_string(),
                Edge,
                w,
                "shed_ratio",
                r.value,
                r.weight,
            );
            edges.push(r.edge);
        }
        // Each edge of this interval gets its node's run-queue delay once.
        let mut seen = std::collections::HashSet::new();
        for e in &edges[first_edge..] {
            let key = e.to_string();
            if seen.insert(key.clone()) {
                buckets.push(&key, Edge, w, "node_runqueue_p99_us", &node_runqueue);
            }
        }
    }
    for e in edges {
        subjects.key(e);
    }
    (rows, buckets, subjects)
}

/// The run-queue latency of every workload of the interval's node, merged.
fn node_runqueue(i: &MetricInterval) -> Histogram {
    let mut node = Histogram::default();
    for l in i
        .latencies
        .iter()
        .filter(|l| l.kind == LatencyKind::RunQueue)
    {
        node.count += l.latency.count;
        node.sum_ns += l.latency.sum_ns;
        if node.log2_buckets.len() < l.latency.log2_buckets.len() {
            node.log2_buckets.resize(l.latency.log2_buckets.len(), 0);
        }
        for (n, b) in node.log2_buckets.iter_mut().zip(&l.latency.log2_buckets) {
            *n += b;
        }
    }
    node
}

/// One client's requests on an edge: ratios over the replies, unanswered ones as a rate.
fn request_rows(
    rows: &mut Rows,
    buckets: &mut Buckets,
    edge: &str,
    w: i64,
    r: &RequestObservation,
) {
    use SubjectClass::Edge;
    rows.push(edge, Edge, w, "requests_per_s", r.requests as f64, 0.0);
    rows.push(
        edge,
        Edge,
        w,
        "unanswered_per_s",
        r.unanswered() as f64,
        0.0,
    );
    rows.push(edge, Edge, w, "stuck_requests", r.stuck as f64, 1.0);
    if r.responses > 0 {
        let replies = r.responses as f64;
        rows.push(edge, Edge, w, "error_ratio", r.errors as f64, replies);
        rows.push(
            edge,
            Edge,
            w,
            "client_error_ratio",
            r.client_errors as f64,
            replies,
        );
    }
    if r.latency.count > 0 {
        buckets.push(edge, Edge, w, "request_p99_us", &r.latency);
    }
}

fn syscall_errors(rows: &mut Rows, key: &str, w: i64, s: &SyscallObservation) {
    if WAITING_SYSCALLS.contains(&s.name.as_str()) {
        return;
    }
    for e in &s.errors_by_errno {
        if !ROUTINE_ERRNOS.contains(&e.name.as_str()) {
            let f = errno_class(&e.name);
            rows.push(key, SubjectClass::Workload, w, f, e.count as f64, 0.0);
        }
    }
}

/// Feature vectors of every entity active in `intervals`, by window then entity.
/// `resolve(node, endpoint)` names the server behind a client connection (the graph's view).
/// `groups` remembers each caller's replicas across passes (`shed`).
pub fn window_features(
    intervals: &[MetricInterval],
    window_ns: i64,
    resolve: &dyn Fn(&str, &Endpoint) -> EntityId,
    groups: &mut ReplicaGroups,
) -> Result<Vec<WindowFeatures>, FeatureError> {
    let (rows, buckets, subjects) = flatten(intervals, window_ns, resolve, groups);
    let window_secs = window_ns as f64 / 1e9;
    let keys = || [col("entity"), col("class"), col("window"), col("feature")];

    let sums = df!(
        "entity" => rows.entity,
        "class" => rows.class,
        "window" => rows.window,
        "feature" => rows.feature,
        "value" => rows.value,
        "weight" => rows.weight,
    )?
    .lazy()
    .group_by(keys())
    .agg([col("value").sum(), col("weight").sum()])
    .select([
        col("entity"),
        col("class"),
        col("window"),
        col("feature"),
        when(col("weight").gt(lit(0.0)))
            .then(col("value") / col("weight"))
            .otherwise(col("value") / lit(window_secs))
            .alias("value"),
    ]);

    // p99 of merged log2 histograms: the first bucket whose running count reaches 99 %.
    let group = [col("entity"), col("class"), col("window"), col("feature")];
    let quantiles = df!(
        "entity" => buckets.entity,
        "class" => buckets.class,
        "window" => buckets.window,
        "feature" => buckets.feature,
        "bucket" => buckets.bucket,
        "n" => buckets.n,
    )?
    .lazy()
    .group_by([
        col("entity"),
        col("class"),
        col("window"),
        col("feature"),
        col("bucket"),
    ])
    .agg([col("n").sum()])
    .sort(["bucket"], SortMultipleOptions::default())
    .with_columns([
        col("n")
            .cum_sum(false)
            .over(group.clone())?
            .alias("running"),
        col("n").sum().over(group)?.alias("total"),
    ])
    .filter(col("running").gt_eq(col("total") * lit(0.99)))
    .group_by(keys())
    .agg([col("bucket").min()])
    .select([
        col("entity"),
        col("class"),
        col("window"),
        col("feature"),
        // Upper bound of the bucket, ns → µs.
        (lit(2.0f64).pow(col("bucket").cast(DataType::Float64) + lit(1.0)) / lit(1000.0))
            .alias("value"),
    ]);

    let all = concat([sums, quantiles], UnionArgs::default())?
        .sort(["window", "entity"], SortMultipleOptions::default())
        .collect()?;
    collect_vectors(&all, &subjects)
}

fn collect_vectors(
    df: &DataFrame,
    subjects: &Subjects,
) -> Result<Vec<WindowFeatures>, FeatureError> {
    let entity = df.column("entity")?.str()?;
    let class = df.column("class")?.str()?;
    let window = df.column("window")?.i64()?;
    let feature = df.column("feature")?.str()?;
    let value = df.column("value")?.f64()?;
    let mut out: BTreeMap<(i64, String), WindowFeatures> = BTreeMap::new();
    for i in 0..df.height() {
        let (Some(e), Some(c), Some(w), Some(f), Some(v)) = (
            entity.get(i),
            class.get(i).and_then(SubjectClass::parse),
            window.get(i),
            feature.get(i),
            value.get(i),
        ) else {
            continue;
        };
        let (Some(slot), Some(subject)) = (
            features_of(c).iter().position(|x| x.name == f),
            subjects.0.get(e),
        ) else {
            continue;
        };
        let vector = out
            .entry((w, e.to_string()))
            .or_insert_with(|| WindowFeatures {
                window: w,
                entity: subject.clone(),
                // No row for a rate means none happened; no row for a latency means it was
                // not measured.
                values: features_of(c)
                    .iter()
                    .map(|x| if x.is_rate() { 0.0 } else { f64::NAN })
                    .collect(),
            });
        vector.values[slot] = v;
    }
    Ok(out.into_values().collect())
}
