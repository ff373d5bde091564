//! A synthetic fleet of metric intervals and kernel events, for the detection benchmark, unit
//! and pipeline tests:
//! `chains` independent chains `web<i> → app<i> → {redis<i>, postgres<i>}` on one node, with
//! deterministic jitter, and an optional slow Redis in one chain.

use crate::{
    event::{EventKind, KernelEvent, TaskRef, WorkloadKind, WorkloadRef},
    interval::{
        Endpoint, FlowCounts, FlowObservation, FlowRole, Histogram, MetricInterval,
        SyscallObservation,
    },
};

pub const SEC: i64 = 1_000_000_000;

/// A fault: Redis of chain `chain` answers with `rtt_us`, and its app and web wait for it.
#[derive(Debug, Clone, Copy)]
pub struct SlowRedis {
    pub chain: usize,
    pub rtt_us: u64,
}

#[derive(Debug, Clone)]
pub struct Fleet {
    pub chains: usize,
}

pub fn workload(key: &str) -> WorkloadRef {
    WorkloadRef {
        kind: WorkloadKind::Cgroup,
        key: key.into(),
        pod_uid: None,
        container_id: None,
        container_runtime: None,
        systemd_unit: None,
        cgroup_path: format!("/{key}"),
        is_root_process: false,
    }
}

/// A kernel event from node `n1` by the root process of `workload` (pid 9, "app").
/// An interval with nothing in it, ending at `end_unix_ns`.
pub fn empty_interval(node: &str, seq: u64, end_unix_ns: i64) -> MetricInterval {
    MetricInterval {
        node: node.into(),
        seq,
        start_unix_ns: end_unix_ns - SEC,
        end_unix_ns,
        flows: vec![],
        syscalls: vec![],
        latencies: vec![],
        dns: vec![],
        maps: vec![],
        requests: vec![],
        resources: vec![],
        filesystems: vec![],
    }
}

pub fn kernel_event(
    seq: u64,
    time_unix_ns: i64,
    workload_key: &str,
    kind: EventKind,
) -> KernelEvent {
    let w = WorkloadRef {
        is_root_process: true,
        ..workload(workload_key)
    };
    KernelEvent {
        node: "n1".into(),
        seq,
        kernel_time_ns: 0,
        time_unix_ns,
        task: TaskRef {
            pid: 9,
            tgid: 9,
            ppid: 1,
            comm: "app".into(),
            cgroup_id: 1,
            cgroup_path: w.cgroup_path.clone(),
        },
        workload: w,
        kind,
    }
}

/// The OOM killer killing the root process of `workload`.
pub fn oom_kill(seq: u64, time_unix_ns: i64, workload_key: &str) -> KernelEvent {
    kernel_event(
        seq,
        time_unix_ns,
        workload_key,
        EventKind::OomKill {
            victim_pid: 9,
            victim_comm: "app".into(),
            victim_uid: 0,
            total_vm_kb: 1,
            anon_rss_kb: 1,
            file_rss_kb: 0,
            shmem_rss_kb: 0,
            oom_score_adj: 0,
        },
    )
}

/// Both views of one call edge.
fn edge(
    client: &str,
    client_ip: [u8; 4],
    server: &str,
    server_ep: Endpoint,
    rtt_us: u64,
    n: u64,
) -> [FlowObservation; 2] {
    let client_ep = Endpoint {
        ip: client_ip.into(),
        port: 0,
    };
    let counts = FlowCounts {
        connects: n,
        established: n,
        ..Default::default()
    };
    [
        FlowObservation {
            workload: workload(client),
            role: FlowRole::Client,
            local: client_ep,
            remote: server_ep,
            process: client.into(),
            counts: FlowCounts {
                srtt_sum_us: rtt_us * n,
                srtt_samples: n,
                ..counts
            },
        },
        FlowObservation {
            workload: workload(server),
            role: FlowRole::Server,
            local: server_ep,
            remote: client_ep,
            process: server.into(),
            counts,
        },
    ]
}

/// `n` `write` calls of `key` taking about `us` microseconds each.
fn writes(key: &str, us: u64, n: u64) -> SyscallObservation {
    let bucket = (us * 1000).max(1).ilog2() as usize;
    let mut log2_buckets = vec![0; 40];
    log2_buckets[bucket.min(39)] = n;
    SyscallObservation {
        workload: workload(key),
        nr: 1,
        name: "write".into(),
        errors: 0,
        errors_by_errno: vec![],
        latency: Histogram {
            count: n,
            sum_ns: us * 1000 * n,
            log2_buckets,
        },
    }
}

impl Fleet {
    pub fn new(chains: usize) -> Self {
        Self { chains }
    }

    /// The workload keys of chain `i`: web, app, redis, postgres.
    pub fn names(i: usize) -> [String; 4] {
        ["web", "app", "redis", "postgres"].map(|s| format!("{s}{i}"))
    }

    fn ip(i: usize, host: u8) -> [u8; 4] {
        [10, (i / 250) as u8, (i % 250) as u8, host]
    }

    /// One interval of `seconds` ending at `end`.
    pub fn interval(&self, seq: u64, end: i64, fault: Option<SlowRedis>) -> MetricInterval {
        let mut flows = Vec::with_capacity(self.chains * 6);
        let mut syscalls = Vec::with_capacity(self.chains * 2);
        for i in 0..self.chains {
            let j = (seq.wrapping_mul(7919).wrapping_add(i as u64 * 31)) % 11;
            let slow = fault.filter(|f| f.chain == i);
            let [web, app, redis, postgres] = Self::names(i);
            let ep = |host: u8, port: u16| Endpoint {
                ip: Self::ip(i, host).into(),
                port,
            };
            let redis_rtt = slow.map_or(100, |f| f.rtt_us);
            let read_us = slow.map_or(50, |f| f.rtt_us / 8);
            flows.extend(edge(
                &web,
                Self::ip(i, 1),
                &app,
                ep(2, 8080),
                80 + j,
                20 + j,
            ));
            flows.extend(edge(
                &app,
                Self::ip(i, 2),
                &redis,
                ep(3, 6379),
                redis_rtt + j,
                20,
            ));
            flows.extend(edge(
                &app,
                Self::ip(i, 2),
                &postgres,
                ep(4, 5432),
                90 + j,
                10,
            ));
            syscalls.push(writes(&app, read_us + j, 200));
            syscalls.push(writes(&web, read_us + 30 + j, 200));
        }
        MetricInterval {
            flows,
            syscalls,
            ..empty_interval("synthetic", seq, end)
        }
    }
}
