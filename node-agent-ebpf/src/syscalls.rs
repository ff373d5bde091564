//! Every syscall's count, failures by errno and latency, per cgroup, in per-CPU maps. The
//! ring buffer never sees a syscall: user space drains the aggregates each interval.

use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::tracepoint,
    programs::TracePointContext,
};
use node_agent_common::{
    map_slot, LatencyHist, SyscallErrorKey, SyscallKey, SyscallStart, SyscallStats,
};

use crate::{
    agg::{get_or_insert, record},
    maps::{SYSCALLS, SYSCALL_ERRORS, SYSCALL_START, TELEMETRY_LAYOUT},
};

/// Return values in `[-MAX_ERRNO, -1]` are errors (include/linux/err.h).
const MAX_ERRNO: i64 = 4095;

#[tracepoint]
pub fn vigil_sys_enter(ctx: TracePointContext) -> u32 {
    let l = TELEMETRY_LAYOUT.load();
    // SAFETY: offset from tracefs.
    let Ok(nr) = (unsafe { ctx.read_at::<i64>(l.sys_enter_id as usize) }) else {
        return 0;
    };
    if nr < 0 {
        return 0;
    }
    let tid = bpf_get_current_pid_tgid() as u32;
    let start = SyscallStart {
        // SAFETY: helper without preconditions.
        ktime_ns: unsafe { bpf_ktime_get_ns() },
        nr: nr as u64,
    };
    let _ = SYSCALL_START.insert(&tid, &start, 0);
    0
}

#[tracepoint]
pub fn vigil_sys_exit(ctx: TracePointContext) -> u32 {
    let l = TELEMETRY_LAYOUT.load();
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: copied out before removal.
    let Some(start) = (unsafe { SYSCALL_START.get(&tid).copied() }) else {
        return 0;
    };
    let _ = SYSCALL_START.remove(&tid);
    // SAFETY: offset from tracefs; helpers without preconditions.
    let (ret, now, cgroup) = unsafe {
        (
            ctx.read_at::<i64>(l.sys_exit_ret as usize).unwrap_or(0),
            bpf_ktime_get_ns(),
            bpf_get_current_cgroup_id(),
        )
    };
    let nr = start.nr as u32;
    let key = SyscallKey {
        cgroup_id: cgroup,
        nr,
        _pad: 0,
    };
    let init = SyscallStats {
        errors: 0,
        latency: LatencyHist::ZERO,
    };
    let failed = (-MAX_ERRNO..0).contains(&ret);
    if let Some(s) = get_or_insert!(SYSCALLS, &key, &init, map_slot::SYSCALLS) {
        // SAFETY: this CPU's copy of the value.
        unsafe {
            record(&mut (*s).latency, now.saturating_sub(start.ktime_ns));
            if failed {
                (*s).errors += 1;
            }
        }
    }
    if failed {
        let key = SyscallErrorKey {
            cgroup_id: cgroup,
            nr,
            errno: (-ret) as u32,
        };
        if let Some(n) = get_or_insert!(SYSCALL_ERRORS, &key, &0u64, map_slot::SYSCALL_ERRORS) {
            // SAFETY: this CPU's copy of the value.
            unsafe { *n += 1 };
        }
    }
    0
}
