//! One interval: drain every aggregate map, attribute to workloads, build a `MetricBatch`.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use aya::maps::{MapData, PerCpuHashMap};
use node_agent_common::{
    l7::{self, L7EdgeKey},
    map_slot, BlockKey, DnsStats, LatencyHist, SyscallErrorKey, SyscallKey, SyscallStats,
    ROLE_CLIENT,
};
use tracing::debug;
use vigil_proto::v1;

use super::resources::{CgroupRoots, ResourceReader};
use super::{
    delta::{Counters, DeltaTracker},
    flows::{ip, EdgeKey, EdgeTotals, FlowTracker},
    kernel_maps::{
        read_hash, read_per_cpu, remove_all, sum_dns, sum_hist, sum_syscalls, sum_u64,
        AggregateMaps, USAGE_SLOTS,
    },
    names::{errno_name, syscall_name},
    notices::SharedErrorSamples,
    requests::{status_name, ConnId, EdgeRequests, OpenConn, RequestTracker},
    tls_sockets::SharedTlsSockets,
};
use crate::{
    attribution::{listeners::ListenerNames, workload::workload_from_cgroup_path, CgroupIndex},
    config::TelemetryConfig,
    enrich::wire_workload,
};

/// Most workload cgroups whose resource files are read each interval.
const MAX_RESOURCE_CGROUPS: usize = 1024;

pub struct Collector {
    maps: AggregateMaps,
    config: TelemetryConfig,
    proc_root: PathBuf,
    cgroups: CgroupIndex,
    listeners: ListenerNames,
    flows: FlowTracker,
    syscalls: DeltaTracker<SyscallKey, SyscallStats>,
    syscall_errors: DeltaTracker<SyscallErrorKey, u64>,
    dns: DeltaTracker<u64, DnsStats>,
    runq: DeltaTracker<u64, LatencyHist>,
    block_io: DeltaTracker<BlockKey, LatencyHist>,
    requests: RequestTracker,
    tls_sockets: SharedTlsSockets,
    error_samples: SharedErrorSamples,
    /// Live entries per map at the last drain, by `map_slot`.
    live: [u64; map_slot::COUNT as usize],
    /// Queries counted as unanswered so far.
    pub dns_timeouts: u64,
    /// Cgroup files of the workloads seen (`None` with `telemetry.resources` off).
    resources: Option<ResourceReader>,
}

fn histogram(h: &LatencyHist) -> v1::Histogram {
    v1::Histogram {
        count: h.count,
        sum_ns: h.sum_ns,
        log2_buckets: h.buckets.iter().map(|&b| u64::from(b)).collect(),
    }
}

/// Reads a per-CPU map, reports deltas, deletes entries idle for `idle` intervals.
fn drain_per_cpu<K, V>(
    map: &mut PerCpuHashMap<MapData, K, V>,
    tracker: &mut DeltaTracker<K, V>,
    sum: impl Fn(&aya::maps::PerCpuValues<V>) -> V,
    idle: u32,
) -> (Vec<(K, V)>, u64)
where
    K: aya::Pod + Eq + std::hash::Hash,
    V: aya::Pod + Counters,
{
    let reading = read_per_cpu(map, sum);
    let live = reading.len() as u64;
    let observed = tracker.observe(reading, idle);
    for key in &observed.idle {
        if map.remove(key).is_ok() {
            tracker.forget(key);
        }
    }
    (observed.changed, live)
}

impl Collector {
    pub fn new(
        maps: AggregateMaps,
        config: TelemetryConfig,
        proc_root: &Path,
        tls_sockets: SharedTlsSockets,
        error_samples: SharedErrorSamples,
    ) -> Self {
        Self {
            maps,
            proc_root: proc_root.to_path_buf(),
            cgroups: CgroupIndex::discover(),
            listeners: ListenerNames::new(proc_root),
            flows: FlowTracker::default(),
            syscalls: DeltaTracker::default(),
            syscall_errors: DeltaTracker::default(),
            dns: DeltaTracker::default(),
            runq: DeltaTracker::default(),
            block_io: DeltaTracker::default(),
            requests: RequestTracker::default(),
            tls_sockets,
            error_samples,
            live: [0; map_slot::COUNT as usize],
            dns_timeouts: 0,
            resources: config
                .resources
                .then(|| ResourceReader::new(CgroupRoots::discover(), MAX_RESOURCE_CGROUPS)),
            config,
        }
    }

    fn comm(&self, tgid: u32) -> String {
        if tgid == 0 {
            return String::new();
        }
        std::fs::read_to_string(self.proc_root.join(tgid.to_string()).join("comm"))
            .map(|c| c.trim_end().to_string())
            .unwrap_or_default()
    }

    fn workload(&mut self, cgroup_id: u64, comm: &str) -> v1::Workload {
        let path = self.cgroups.resolve(cgroup_id).unwrap_or_default();
        let comm = if comm.is_empty() { "unknown" } else { comm };
        wire_workload(&workload_from_cgroup_path(&path, comm), false)
    }

    /// Drains every map into a batch (its `interval_seq` is assigned when it is first sent).
    pub fn collect(
        &mut self,
        start_unix_ns: i64,
        end_unix_ns: i64,
        now_ktime: u64,
    ) -> v1::MetricBatch {
        let idle = self.config.idle_intervals;
        let flows = self.drain_flows();
        let syscalls = self.drain_syscalls(idle);
        let dns = self.drain_dns(idle, now_ktime);
        let latencies = self.drain_latencies(idle);
        let requests = self.drain_requests(idle, now_ktime);
        let maps = self.usage();
        let resources = self.sample_resources(&[
            &flows.iter().map(|s| s.cgroup_id).collect::<Vec<_>>(),
            &syscalls.iter().map(|s| s.cgroup_id).collect::<Vec<_>>(),
            &latencies.iter().map(|s| s.cgroup_id).collect::<Vec<_>>(),
            &requests.iter().map(|s| s.cgroup_id).collect::<Vec<_>>(),
        ]);
        debug!(
            resources = resources.len(),
            flows = flows.len(),
            syscalls = syscalls.len(),
            dns = dns.len(),
            latencies = latencies.len(),
            requests = requests.len(),
            "drained kernel aggregates"
        );
        v1::MetricBatch {
            node_name: String::new(),
            interval_seq: 0,
            start_unix_ns,
            end_unix_ns,
            flows,
            syscalls,
            latencies,
            dns,
            maps,
            requests,
            resources,
            filesystems: if self.config.resources {
                super::filesystems::sample(Path::new("/proc/self/mountinfo"))
            } else {
                Vec::new()
            },
        }
    }

    /// Reads the cgroup files of the workloads active now or recently.
    fn sample_resources(&mut self, active: &[&[u64]]) -> Vec<v1::ResourceSample> {
        let Some(mut reader) = self.resources.take() else {
            return Vec::new();
        };
        let ids: std::collections::BTreeSet<u64> =
            active.iter().flat_map(|a| a.iter().copied()).collect();
        reader.seen(
            ids.into_iter()
                .filter_map(|id| Some((id, self.cgroups.resolve(id)?))),
        );
        let mut samples = reader.sample();
        for s in &mut samples {
            s.workload = Some(self.workload(s.cgroup_id, ""));
        }
        self.resources = Some(reader);
        samples
    }

    fn drain_flows(&mut self) -> Vec<v1::FlowSample> {
        let reading = read_hash(&self.maps.flows);
        self.live[map_slot::FLOWS as usize] = reading.len() as u64;
        let drain = self.flows.observe(reading);
        remove_all(&mut self.maps.flows, &drain.finished);
        let mut samples = Vec::with_capacity(drain.edges.len());
        for (k, t) in drain.edges {
            samples.push(self.flow_sample(&k, &t));
        }
        samples
    }

    fn flow_sample(&mut self, k: &EdgeKey, t: &EdgeTotals) -> v1::FlowSample {
        let mut process = self.comm(t.tgid);
        // An accepted connection has no task; name a host listener by its port's owner.
        if process.is_empty()
            && k.role != ROLE_CLIENT
            && self.cgroups.resolve(k.cgroup_id).as_deref() == Some("/")
        {
            process = self.listeners.name(k.local_port).unwrap_or_default();
        }
        let role = if k.role == ROLE_CLIENT {
            v1::FlowRole::Client
        } else {
            v1::FlowRole::Server
        };
        v1::FlowSample {
            workload: Some(self.workload(k.cgroup_id, &process)),
            cgroup_id: k.cgroup_id,
            role: role as i32,
            local: Some(v1::Endpoint {
                ip: k.local_ip.to_string(),
                port: u32::from(k.local_port),
            }),
            remote: Some(v1::Endpoint {
                ip: k.remote_ip.to_string(),
                port: u32::from(k.remote_port),
            }),
            connects: t.connects,
            established: t.established,
            failed: t.failed,
            closed: t.closed,
            active: t.active,
            bytes_sent: t.bytes_sent,
            bytes_received: t.bytes_received,
            packets_sent: t.packets_sent,
            packets_received: t.packets_received,
            retransmits: t.retransmits,
            resets_sent: t.resets_sent,
            resets_received: t.resets_received,
            srtt_sum_us: t.srtt_sum_us,
            srtt_samples: t.srtt_samples,
            process,
        }
    }

    fn drain_syscalls(&mut self, idle: u32) -> Vec<v1::SyscallSample> {
        let (changed, live) = drain_per_cpu(
            &mut self.maps.syscalls,
            &mut self.syscalls,
            sum_syscalls,
            idle,
        );
        self.live[map_slot::SYSCALLS as usize] = live;
        let (errors, live) = drain_per_cpu(
            &mut self.maps.syscall_errors,
            &mut self.syscall_errors,
            sum_u64,
            idle,
        );
        self.live[map_slot::SYSCALL_ERRORS as usize] = live;
        let mut by_call: HashMap<(u64, u32), Vec<v1::ErrnoCount>> = HashMap::new();
        for (k, count) in errors {
            by_call
                .entry((k.cgroup_id, k.nr))
                .or_default()
                .push(v1::ErrnoCount {
                    errno: k.errno,
                    name: errno_name(k.errno),
                    count,
                });
        }
        // One call in `every` was timed: its histogram stands for all of them.
        let every = u64::from(self.config.syscall_latency_sample_every);
        let mut samples = Vec::with_capacity(changed.len());
        for (k, s) in changed {
            samples.push(v1::SyscallSample {
                workload: Some(self.workload(k.cgroup_id, "")),
                cgroup_id: k.cgroup_id,
                nr: k.nr,
                name: syscall_name(k.nr),
                errors: s.errors,
                errors_by_errno: by_call.remove(&(k.cgroup_id, k.nr)).unwrap_or_default(),
                latency: Some(histogram(&s.latency.scaled(every))),
            });
        }
        samples
    }

    fn drain_dns(&mut self, idle: u32, now_ktime: u64) -> Vec<v1::DnsSample> {
        // Queries older than the timeout will not be answered: count and forget them.
        let timeout_ns = self.config.dns_timeout_ms * 1_000_000;
        let mut timeouts: HashMap<u64, u64> = HashMap::new();
        for (key, sent) in read_hash(&self.maps.dns_pending) {
            if now_ktime.saturating_sub(sent) >= timeout_ns
                && self.maps.dns_pending.remove(&key).is_ok()
            {
                *timeouts.entry(key.cgroup_id).or_default() += 1;
            }
        }
        self.dns_timeouts += timeouts.values().sum::<u64>();
        let (changed, live) = drain_per_cpu(&mut self.maps.dns, &mut self.dns, sum_dns, idle);
        self.live[map_slot::DNS as usize] = live;
        let mut samples = Vec::new();
        let emit = |this: &mut Self, cgroup: u64, s: &DnsStats, timeouts: u64| v1::DnsSample {
            workload: Some(this.workload(cgroup, "")),
            cgroup_id: cgroup,
            queries: s.queries,
            answers: s.answers,
            nxdomain: s.nxdomain,
            servfail: s.servfail,
            other_errors: s.other_errors,
            timeouts,
            latency: Some(histogram(&s.latency)),
        };
        for (cgroup, s) in &changed {
            let t = timeouts.remove(cgroup).unwrap_or(0);
            samples.push(emit(self, *cgroup, s, t));
        }
        for (cgroup, t) in timeouts {
            samples.push(emit(self, cgroup, &DnsStats::ZERO, t));
        }
        samples
    }

    fn drain_latencies(&mut self, idle: u32) -> Vec<v1::LatencySample> {
        let (runq, live) = drain_per_cpu(&mut self.maps.runq, &mut self.runq, sum_hist, idle);
        self.live[map_slot::RUNQ as usize] = live;
        let (block, live) =
            drain_per_cpu(&mut self.maps.block_io, &mut self.block_io, sum_hist, idle);
        self.live[map_slot::BLOCK_IO as usize] = live;
        let mut samples = Vec::with_capacity(runq.len() + block.len());
        for (cgroup, h) in runq {
            samples.push(v1::LatencySample {
                workload: Some(self.workload(cgroup, "")),
                cgroup_id: cgroup,
                kind: v1::LatencyKind::RunQueue as i32,
                device: String::new(),
                latency: Some(histogram(&h)),
            });
        }
        for (k, h) in block {
            samples.push(v1::LatencySample {
                workload: Some(self.workload(k.cgroup_id, "")),
                cgroup_id: k.cgroup_id,
                kind: v1::LatencyKind::BlockIo as i32,
                // The kernel's internal dev_t: 12-bit major, 20-bit minor.
                device: format!("{}:{}", k.dev >> 20, k.dev & 0xfffff),
                latency: Some(histogram(&h)),
            });
        }
        samples
    }

    fn drain_requests(&mut self, idle: u32, now_ktime: u64) -> Vec<v1::RequestSample> {
        let stats = read_hash(&self.maps.l7_stats);
        let errors = read_hash(&self.maps.l7_errors);
        self.live[map_slot::L7_STATS as usize] = stats.len() as u64;
        self.live[map_slot::L7_ERRORS as usize] = errors.len() as u64;
        let mut conns: Vec<OpenConn> = read_hash(&self.maps.l7_conns)
            .into_iter()
            .map(|(k, c)| OpenConn::tcp(k, c))
            .collect();
        let tls = read_hash(&self.maps.tls_conns);
        self.live[map_slot::TLS_CONNS as usize] = tls.len() as u64;
        let timeout_ns = self.config.request_timeout_ms * 1_000_000;
        for (k, t) in tls {
            if t.fd < 0 {
                continue;
            }
            // A process that exits never frees its `SSL`s: its connection states would
            // read as requests timing out. Only a late one is checked (a stat each).
            let late =
                t.conn.pending != 0 && now_ktime.saturating_sub(t.conn.request_ns) >= timeout_ns;
            if late && !self.proc_root.join(k.tgid.to_string()).exists() {
                let _ = self.maps.tls_conns.remove(&k);
                continue;
            }
            conns.push(OpenConn {
                id: ConnId::Tls(k),
                conn: t.conn,
                edge: L7EdgeKey::tls_socket(k.tgid, t.fd, &t.conn),
            });
        }
        let drain = self
            .requests
            .drain(stats, errors, conns, now_ktime, timeout_ns, idle);
        for key in &drain.idle_stats {
            if self.maps.l7_stats.remove(key).is_ok() {
                self.requests.stats.forget(key);
            }
        }
        for key in &drain.idle_errors {
            if self.maps.l7_errors.remove(key).is_ok() {
                self.requests.errors.forget(key);
            }
        }
        let mut edges = drain.edges;
        let samples = self
            .error_samples
            .lock()
            .map(|mut s| s.take())
            .unwrap_or_default();
        for (key, text) in samples {
            edges
                .entry(key.edge)
                .or_default()
                .samples
                .push((key.code, text));
        }
        let edges = self.resolve_tls(edges);
        let mut samples = Vec::with_capacity(edges.len());
        for (k, e) in edges {
            samples.push(self.request_sample(&k, &e));
        }
        samples
    }

    /// TLS connections are counted per (process, fd) in the kernel: each becomes its
    /// socket's edge, and the connections of one edge are added up. A socket closed before
    /// this drain found its addresses is counted in `TlsSockets::unresolved` and dropped.
    fn resolve_tls(
        &mut self,
        edges: HashMap<L7EdgeKey, EdgeRequests>,
    ) -> HashMap<L7EdgeKey, EdgeRequests> {
        let Ok(mut sockets) = self.tls_sockets.lock() else {
            return edges; // poisoned: a panic elsewhere already ends the agent
        };
        if !edges
            .keys()
            .any(|k| k.transport == l7::TRANSPORT_TLS_SOCKET)
        {
            sockets.end_drain();
            return edges; // no TLS this interval: nothing to rekey
        }
        let mut out: HashMap<L7EdgeKey, EdgeRequests> = HashMap::with_capacity(edges.len());
        let unresolved = sockets.unresolved;
        for (k, e) in edges {
            let key = match k.tls_socket_of() {
                None => k,
                Some((tgid, fd)) => match sockets.resolve(tgid, fd) {
                    Some(flow) => k.with_flow(&flow),
                    None => continue,
                },
            };
            match out.get_mut(&key) {
                Some(into) => into.merge(&e),
                None => {
                    out.insert(key, e);
                }
            }
        }
        sockets.end_drain();
        if sockets.unresolved > unresolved {
            debug!(
                sockets = sockets.unresolved - unresolved,
                "TLS requests on sockets closed before their addresses were read: not shipped"
            );
        }
        out
    }

    fn request_sample(&mut self, k: &L7EdgeKey, e: &EdgeRequests) -> v1::RequestSample {
        let client = k.role == ROLE_CLIENT;
        let (local_port, remote_port) = if client {
            (0, k.server_port)
        } else {
            (k.server_port, 0)
        };
        let protocol = match k.proto {
            l7::PROTO_HTTP1 => v1::Protocol::Http1,
            l7::PROTO_REDIS => v1::Protocol::Redis,
            l7::PROTO_POSTGRES => v1::Protocol::Postgres,
            l7::PROTO_HTTP2 => v1::Protocol::Http2,
            _ => v1::Protocol::Unspecified,
        };
        let s = &e.stats;
        v1::RequestSample {
            workload: Some(self.workload(k.cgroup_id, "")),
            cgroup_id: k.cgroup_id,
            role: if client {
                v1::FlowRole::Client as i32
            } else {
                v1::FlowRole::Server as i32
            },
            local: Some(v1::Endpoint {
                ip: ip(k.local_addr).to_string(),
                port: u32::from(local_port),
            }),
            remote: Some(v1::Endpoint {
                ip: ip(k.remote_addr).to_string(),
                port: u32::from(remote_port),
            }),
            protocol: protocol as i32,
            tls: k.transport == l7::TRANSPORT_TLS,
            requests: s.requests,
            responses: s.responses,
            errors: s.errors,
            client_errors: s.client_errors,
            timeouts: e.timeouts,
            stuck: e.stuck,
            closed_pending: s.closed_pending,
            pipelined: s.pipelined,
            unparsed: s.unparsed,
            statuses: e
                .statuses
                .iter()
                .map(|&(code, count)| v1::StatusCount {
                    code: status_name(k.proto, code),
                    count,
                })
                .collect(),
            error_samples: e
                .samples
                .iter()
                .map(|(code, text)| v1::ErrorSample {
                    code: status_name(k.proto, *code),
                    text: text.clone(),
                })
                .collect(),
            latency: Some(histogram(&s.latency)),
        }
    }

    fn usage(&self) -> Vec<v1::MapUsage> {
        let sizes = self.config.maps.entries();
        let deleted = |slot: u32| match slot {
            map_slot::FLOWS => self.flows.deleted,
            map_slot::SYSCALLS => self.syscalls.deleted,
            map_slot::SYSCALL_ERRORS => self.syscall_errors.deleted,
            map_slot::DNS => self.dns.deleted,
            map_slot::RUNQ => self.runq.deleted,
            map_slot::BLOCK_IO => self.block_io.deleted,
            map_slot::L7_STATS => self.requests.stats.deleted,
            map_slot::L7_ERRORS => self.requests.errors.deleted,
            _ => 0,
        };
        USAGE_SLOTS
            .iter()
            .map(|&(name, slot)| {
                let inserted = self.maps.inserted(slot);
                let entries = self.live[slot as usize];
                let capacity = sizes
                    .iter()
                    .find(|(_, key, _)| key.strip_prefix("telemetry.maps.") == Some(name))
                    .map_or(0, |(_, _, size)| u64::from(*size));
                v1::MapUsage {
                    name: name.to_string(),
                    capacity,
                    entries,
                    inserted,
                    // Every key created was deleted by us, is still there, or was evicted.
                    evicted: inserted.saturating_sub(deleted(slot) + entries),
                }
            })
            .collect()
    }
}
