//! Reserving ring-buffer records, filling the common header, counting drops.

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_smp_processor_id, bpf_ktime_get_ns,
    },
    maps::ring_buf::RingBufEntry,
};
use node_agent_common::{EventHeader, EventKind, COMM_LEN};

use crate::maps::{DROPS, EVENTS};

/// Reserves a record of type `T` or counts a drop for `kind` and returns `None`.
#[inline(always)]
pub fn reserve<T: 'static>(kind: EventKind) -> Option<RingBufEntry<T>> {
    let entry = EVENTS.reserve::<T>(0);
    if entry.is_none() {
        if let Some(slot) = DROPS.get_ptr_mut(kind as u32) {
            // SAFETY: per-CPU slot, no concurrent writer on this CPU while we run.
            unsafe { *slot += 1 };
        }
    }
    entry
}

/// Fills the header describing the current task.
#[inline(always)]
pub fn fill_header(header: &mut EventHeader, kind: EventKind) {
    let pid_tgid = bpf_get_current_pid_tgid();
    header.kind = kind as u32;
    // SAFETY: these helpers have no preconditions in tracepoint context.
    unsafe {
        header.cpu = bpf_get_smp_processor_id();
        header.ktime_ns = bpf_ktime_get_ns();
        header.cgroup_id = bpf_get_current_cgroup_id();
    }
    header.pid = pid_tgid as u32;
    header.tgid = (pid_tgid >> 32) as u32;
    header.comm = bpf_get_current_comm().unwrap_or([0u8; COMM_LEN]);
}
