//! Run-queue latency: how long a runnable task waited for a CPU, per cgroup.
//!
//! A task becomes runnable when woken (`sched_wakeup`, `sched_wakeup_new`) or preempted while
//! running (`sched_switch` with `prev_state == TASK_RUNNING`); the wait ends when it is
//! switched in. At that moment `current` is still the previous task, so the wait is parked
//! per CPU and attributed when the task switches out again, running as `current`.

use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_ktime_get_ns},
    macros::tracepoint,
    programs::TracePointContext,
};
use node_agent_common::{map_slot, LatencyHist};

use crate::{
    agg::{get_or_insert, record},
    maps::{RUNNABLE_SINCE, RUNQ, RUNQ_PENDING, TELEMETRY_LAYOUT},
};

/// `TASK_RUNNING`: the previous task was preempted, not sleeping.
const TASK_RUNNING: i64 = 0;

#[inline(always)]
fn runnable(pid: i32) {
    if pid <= 0 {
        return; // idle
    }
    // SAFETY: bpf_ktime_get_ns takes no arguments and reads the monotonic clock.
    let now = unsafe { bpf_ktime_get_ns() };
    let _ = RUNNABLE_SINCE.insert(pid as u32, now, 0);
}

#[tracepoint]
pub fn vigil_sched_wakeup(ctx: TracePointContext) -> u32 {
    // SAFETY: `ctx` is the sched_wakeup (or sched_wakeup_new: the agent checked that both put
    // `pid` at the same offset) record, and `wakeup_pid` the offset of its `pid` field in this
    // kernel's format; `read_at` copies with bpf_probe_read_kernel, which fails, never faults.
    if let Ok(pid) = unsafe { ctx.read_at::<i32>(TELEMETRY_LAYOUT.load().wakeup_pid as usize) } {
        runnable(pid);
    }
    0
}

#[tracepoint]
pub fn vigil_sched_switch(ctx: TracePointContext) -> u32 {
    let l = TELEMETRY_LAYOUT.load();
    // SAFETY: `ctx` is the sched_switch record and the `switch_*` offsets are those of its
    // `prev_pid`, `prev_state` and `next_pid` fields in this kernel's format; `read_at`
    // copies with bpf_probe_read_kernel (fails, never faults) into plain integers.
    let (prev, prev_state, next) = unsafe {
        (
            ctx.read_at::<i32>(l.switch_prev_pid as usize).unwrap_or(0),
            ctx.read_at::<i64>(l.switch_prev_state as usize)
                .unwrap_or(-1),
            ctx.read_at::<i32>(l.switch_next_pid as usize).unwrap_or(0),
        )
    };
    let Some(pending) = RUNQ_PENDING.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: `pending` is this CPU's element of `RUNQ_PENDING` and `h` this CPU's copy of a
    // live `RUNQ` value; only this tracepoint program uses either, and tracepoint programs
    // never nest on a CPU (`bpf_prog_active`), so the accesses are exclusive. `RUNNABLE_SINCE`
    // is shared by every CPU: its `get` is copied out at once (a value another CPU rewrites
    // meanwhile only skews one sample). bpf_get_current_cgroup_id and bpf_ktime_get_ns take
    // no arguments.
    unsafe {
        if prev > 0 && (*pending).pid == prev as u32 {
            let cgroup = bpf_get_current_cgroup_id();
            if let Some(h) = get_or_insert!(RUNQ, &cgroup, &LatencyHist::ZERO, map_slot::RUNQ) {
                record(&mut *h, (*pending).latency_ns);
            }
        }
        (*pending).pid = 0;
        if prev_state == TASK_RUNNING {
            runnable(prev);
        }
        if next > 0 {
            let key = next as u32;
            if let Some(since) = RUNNABLE_SINCE.get(key).copied() {
                let _ = RUNNABLE_SINCE.remove(key);
                (*pending).pid = key;
                (*pending).latency_ns = bpf_ktime_get_ns().saturating_sub(since);
            }
        }
    }
    0
}
