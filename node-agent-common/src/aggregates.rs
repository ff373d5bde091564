//! Aggregates the kernel keeps in maps and user space drains every interval: TCP connections,
//! syscalls, DNS and latency histograms. Nothing here goes through the ring buffer per packet
//! or per syscall; the kernel adds into these records and the agent reads deltas.

use core::mem::size_of;

/// Number of log2 buckets in a [`LatencyHist`]: bucket `i` counts latencies in
/// `[2^i, 2^(i+1))` nanoseconds; the last bucket also takes everything above 2^31 ns (~2.1 s).
pub const HIST_BUCKETS: usize = 32;

/// A log2 latency histogram. Buckets are u32 to keep per-CPU maps small; user space computes
/// deltas with wrapping subtraction, so wrap-around between two drains is harmless.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencyHist {
    pub count: u64,
    pub sum_ns: u64,
    pub buckets: [u32; HIST_BUCKETS],
}
const _: () = assert!(size_of::<LatencyHist>() == 144);

impl LatencyHist {
    pub const ZERO: Self = Self {
        count: 0,
        sum_ns: 0,
        buckets: [0; HIST_BUCKETS],
    };

    /// The histogram of a population from that of a 1-in-`n` random sample of it: every
    /// figure times `n` (percentiles unchanged; counts become estimates).
    pub fn scaled(&self, n: u64) -> Self {
        let n32 = u32::try_from(n).unwrap_or(u32::MAX);
        let mut buckets = self.buckets;
        for b in &mut buckets {
            *b = b.saturating_mul(n32);
        }
        Self {
            count: self.count.saturating_mul(n),
            sum_ns: self.sum_ns.saturating_mul(n),
            buckets,
        }
    }
}

/// Bucket index of `ns` (floor(log2(ns)), clamped). Branches only, no loops, so the verifier
/// accepts it as is.
#[inline(always)]
pub const fn log2_bucket(ns: u64) -> usize {
    let mut v = ns;
    let mut r = 0usize;
    if v >= 1 << 32 {
        v >>= 32;
        r += 32;
    }
    if v >= 1 << 16 {
        v >>= 16;
        r += 16;
    }
    if v >= 1 << 8 {
        v >>= 8;
        r += 8;
    }
    if v >= 1 << 4 {
        v >>= 4;
        r += 4;
    }
    if v >= 1 << 2 {
        v >>= 2;
        r += 2;
    }
    if v >= 1 << 1 {
        r += 1;
    }
    if r >= HIST_BUCKETS {
        HIST_BUCKETS - 1
    } else {
        r
    }
}

/// One TCP connection as seen from this node: `local` is this side. IPv4 addresses are stored
/// IPv4-mapped (`::ffff:a.b.c.d`) so both families share one key.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    pub local_port: u16,
    pub remote_port: u16,
    pub _pad: u32,
}
const _: () = assert!(size_of::<FlowKey>() == 40);

/// This side opened the connection (`connect`).
pub const ROLE_CLIENT: u8 = 1;
/// This side accepted it (a listener's child socket).
pub const ROLE_SERVER: u8 = 2;

/// The connection reached ESTABLISHED.
pub const FLOW_ESTABLISHED: u8 = 1 << 0;
/// It went SYN_SENT → CLOSE: the connect failed (refused, timed out, reset).
pub const FLOW_FAILED: u8 = 1 << 1;
/// It reached CLOSE after being established; user space drops it after the next drain.
pub const FLOW_CLOSED: u8 = 1 << 2;

/// Counters of one connection. Every counter only grows; several CPUs add to it at once, so
/// the kernel uses atomic adds.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FlowStats {
    /// cgroup v2 id of the owning socket (the connecting task, or the listener's cgroup).
    pub cgroup_id: u64,
    /// Process that connected (0 when only seen from softirq context).
    pub tgid: u32,
    pub role: u8,
    pub flags: u8,
    pub _pad: u16,
    pub first_ns: u64,
    pub last_ns: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub retransmits: u64,
    pub resets_sent: u64,
    pub resets_received: u64,
    /// Sum and number of smoothed-RTT samples (`tcp:tcp_probe`), microseconds.
    pub srtt_sum_us: u64,
    pub srtt_samples: u64,
}
const _: () = assert!(size_of::<FlowStats>() == 104);

impl FlowStats {
    pub const fn new(cgroup_id: u64, tgid: u32, role: u8, now: u64) -> Self {
        Self {
            cgroup_id,
            tgid,
            role,
            flags: 0,
            _pad: 0,
            first_ns: now,
            last_ns: now,
            bytes_sent: 0,
            bytes_received: 0,
            packets_sent: 0,
            packets_received: 0,
            retransmits: 0,
            resets_sent: 0,
            resets_received: 0,
            srtt_sum_us: 0,
            srtt_samples: 0,
        }
    }
}

/// Per cgroup, per syscall number.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SyscallKey {
    pub cgroup_id: u64,
    pub nr: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<SyscallKey>() == 16);

/// Count, failures and latency of one syscall in one cgroup (per CPU in the kernel).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SyscallStats {
    pub errors: u64,
    pub latency: LatencyHist,
}
const _: () = assert!(size_of::<SyscallStats>() == 152);

/// Failures of one syscall in one cgroup with one errno.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SyscallErrorKey {
    pub cgroup_id: u64,
    pub nr: u32,
    pub errno: u32,
}
const _: () = assert!(size_of::<SyscallErrorKey>() == 16);

/// A syscall in flight on one thread, between `sys_enter` and `sys_exit`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SyscallStart {
    pub ktime_ns: u64,
    pub nr: u64,
}

/// The syscalls that never return (`exit`, `exit_group`), by this architecture's numbers.
/// The BPF target has no architecture of its own, so the agent writes them before load.
///
/// Their entry must not be timed: a thread that sleeps inside `exit` would have it parked
/// by thread id until the id is reused, and a new thread's first return (from `clone`, which
/// has no entry of its own) would then be timed from the dead thread's exit — seconds of
/// latency that never happened, at every pid wrap of a thread-per-connection server.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoReturnSyscalls {
    pub exit: u32,
    pub exit_group: u32,
}
const _: () = assert!(size_of::<NoReturnSyscalls>() == 8);

impl NoReturnSyscalls {
    /// Before the agent writes the numbers: no syscall matches.
    pub const fn unknown() -> Self {
        Self {
            exit: u32::MAX,
            exit_group: u32::MAX,
        }
    }

    #[inline(always)]
    pub const fn contains(&self, nr: u64) -> bool {
        nr == self.exit as u64 || nr == self.exit_group as u64
    }
}

/// Block IO latency per cgroup and device.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockKey {
    pub cgroup_id: u64,
    pub dev: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<BlockKey>() == 16);

/// A block request between issue and completion.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockRequestKey {
    pub sector: u64,
    pub dev: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<BlockRequestKey>() == 16);

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockRequest {
    pub ktime_ns: u64,
    pub cgroup_id: u64,
}

/// DNS over UDP/53 per asking cgroup.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DnsStats {
    pub queries: u64,
    pub answers: u64,
    pub nxdomain: u64,
    pub servfail: u64,
    /// Other non-zero rcodes (REFUSED, FORMERR, …).
    pub other_errors: u64,
    pub latency: LatencyHist,
}
const _: () = assert!(size_of::<DnsStats>() == 184);

impl DnsStats {
    pub const ZERO: Self = Self {
        queries: 0,
        answers: 0,
        nxdomain: 0,
        servfail: 0,
        other_errors: 0,
        latency: LatencyHist::ZERO,
    };
}

/// A query waiting for its answer. Entries older than the DNS timeout are counted as
/// unanswered by user space and removed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DnsQueryKey {
    pub cgroup_id: u64,
    /// The asking socket's local port and the query id identify the answer.
    pub local_port: u16,
    pub id: u16,
    pub _pad: u32,
}
const _: () = assert!(size_of::<DnsQueryKey>() == 16);

/// Indexes of [`MapInserts`] slots: new keys the kernel created in each aggregate map. User
/// space knows how many it deleted and how many are live; the rest were evicted by the LRU.
pub mod map_slot {
    pub const FLOWS: u32 = 0;
    pub const SYSCALLS: u32 = 1;
    pub const SYSCALL_ERRORS: u32 = 2;
    pub const DNS: u32 = 3;
    pub const RUNQ: u32 = 4;
    pub const BLOCK_IO: u32 = 5;
    pub const DNS_PENDING: u32 = 6;
    pub const L7_STATS: u32 = 7;
    pub const L7_ERRORS: u32 = 8;
    pub const L7_CONNS: u32 = 9;
    pub const TLS_CONNS: u32 = 10;
    pub const COUNT: u32 = 11;
}

/// Bytes of the question section copied into a [`DnsFailure`] event.
pub const DNS_QUESTION_LEN: usize = 64;

/// A DNS answer with a failing rcode (NXDOMAIN, SERVFAIL, …), sent through the ring buffer so
/// the name that failed is known. The header's cgroup is the asking socket's, its pid is 0
/// (answers arrive in softirq context).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DnsFailure {
    pub header: crate::EventHeader,
    pub rcode: u16,
    pub query_id: u16,
    pub server_port: u16,
    pub question_len: u16,
    pub server_addr: [u8; 16],
    /// The raw question section (wire-format name, type, class), truncated.
    pub question: [u8; DNS_QUESTION_LEN],
}
const _: () = assert!(size_of::<DnsFailure>() == 136);

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY (all): repr(C) plain-old-data with explicit padding, sizes asserted above.
    unsafe impl aya::Pod for FlowKey {}
    unsafe impl aya::Pod for FlowStats {}
    unsafe impl aya::Pod for SyscallKey {}
    unsafe impl aya::Pod for NoReturnSyscalls {}
    unsafe impl aya::Pod for SyscallStats {}
    unsafe impl aya::Pod for SyscallErrorKey {}
    unsafe impl aya::Pod for BlockKey {}
    unsafe impl aya::Pod for DnsStats {}
    unsafe impl aya::Pod for DnsQueryKey {}
    unsafe impl aya::Pod for LatencyHist {}
    unsafe impl aya::Pod for DnsFailure {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_buckets() {
        assert_eq!(log2_bucket(0), 0);
        assert_eq!(log2_bucket(1), 0);
        assert_eq!(log2_bucket(2), 1);
        assert_eq!(log2_bucket(3), 1);
        assert_eq!(log2_bucket(1024), 10);
        assert_eq!(log2_bucket(1_000_000), 19);
        assert_eq!(log2_bucket((1 << 31) + 5), 31);
        assert_eq!(log2_bucket(u64::MAX), 31);
    }

    #[test]
    fn a_sampled_histogram_scales_to_its_population_and_keeps_its_shape() {
        let mut h = LatencyHist::ZERO;
        h.count = 3;
        h.sum_ns = 3_000;
        h.buckets[9] = 2;
        h.buckets[u32::BITS as usize - 1] = u32::MAX / 2;
        let s = h.scaled(8);
        assert_eq!((s.count, s.sum_ns, s.buckets[9]), (24, 24_000, 16));
        assert_eq!(
            s.buckets[31],
            u32::MAX,
            "a bucket saturates instead of wrapping"
        );
        assert_eq!(h.scaled(1), h);
    }
}
