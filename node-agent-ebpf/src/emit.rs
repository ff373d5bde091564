//! Reserving ring-buffer records, filling the common header, counting drops.

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_smp_processor_id, bpf_ktime_get_ns,
    },
    maps::ring_buf::RingBufEntry,
};
use node_agent_common::{EventHeader, EventKind, COMM_LEN};

use crate::{
    agg::atomic_add,
    maps::{DROPS, EVENTS},
};

/// Reserves a record of type `T` or counts a drop for `kind` and returns `None`.
///
/// Tracepoint programs and the cgroup_skb ingress program (DNS failures) both call this, and
/// the latter can interrupt the former on the same CPU (see `agg`): the per-CPU drop counter
/// is added to atomically.
#[inline(always)]
pub fn reserve<T: 'static>(kind: EventKind) -> Option<RingBufEntry<T>> {
    let entry = EVENTS.reserve::<T>(0);
    if entry.is_none() {
        if let Some(slot) = DROPS.get_ptr_mut(kind as u32) {
            // SAFETY: `get_ptr_mut` bounds-checked `kind` against the array and returned this
            // CPU's element, an aligned `u64` that lives as long as the map.
            unsafe { atomic_add(slot, 1) };
        }
    }
    entry
}

/// Fills the header describing the current task.
#[inline(always)]
pub fn fill_header(header: &mut EventHeader, kind: EventKind) {
    let pid_tgid = bpf_get_current_pid_tgid();
    header.kind = kind as u32;
    // SAFETY: bpf_get_smp_processor_id, bpf_ktime_get_ns and bpf_get_current_cgroup_id take
    // no arguments and only read the CPU number, the monotonic clock and `current`'s cgroup;
    // the kernel offers all three to tracepoint programs, the only callers.
    unsafe {
        header.cpu = bpf_get_smp_processor_id();
        header.ktime_ns = bpf_ktime_get_ns();
        header.cgroup_id = bpf_get_current_cgroup_id();
    }
    header.pid = pid_tgid as u32;
    header.tgid = (pid_tgid >> 32) as u32;
    header.comm = bpf_get_current_comm().unwrap_or([0u8; COMM_LEN]);
}
