//! Maps and load-time globals shared by every program.

use aya_ebpf::{
    macros::map,
    maps::{LruHashMap, PerCpuArray, RingBuf},
    Global,
};
use node_agent_common::{PendingExit, TracepointLayout, DROP_SLOTS};

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

/// Tracepoint field offsets from this kernel's tracefs, written by the agent before load.
#[unsafe(no_mangle)]
pub static TP_LAYOUT: Global<TracepointLayout> = Global::new(TracepointLayout::absent());
