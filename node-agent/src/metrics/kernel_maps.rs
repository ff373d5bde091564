//! The aggregate maps of the loaded object, read whole each interval.

use aya::{
    maps::{
        HashMap, IterableMap, MapData, MapError, PerCpuArray, PerCpuHashMap, PerCpuValues, RingBuf,
    },
    Ebpf, Pod,
};
use node_agent_common::{
    l7::{L7Conn, L7EdgeKey, L7ErrorKey, L7Stats, TlsConn, TlsKey},
    map_slot, BlockKey, DnsQueryKey, DnsStats, FlowKey, FlowStats, LatencyHist, SyscallErrorKey,
    SyscallKey, SyscallStats, HIST_BUCKETS,
};

use super::{batch, delta::Counters};

#[derive(Debug, thiserror::Error)]
pub enum MapsError {
    #[error("map {0} is missing from the eBPF object")]
    Missing(&'static str),
    #[error("map {name} has an unexpected type or layout")]
    Type {
        name: &'static str,
        #[source]
        source: MapError,
    },
}

pub struct AggregateMaps {
    pub flows: HashMap<MapData, FlowKey, FlowStats>,
    pub syscalls: PerCpuHashMap<MapData, SyscallKey, SyscallStats>,
    pub syscall_errors: PerCpuHashMap<MapData, SyscallErrorKey, u64>,
    pub dns: PerCpuHashMap<MapData, u64, DnsStats>,
    pub dns_pending: HashMap<MapData, DnsQueryKey, u64>,
    pub runq: PerCpuHashMap<MapData, u64, LatencyHist>,
    pub block_io: PerCpuHashMap<MapData, BlockKey, LatencyHist>,
    pub l7_stats: HashMap<MapData, L7EdgeKey, L7Stats>,
    pub l7_errors: HashMap<MapData, L7ErrorKey, u64>,
    pub l7_conns: HashMap<MapData, FlowKey, L7Conn>,
    pub tls_conns: HashMap<MapData, TlsKey, TlsConn>,
    inserts: PerCpuArray<MapData, u64>,
    /// New TLS sockets and error samples (`notices::watch` takes it).
    pub notices: Option<RingBuf<MapData>>,
}

fn take<T: TryFrom<aya::maps::Map, Error = MapError>>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<T, MapsError> {
    let map = ebpf.take_map(name).ok_or(MapsError::Missing(name))?;
    T::try_from(map).map_err(|source| MapsError::Type { name, source })
}

impl AggregateMaps {
    pub fn open(ebpf: &mut Ebpf) -> Result<Self, MapsError> {
        Ok(Self {
            flows: take(ebpf, "FLOWS")?,
            syscalls: take(ebpf, "SYSCALLS")?,
            syscall_errors: take(ebpf, "SYSCALL_ERRORS")?,
            dns: take(ebpf, "DNS")?,
            dns_pending: take(ebpf, "DNS_PENDING")?,
            runq: take(ebpf, "RUNQ")?,
            block_io: take(ebpf, "BLOCK_IO")?,
            l7_stats: take(ebpf, "L7_STATS")?,
            l7_errors: take(ebpf, "L7_ERRORS")?,
            l7_conns: take(ebpf, "L7_CONNS")?,
            tls_conns: take(ebpf, "TLS_CONNS")?,
            inserts: take(ebpf, "MAP_INSERTS")?,
            notices: Some(take(ebpf, "L7_NOTICES")?),
        })
    }

    /// Keys the kernel created in the map at `slot` since load, summed over CPUs.
    pub fn inserted(&self, slot: u32) -> u64 {
        self.inserts
            .get(&slot, 0)
            .map(|v| v.iter().sum())
            .unwrap_or(0)
    }
}

/// Every entry of a plain hash map, in a few batch calls (one per entry on a kernel without
/// them). Entries deleted while reading are skipped.
pub fn read_hash<K: Pod, V: Pod>(map: &HashMap<MapData, K, V>) -> Vec<(K, V)> {
    match batch::lookup_all::<K, V>(batch::fd_of(map.map()), batch::Values::Single) {
        Ok(entries) => entries
            .into_iter()
            .filter_map(|(k, v)| Some((k, *v.first()?)))
            .collect(),
        Err(e) => {
            batch_refused(&e);
            map.iter().filter_map(Result::ok).collect()
        }
    }
}

/// Says once that this kernel refuses batch map operations (the agent then costs more).
fn batch_refused(e: &std::io::Error) {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(error = %e, "batch map reads refused by this kernel (Linux 5.6+ has them): reading the kernel maps entry by entry");
    }
}

/// Every entry of a per-CPU hash map, the CPUs' values summed with `sum`.
pub fn read_per_cpu<K: Pod, V: Pod>(
    map: &PerCpuHashMap<MapData, K, V>,
    sum: impl Fn(&PerCpuValues<V>) -> V,
) -> Vec<(K, V)> {
    let cpus = aya::util::nr_cpus().unwrap_or(0);
    let batched = (cpus > 0)
        .then(|| batch::lookup_all::<K, V>(batch::fd_of(map.map()), batch::Values::PerCpu(cpus)))
        .and_then(|r| r.map_err(|e| batch_refused(&e)).ok());
    match batched {
        Some(entries) => entries
            .into_iter()
            .filter_map(|(k, v)| Some((k, sum(&PerCpuValues::try_from(v).ok()?))))
            .collect(),
        None => map
            .iter()
            .filter_map(Result::ok)
            .map(|(k, v)| (k, sum(&v)))
            .collect(),
    }
}

/// Deletes `keys` from a plain hash map: in batch calls, or one by one on a kernel without
/// them. A key already gone (evicted) is no error.
pub fn remove_all<K: Pod, V: Pod>(map: &mut HashMap<MapData, K, V>, keys: &[K]) {
    if let Err(e) = batch::delete_all(batch::fd_of(map.map()), keys) {
        batch_refused(&e);
        for k in keys {
            let _ = map.remove(k);
        }
    }
}

pub fn sum_u64(v: &PerCpuValues<u64>) -> u64 {
    v.iter().sum()
}

pub fn add_hist(into: &mut LatencyHist, h: &LatencyHist) {
    into.count = into.count.wrapping_add(h.count);
    into.sum_ns = into.sum_ns.wrapping_add(h.sum_ns);
    for (a, b) in into.buckets.iter_mut().zip(h.buckets.iter()) {
        *a = a.wrapping_add(*b);
    }
}

pub fn sum_hist(v: &PerCpuValues<LatencyHist>) -> LatencyHist {
    let mut total = LatencyHist::ZERO;
    for h in v.iter() {
        add_hist(&mut total, h);
    }
    total
}

pub fn sum_syscalls(v: &PerCpuValues<SyscallStats>) -> SyscallStats {
    let mut total = SyscallStats {
        errors: 0,
        latency: LatencyHist::ZERO,
    };
    for s in v.iter() {
        total.errors += s.errors;
        add_hist(&mut total.latency, &s.latency);
    }
    total
}

pub fn sum_dns(v: &PerCpuValues<DnsStats>) -> DnsStats {
    let mut t = DnsStats::ZERO;
    for s in v.iter() {
        t.queries += s.queries;
        t.answers += s.answers;
        t.nxdomain += s.nxdomain;
        t.servfail += s.servfail;
        t.other_errors += s.other_errors;
        add_hist(&mut t.latency, &s.latency);
    }
    t
}

impl Counters for LatencyHist {
    fn delta(&self, prev: &Self) -> Option<Self> {
        // The u64 count never wraps; the u32 buckets may, and wrapping subtraction undoes that.
        let count = self.count.checked_sub(prev.count)?;
        let mut buckets = [0u32; HIST_BUCKETS];
        for (i, b) in buckets.iter_mut().enumerate() {
            *b = self.buckets[i].wrapping_sub(prev.buckets[i]);
        }
        Some(Self {
            count,
            sum_ns: self.sum_ns.wrapping_sub(prev.sum_ns),
            buckets,
        })
    }
    fn is_zero(&self) -> bool {
        self.count == 0
    }
}

impl Counters for SyscallStats {
    fn delta(&self, prev: &Self) -> Option<Self> {
        Some(Self {
            errors: self.errors.checked_sub(prev.errors)?,
            latency: self.latency.delta(&prev.latency)?,
        })
    }
    fn is_zero(&self) -> bool {
        // An untimed failure counts in `errors` only.
        self.latency.count == 0 && self.errors == 0
    }
}

impl Counters for DnsStats {
    fn delta(&self, prev: &Self) -> Option<Self> {
        Some(Self {
            queries: self.queries.checked_sub(prev.queries)?,
            answers: self.answers.checked_sub(prev.answers)?,
            nxdomain: self.nxdomain.checked_sub(prev.nxdomain)?,
            servfail: self.servfail.checked_sub(prev.servfail)?,
            other_errors: self.other_errors.checked_sub(prev.other_errors)?,
            latency: self.latency.delta(&prev.latency)?,
        })
    }
    fn is_zero(&self) -> bool {
        self.queries == 0 && self.answers == 0
    }
}

/// Map names as reported in `MapUsage`, with their insert-counter slot.
pub const USAGE_SLOTS: [(&str, u32); 8] = [
    ("flows", map_slot::FLOWS),
    ("syscalls", map_slot::SYSCALLS),
    ("syscall_errors", map_slot::SYSCALL_ERRORS),
    ("dns", map_slot::DNS),
    ("runqueue", map_slot::RUNQ),
    ("block_io", map_slot::BLOCK_IO),
    ("requests", map_slot::L7_STATS),
    ("request_errors", map_slot::L7_ERRORS),
];
