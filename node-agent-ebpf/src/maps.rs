//! Maps and load-time globals shared by every program.

use aya_ebpf::{
    macros::map,
    maps::{Array, LruHashMap, LruPerCpuHashMap, PerCpuArray, RingBuf},
    Global,
};
use node_agent_common::{
    l7::{L7Conn, L7EdgeKey, L7ErrorKey, L7Stats, TlsCall, TlsConn, TlsKey},
    map_slot, BlockKey, BlockRequest, BlockRequestKey, DnsQueryKey, DnsStats, FlowKey, FlowStats,
    Kill, LatencyHist, NoReturnSyscalls, PendingExec, PendingExit, SyscallErrorKey, SyscallKey,
    SyscallStart, SyscallStats, TelemetryLayout, TracepointLayout, DROP_SLOTS,
};

/// Events to user space. The agent may resize it at load time (`map_max_entries`).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Records that did not fit in `EVENTS`, per CPU, indexed by `EventKind`.
#[map]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(DROP_SLOTS, 0);

/// Exit code / fatal signal of a process between `exit_group` or `signal_deliver` and its final
/// `sched_process_exit`, keyed by tgid. LRU so processes that vanish without a final exit
/// event (never expected, but cheap insurance) cannot fill it.
#[map]
pub static PENDING_EXITS: LruHashMap<u32, PendingExit> = LruHashMap::with_max_entries(16384, 0);

/// Fatal signals sent by one process to another, by target pid, until the target's exit
/// reads it (who killed it). LRU: a signal the target survived (it was already dying, it
/// blocked it) must not pin an entry.
#[map]
pub static KILLS: LruHashMap<u32, Kill> = LruHashMap::with_max_entries(4096, 0);

/// The last `execve` of each process, by tgid, from its entry until the process runs the new
/// program (then removed) or exits (a failed one is reported then).
#[map]
pub static EXECS: LruHashMap<u32, PendingExec> = LruHashMap::with_max_entries(4096, 0);

/// Who forked each process (child tgid → parent tgid), read when a child's exec fails.
#[map]
pub static PARENTS: LruHashMap<u32, u32> = LruHashMap::with_max_entries(16384, 0);

/// Tracepoint field offsets from this kernel's tracefs, written by the agent before load.
#[unsafe(no_mangle)]
pub static TP_LAYOUT: Global<TracepointLayout> = Global::new(TracepointLayout::absent());

// ---- Aggregates drained by user space every interval. Sizes are defaults; the agent sets
// them from its config (`map_max_entries`) before loading. ----

/// TCP connections by 4-tuple.
#[map]
pub static FLOWS: LruHashMap<FlowKey, FlowStats> = LruHashMap::with_max_entries(65536, 0);

/// Count, errors and latency per (cgroup, syscall), per CPU.
#[map]
pub static SYSCALLS: LruPerCpuHashMap<SyscallKey, SyscallStats> =
    LruPerCpuHashMap::with_max_entries(8192, 0);

/// Failures per (cgroup, syscall, errno), per CPU.
#[map]
pub static SYSCALL_ERRORS: LruPerCpuHashMap<SyscallErrorKey, u64> =
    LruPerCpuHashMap::with_max_entries(4096, 0);

/// DNS queries and answers per asking cgroup, per CPU.
#[map]
pub static DNS: LruPerCpuHashMap<u64, DnsStats> = LruPerCpuHashMap::with_max_entries(1024, 0);

/// Run-queue latency (wakeup or preemption → running) per cgroup, per CPU.
#[map]
pub static RUNQ: LruPerCpuHashMap<u64, LatencyHist> = LruPerCpuHashMap::with_max_entries(1024, 0);

/// Block request latency (issue → complete) per (cgroup, device), per CPU.
#[map]
pub static BLOCK_IO: LruPerCpuHashMap<BlockKey, LatencyHist> =
    LruPerCpuHashMap::with_max_entries(1024, 0);

/// Requests per edge and protocol (see `l7`): shared, not per CPU, with atomic adds (both
/// directions and the close tracepoint add to one edge).
#[map]
pub static L7_STATS: LruHashMap<L7EdgeKey, L7Stats> = LruHashMap::with_max_entries(4096, 0);

/// Failing replies per (edge, status / error prefix / SQLSTATE).
#[map]
pub static L7_ERRORS: LruHashMap<L7ErrorKey, u64> = LruHashMap::with_max_entries(4096, 0);

/// Each connection's parsing state: its protocol, which side is the client, and the
/// outstanding request. Removed at close; user space reads it for timed-out requests.
#[map]
pub static L7_CONNS: LruHashMap<FlowKey, L7Conn> = LruHashMap::with_max_entries(65536, 0);

/// OpenSSL calls in progress, by thread (`tls`): from a uprobe to its uretprobe.
#[map]
pub static TLS_CALLS: LruHashMap<u64, TlsCall> = LruHashMap::with_max_entries(16384, 0);

/// How many `TLS_CALLS` entries may exist: never below the true number (an entry replaced or
/// evicted without its return leaves it one too high, which only costs the fast path). While
/// it is 0 the read/write tracepoints of `tls` return without a hash lookup: on a node where
/// nothing is inside OpenSSL, every read and write paid one.
#[map]
pub static TLS_IN_FLIGHT: Array<u64> = Array::with_max_entries(1, 0);

/// Each TLS connection's socket fd and parsing state, by (process, `SSL *`). Removed at
/// `SSL_free`; user space reads it for timed-out requests.
#[map]
pub static TLS_CONNS: LruHashMap<TlsKey, TlsConn> = LruHashMap::with_max_entries(16384, 0);

/// `L7Notice`s: TLS sockets whose fd was just learnt (for user space to find their
/// addresses at once) and samples of failing replies.
#[map]
pub static L7_NOTICES: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);

/// Syscall latency is timed for one call in `mask + 1` (a power of two; 0 times every call),
/// `telemetry.syscall_latency_sample_every - 1`, written at load.
#[unsafe(no_mangle)]
pub static SYSCALL_SAMPLE_MASK: Global<u32> = Global::new(0);

/// Non-zero: failing replies are sampled (`telemetry.error_samples`), written at load.
#[unsafe(no_mangle)]
pub static L7_ERROR_SAMPLES: Global<u32> = Global::new(1);

/// New keys created in each aggregate map, per CPU, indexed by `map_slot`.
#[map]
pub static MAP_INSERTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(map_slot::COUNT, 0);

// ---- In-flight state between two tracepoints. ----

/// The syscall the task running on this CPU is in. Most syscalls return on the CPU they
/// entered without sleeping: they never touch a hash map.
#[map]
pub static SYSCALL_CURRENT: PerCpuArray<CurrentSyscall> = PerCpuArray::with_max_entries(1, 0);

/// Syscalls of tasks switched out before returning (blocked, preempted), keyed by thread
/// id, moved here from `SYSCALL_CURRENT` at the switch. Per-CPU LRU lists
/// (`BPF_F_NO_COMMON_LRU`) avoid one global lock.
#[map]
pub static SYSCALL_START: LruHashMap<u32, SyscallStart> =
    LruHashMap::with_max_entries(16384, BPF_F_NO_COMMON_LRU);

/// DNS queries waiting for an answer, with the time they were sent.
#[map]
pub static DNS_PENDING: LruHashMap<DnsQueryKey, u64> = LruHashMap::with_max_entries(4096, 0);

/// When each thread became runnable (woken or preempted).
#[map]
pub static RUNNABLE_SINCE: LruHashMap<u32, u64> =
    LruHashMap::with_max_entries(16384, BPF_F_NO_COMMON_LRU);

/// The task just switched in on this CPU and how long it waited; attributed to its cgroup when
/// it switches out (only then is it `current`, so its cgroup can be read).
#[map]
pub static RUNQ_PENDING: PerCpuArray<RunqPending> = PerCpuArray::with_max_entries(1, 0);

/// Block requests between issue and completion.
#[map]
pub static BLOCK_INFLIGHT: LruHashMap<BlockRequestKey, BlockRequest> =
    LruHashMap::with_max_entries(4096, 0);

/// Failing-DNS records sent by this CPU in the current second: a resolver storm (every
/// request of a service failing its lookup) must not flood the ring buffer. The per-cgroup
/// DNS aggregates still count every failure.
#[map]
pub static DNS_EVENT_BUDGET: PerCpuArray<EventBudget> = PerCpuArray::with_max_entries(1, 0);

/// Field offsets of the telemetry tracepoints, written by the agent before load.
#[unsafe(no_mangle)]
pub static TELEMETRY_LAYOUT: Global<TelemetryLayout> = Global::new(TelemetryLayout::absent());

/// This architecture's `exit` and `exit_group` numbers, written by the agent before load.
#[unsafe(no_mangle)]
pub static NORETURN_SYSCALLS: Global<NoReturnSyscalls> = Global::new(NoReturnSyscalls::unknown());

#[repr(C)]
#[derive(Clone, Copy)]
pub struct EventBudget {
    pub second: u64,
    pub sent: u64,
    /// Records skipped past the budget (readable with bpftool; not yet reported).
    pub sampled_away: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct CurrentSyscall {
    /// Thread id, 0 when the slot is free.
    pub tid: u32,
    pub _pad: u32,
    pub start: SyscallStart,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct RunqPending {
    pub pid: u32,
    pub _pad: u32,
    pub latency_ns: u64,
}

const BPF_F_NO_COMMON_LRU: u32 = 2;
