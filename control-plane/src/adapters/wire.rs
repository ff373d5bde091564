//! Converting wire messages (`vigil.agent.v1`) into validated domain values at the edge.

use vigil_proto::v1;

use crate::domain::{
    entity::EntityId,
    event::{EventKind, KernelEvent, ProcessRef, TaskRef, WorkloadKind, WorkloadRef},
    ingest::Batch,
    interval::{
        DnsObservation, Endpoint, ErrnoCount, ErrorSample, FilesystemObservation, FlowCounts,
        FlowObservation, FlowRole, Histogram, LatencyKind, LatencyObservation, MapUsage,
        MetricInterval, Protocol, RequestObservation, ResourceObservation, StatusCount,
        SyscallObservation,
    },
    node::{AgentStats, NodeInfo},
};

/// Why a message was refused. Each names the offending field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("node_name is empty")]
    EmptyNodeName,
    #[error("node_name {0:?} is longer than 253 characters or has control characters")]
    BadNodeName(String),
    #[error("events[{index}]: field `{field}` is missing")]
    MissingField { index: usize, field: &'static str },
    #[error("events[{index}]: seq must be at least 1")]
    ZeroSeq { index: usize },
    #[error("events[{index}]: seq {seq} does not follow {previous}: sequence numbers in a batch must increase")]
    SeqOrder {
        index: usize,
        seq: u64,
        previous: u64,
    },
    #[error("events[{index}]: workload.kind {value} is not a known WorkloadKind")]
    UnknownWorkloadKind { index: usize, value: i32 },
    #[error("events[{index}]: workload.key is empty")]
    EmptyWorkloadKey { index: usize },
    #[error("batch has {count} events; the limit is {max} (configure ingest.max_batch_events)")]
    TooManyEvents { count: usize, max: usize },
    #[error("{path}: {reason}")]
    Sample { path: String, reason: String },
    #[error("interval_seq must be at least 1")]
    ZeroIntervalSeq,
    #[error("batch has {count} samples; the limit is {max} (configure ingest.max_batch_events)")]
    TooManySamples { count: usize, max: usize },
}

fn node_name(name: &str) -> Result<String, WireError> {
    if name.is_empty() {
        return Err(WireError::EmptyNodeName);
    }
    if name.len() > 253 || name.chars().any(char::is_control) {
        return Err(WireError::BadNodeName(name.chars().take(64).collect()));
    }
    Ok(name.to_string())
}

pub fn node_info(hello: &v1::NodeHello, now_unix_ns: i64) -> Result<NodeInfo, WireError> {
    Ok(NodeInfo {
        name: node_name(&hello.node_name)?,
        kernel_release: hello.kernel_release.clone(),
        agent_version: hello.agent_version.clone(),
        protocol_version: hello.protocol_version,
        probes: hello
            .probes
            .iter()
            .map(|p| (p.name.clone(), p.error.clone()))
            .collect(),
        stats: AgentStats::default(),
        last_seen_unix_ns: now_unix_ns,
    })
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn workload(index: usize, w: &v1::Workload) -> Result<WorkloadRef, WireError> {
    workload_ref(w).map_err(|e| match e {
        BadWorkload::Kind(value) => WireError::UnknownWorkloadKind { index, value },
        BadWorkload::EmptyKey => WireError::EmptyWorkloadKey { index },
    })
}

enum BadWorkload {
    Kind(i32),
    EmptyKey,
}

impl std::fmt::Display for BadWorkload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Kind(v) => write!(f, "kind {v} is not a known WorkloadKind"),
            Self::EmptyKey => write!(f, "key is empty"),
        }
    }
}

fn workload_ref(w: &v1::Workload) -> Result<WorkloadRef, BadWorkload> {
    let kind = match v1::WorkloadKind::try_from(w.kind) {
        Ok(v1::WorkloadKind::Host) => WorkloadKind::Host,
        Ok(v1::WorkloadKind::KubernetesContainer) => WorkloadKind::KubernetesContainer,
        Ok(v1::WorkloadKind::Container) => WorkloadKind::Container,
        Ok(v1::WorkloadKind::SystemdUnit) => WorkloadKind::SystemdUnit,
        Ok(v1::WorkloadKind::Cgroup) => WorkloadKind::Cgroup,
        Ok(v1::WorkloadKind::Unspecified) | Err(_) => return Err(BadWorkload::Kind(w.kind)),
    };
    if w.key.is_empty() {
        return Err(BadWorkload::EmptyKey);
    }
    Ok(WorkloadRef {
        kind,
        key: EntityId::new(w.key.clone()),
        pod_uid: non_empty(&w.pod_uid),
        container_id: non_empty(&w.container_id),
        container_runtime: non_empty(&w.container_runtime),
        systemd_unit: non_empty(&w.systemd_unit),
        cgroup_path: w.cgroup_path.clone(),
        is_root_process: w.is_root_process,
    })
}

fn event(node: &str, index: usize, e: &v1::Event) -> Result<KernelEvent, WireError> {
    let missing = |field| WireError::MissingField { index, field };
    if e.seq == 0 {
        return Err(WireError::ZeroSeq { index });
    }
    let task = e.task.as_ref().ok_or_else(|| missing("task"))?;
    let kind = match e.kind.as_ref().ok_or_else(|| missing("kind"))? {
        v1::event::Kind::Exec(x) => EventKind::ProcessExec {
            filename: x.filename.clone(),
        },
        v1::event::Kind::Exit(x) => EventKind::ProcessExit {
            exit_code: x.exit_code,
            signal: x.signal,
            lifetime_ms: x.lifetime_ms,
            killed_by: x.killed_by.as_ref().map(process_ref),
        },
        v1::event::Kind::OomKill(x) => EventKind::OomKill {
            victim_pid: x.victim_pid,
            victim_comm: x.victim_comm.clone(),
            victim_uid: x.victim_uid,
            total_vm_kb: x.total_vm_kb,
            anon_rss_kb: x.anon_rss_kb,
            file_rss_kb: x.file_rss_kb,
            shmem_rss_kb: x.shmem_rss_kb,
            oom_score_adj: x.oom_score_adj,
        },
        v1::event::Kind::ExecFailure(x) => EventKind::ExecFailure {
            filename: x.filename.clone(),
            errno: x.errno,
            errno_name: x.errno_name.clone(),
            parent: x.parent.as_ref().map(process_ref),
        },
        v1::event::Kind::DnsFailure(x) => EventKind::DnsFailure {
            rcode: x.rcode,
            rcode_name: x.rcode_name.clone(),
            query_name: x.query_name.clone(),
            query_type: x.query_type,
            server: x.server.clone(),
        },
    };
    Ok(KernelEvent {
        node: node.to_string(),
        seq: e.seq,
        kernel_time_ns: e.kernel_time_ns,
        time_unix_ns: e.time_unix_ns,
        task: TaskRef {
            pid: task.pid,
            tgid: task.tgid,
            ppid: task.ppid,
            comm: task.comm.clone(),
            cgroup_id: task.cgroup_id,
            cgroup_path: task.cgroup_path.clone(),
        },
        workload: workload(
            index,
            e.workload.as_ref().ok_or_else(|| missing("workload"))?,
        )?,
        kind,
    })
}

/// Validates a whole batch; one bad event refuses the batch (it is all-or-nothing on disk too).
pub fn batch(b: &v1::EventBatch, max_events: usize) -> Result<Batch, WireError> {
    let node = node_name(&b.node_name)?;
    if b.events.len() > max_events {
        return Err(WireError::TooManyEvents {
            count: b.events.len(),
            max: max_events,
        });
    }
    let mut previous = 0;
    let mut events = Vec::with_capacity(b.events.len());
    for (index, e) in b.events.iter().enumerate() {
        if index > 0 && e.seq <= previous {
            return Err(WireError::SeqOrder {
                index,
                seq: e.seq,
                previous,
            });
        }
        previous = e.seq;
        events.push(event(&node, index, e)?);
    }
    Ok(Batch {
        node,
        events,
        stats: b.stats.as_ref().map(|s| AgentStats {
            kernel_dropped: s.kernel_dropped,
            buffer_dropped: s.buffer_dropped,
            events_read: s.events_read,
            malformed: s.malformed,
            metric_intervals_dropped: s.metric_intervals_dropped,
            shed: s.shed.clone(),
            degraded_cause: s.degraded_cause.clone(),
        }),
    })
}

fn process_ref(p: &v1::ProcessRef) -> ProcessRef {
    ProcessRef {
        pid: p.pid,
        comm: p.comm.clone(),
        workload: p
            .workload
            .as_ref()
            .filter(|w| !w.key.is_empty())
            .map(|w| EntityId::new(w.key.as_str())),
    }
}

/// Validates one metric interval; a bad sample refuses the whole interval, naming it.
pub fn metric_batch(b: &v1::MetricBatch, max_samples: usize) -> Result<MetricInterval, WireError> {
    let node = node_name(&b.node_name)?;
    if b.interval_seq == 0 {
        return Err(WireError::ZeroIntervalSeq);
    }
    let count = b.flows.len()
        + b.syscalls.len()
        + b.latencies.len()
        + b.dns.len()
        + b.requests.len()
        + b.resources.len()
        + b.filesystems.len();
    if count > max_samples {
        return Err(WireError::TooManySamples {
            count,
            max: max_samples,
        });
    }
    let bad = |path: String, reason: String| WireError::Sample { path, reason };
    let wl = |path: String, w: &Option<v1::Workload>| match w {
        None => Err(bad(path, "is missing".into())),
        Some(w) => workload_ref(w).map_err(|e| bad(path, e.to_string())),
    };
    let endpoint = |path: String, e: &Option<v1::Endpoint>| -> Result<Endpoint, WireError> {
        let e = e
            .as_ref()
            .ok_or_else(|| bad(path.clone(), "is missing".into()))?;
        let ip = e.ip.parse().map_err(|_| {
            bad(
                format!("{path}.ip"),
                format!("{:?} is not an IP address", e.ip),
            )
        })?;
        let port = u16::try_from(e.port)
            .map_err(|_| bad(format!("{path}.port"), format!("{} is not a port", e.port)))?;
        Ok(Endpoint { ip, port })
    };
    let hist = |h: &Option<v1::Histogram>| {
        h.as_ref().map_or_else(Histogram::default, |h| Histogram {
            count: h.count,
            sum_ns: h.sum_ns,
            log2_buckets: h.log2_buckets.clone(),
        })
    };
    let role = |path: String, r: i32| match v1::FlowRole::try_from(r) {
        Ok(v1::FlowRole::Client) => Ok(FlowRole::Client),
        Ok(v1::FlowRole::Server) => Ok(FlowRole::Server),
        _ => Err(bad(path, format!("{r} is not client or server"))),
    };
    let mut flows = Vec::with_capacity(b.flows.len());
    for (i, f) in b.flows.iter().enumerate() {
        let role = role(format!("flows[{i}].role"), f.role)?;
        flows.push(FlowObservation {
            workload: wl(format!("flows[{i}].workload"), &f.workload)?,
            role,
            local: endpoint(format!("flows[{i}].local"), &f.local)?,
            remote: endpoint(format!("flows[{i}].remote"), &f.remote)?,
            process: f.process.clone(),
            counts: FlowCounts {
                connects: f.connects,
                established: f.established,
                failed: f.failed,
                closed: f.closed,
                active: f.active,
                bytes_sent: f.bytes_sent,
                bytes_received: f.bytes_received,
                packets_sent: f.packets_sent,
                packets_received: f.packets_received,
                retransmits: f.retransmits,
                resets_sent: f.resets_sent,
                resets_received: f.resets_received,
                srtt_sum_us: f.srtt_sum_us,
                srtt_samples: f.srtt_samples,
            },
        });
    }
    let mut syscalls = Vec::with_capacity(b.syscalls.len());
    for (i, s) in b.syscalls.iter().enumerate() {
        syscalls.push(SyscallObservation {
            workload: wl(format!("syscalls[{i}].workload"), &s.workload)?,
            nr: s.nr,
            name: s.name.clone(),
            errors: s.errors,
            errors_by_errno: s
                .errors_by_errno
                .iter()
                .map(|e| ErrnoCount {
                    errno: e.errno,
                    name: e.name.clone(),
                    count: e.count,
                })
                .collect(),
            latency: hist(&s.latency),
        });
    }
    let mut latencies = Vec::with_capacity(b.latencies.len());
    for (i, l) in b.latencies.iter().enumerate() {
        let kind = match v1::LatencyKind::try_from(l.kind) {
            Ok(v1::LatencyKind::RunQueue) => LatencyKind::RunQueue,
            Ok(v1::LatencyKind::BlockIo) => LatencyKind::BlockIo,
            _ => {
                return Err(bad(
                    format!("latencies[{i}].kind"),
                    format!("{} is not a LatencyKind", l.kind),
                ))
            }
        };
        latencies.push(LatencyObservation {
            workload: wl(format!("latencies[{i}].workload"), &l.workload)?,
            kind,
            device: l.device.clone(),
            latency: hist(&l.latency),
        });
    }
    let mut dns = Vec::with_capacity(b.dns.len());
    for (i, d) in b.dns.iter().enumerate() {
        dns.push(DnsObservation {
            workload: wl(format!("dns[{i}].workload"), &d.workload)?,
            queries: d.queries,
            answers: d.answers,
            nxdomain: d.nxdomain,
            servfail: d.servfail,
            other_errors: d.other_errors,
            timeouts: d.timeouts,
            latency: hist(&d.latency),
        });
    }
    let mut requests = Vec::with_capacity(b.requests.len());
    for (i, r) in b.requests.iter().enumerate() {
        let role = role(format!("requests[{i}].role"), r.role)?;
        let protocol = match v1::Protocol::try_from(r.protocol) {
            Ok(v1::Protocol::Http1) => Protocol::Http1,
            Ok(v1::Protocol::Redis) => Protocol::Redis,
            Ok(v1::Protocol::Postgres) => Protocol::Postgres,
            Ok(v1::Protocol::Http2) => Protocol::Http2,
            // A newer agent's protocol this control plane does not know: kept, unnamed.
            _ => Protocol::Unknown,
        };
        requests.push(RequestObservation {
            workload: wl(format!("requests[{i}].workload"), &r.workload)?,
            role,
            local: endpoint(format!("requests[{i}].local"), &r.local)?,
            remote: endpoint(format!("requests[{i}].remote"), &r.remote)?,
            protocol,
            requests: r.requests,
            responses: r.responses,
            errors: r.errors,
            client_errors: r.client_errors,
            timeouts: r.timeouts,
            closed_pending: r.closed_pending,
            pipelined: r.pipelined,
            unparsed: r.unparsed,
            statuses: r
                .statuses
                .iter()
                .map(|c| StatusCount {
                    code: c.code.clone(),
                    count: c.count,
                })
                .collect(),
            latency: hist(&r.latency),
            stuck: r.stuck,
            tls: r.tls,
            error_samples: r
                .error_samples
                .iter()
                .map(|e| ErrorSample {
                    code: e.code.clone(),
                    text: e.text.clone(),
                })
                .collect(),
        });
    }
    let mut resources = Vec::with_capacity(b.resources.len());
    for (i, r) in b.resources.iter().enumerate() {
        if r.cpu_throttled_periods > r.cpu_periods {
            return Err(bad(
                format!("resources[{i}].cpu_throttled_periods"),
                format!(
                    "{} is more than the {} periods it is a share of",
                    r.cpu_throttled_periods, r.cpu_periods
                ),
            ));
        }
        resources.push(ResourceObservation {
            workload: wl(format!("resources[{i}].workload"), &r.workload)?,
            memory_usage_bytes: r.memory_usage_bytes,
            memory_working_set_bytes: r.memory_working_set_bytes,
            memory_limit_bytes: (r.memory_limit_bytes > 0).then_some(r.memory_limit_bytes),
            memory_stall_us: r.memory_stall_us,
            cpu_stall_us: r.cpu_stall_us,
            io_stall_us: r.io_stall_us,
            cpu_periods: r.cpu_periods,
            cpu_throttled_periods: r.cpu_throttled_periods,
            cpu_throttled_us: r.cpu_throttled_us,
        });
    }
    Ok(MetricInterval {
        node,
        seq: b.interval_seq,
        start_unix_ns: b.start_unix_ns,
        end_unix_ns: b.end_unix_ns,
        flows,
        syscalls,
        latencies,
        dns,
        maps: b
            .maps
            .iter()
            .map(|m| MapUsage {
                name: m.name.clone(),
                capacity: m.capacity,
                entries: m.entries,
                inserted: m.inserted,
                evicted: m.evicted,
            })
            .collect(),
        requests,
        resources,
        filesystems: b
            .filesystems
            .iter()
            .map(|f| FilesystemObservation {
                device: f.device.clone(),
                mount_point: f.mount_point.clone(),
                fs_type: f.fs_type.clone(),
                size_bytes: f.size_bytes,
                used_bytes: f.used_bytes.min(f.size_bytes),
                available_bytes: f.available_bytes.min(f.size_bytes),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good_event(seq: u64) -> v1::Event {
        v1::Event {
            seq,
            kernel_time_ns: 1,
            time_unix_ns: 2,
            task: Some(v1::Task {
                pid: 5,
                tgid: 5,
                comm: "x".into(),
                ..Default::default()
            }),
            workload: Some(v1::Workload {
                kind: v1::WorkloadKind::Host as i32,
                key: "host/x".into(),
                ..Default::default()
            }),
            kind: Some(v1::event::Kind::Exit(v1::ProcessExit {
                exit_code: Some(3),
                signal: None,
                lifetime_ms: Some(1500),
                killed_by: None,
            })),
        }
    }

    fn batch_of(events: Vec<v1::Event>) -> v1::EventBatch {
        v1::EventBatch {
            node_name: "n".into(),
            events,
            stats: None,
        }
    }

    #[test]
    fn accepts_a_good_batch() {
        let b = batch(&batch_of(vec![good_event(1), good_event(2)]), 10).expect("valid");
        assert_eq!(b.events.len(), 2);
        assert_eq!(
            b.events[1].kind,
            EventKind::ProcessExit {
                exit_code: Some(3),
                signal: None,
                lifetime_ms: Some(1500),
                killed_by: None,
            }
        );
    }

    #[test]
    fn each_defect_is_named() {
        let mut no_kind = good_event(1);
        no_kind.kind = None;
        let mut bad_kind = good_event(1);
        if let Some(w) = bad_kind.workload.as_mut() {
            w.kind = 42;
        }
        let cases = [
            (batch_of(vec![no_kind]), "field `kind` is missing"),
            (batch_of(vec![bad_kind]), "workload.kind 42"),
            (batch_of(vec![good_event(0)]), "seq must be at least 1"),
            (
                batch_of(vec![good_event(2), good_event(2)]),
                "must increase",
            ),
            (batch_of(vec![good_event(1); 11]), "limit is 10"),
            (
                v1::EventBatch {
                    node_name: String::new(),
                    ..batch_of(vec![])
                },
                "node_name is empty",
            ),
        ];
        for (b, expected) in cases {
            let err = batch(&b, 10).expect_err(expected).to_string();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
        }
    }
}
