//! Every syscall's count, failures by errno and latency, per cgroup, in per-CPU maps. The
//! ring buffer never sees a syscall: user space drains the aggregates each interval.
//!
//! Raw tracepoints: the kernel hands over (regs, id) and (regs, ret) directly, without
//! building a trace record, which halves the cost per syscall. The entry time lives in a
//! per-CPU slot; only a task switched out mid-syscall has its
//! entry moved to a hash map (`vigil_syscall_switch`), so the common path costs no hash
//! update.
//!
//! Latency is sampled: one call in `SYSCALL_SAMPLE_MASK + 1`, drawn at random at entry, is
//! timed (user space scales its histogram back up). Every failure is counted, sampled or
//! not. An unsampled call that succeeds costs two slot accesses and no clock, cgroup or
//! hash-map work — most of what each syscall paid before (per-program figures in
//! `reports/overhead.md`). Random, not every n-th: a loop of n syscalls would otherwise have
//! the same one timed each time.

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_prandom_u32, bpf_ktime_get_ns,
    },
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use node_agent_common::{
    map_slot, LatencyHist, SyscallErrorKey, SyscallKey, SyscallStart, SyscallStats,
};

use crate::{
    agg::{get_or_insert, record},
    maps::{
        NORETURN_SYSCALLS, SYSCALLS, SYSCALL_CURRENT, SYSCALL_ERRORS, SYSCALL_SAMPLE_MASK,
        SYSCALL_START, TELEMETRY_LAYOUT,
    },
};

/// Return values in `[-MAX_ERRNO, -1]` are errors (include/linux/err.h).
const MAX_ERRNO: i64 = 4095;

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn vigil_sys_enter(ctx: RawTracePointContext) -> i32 {
    // TP_PROTO(struct pt_regs *regs, long id)
    let nr: i64 = ctx.arg(1);
    if nr < 0 {
        return 0;
    }
    let Some(slot) = SYSCALL_CURRENT.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: `slot` is this CPU's element of `SYSCALL_CURRENT`, which lives as long as the
    // map. Its users (sys_enter, sys_exit, the sched_switch program) never run nested in one
    // another on a CPU: syscall boundaries are not crossed from interrupts, and a BPF program
    // never schedules. bpf_ktime_get_ns and bpf_get_prandom_u32 take no arguments.
    unsafe {
        // `exit` and `exit_group` never return: nothing to time (see `NoReturnSyscalls`).
        if NORETURN_SYSCALLS.load().contains(nr as u64) {
            (*slot).tid = 0;
            return 0;
        }
        let mask = SYSCALL_SAMPLE_MASK.load();
        let timed = mask == 0 || bpf_get_prandom_u32() & mask == 0;
        (*slot).tid = bpf_get_current_pid_tgid() as u32;
        (*slot).start = SyscallStart {
            // 0: not timed (the monotonic clock is never 0 at a syscall).
            ktime_ns: if timed { bpf_ktime_get_ns() } else { 0 },
            nr: nr as u64,
        };
    }
    0
}

/// `EXIT_DEAD | EXIT_ZOMBIE` as `sched_switch` reports `prev_state` (include/linux/sched.h).
const EXITED: i64 = 0x10 | 0x20;

/// A task leaving the CPU inside a syscall: park its entry by thread id. A task leaving it
/// for good (inside `exit`/`exit_group`, which never return) is not parked: its entry would
/// wait in the map for the thread id to be reused, and then time that thread's first
/// syscall from the dead one's exit — seconds of latency that never happened.
#[tracepoint]
pub fn vigil_syscall_switch(ctx: TracePointContext) -> u32 {
    let l = TELEMETRY_LAYOUT.load();
    let Some(slot) = SYSCALL_CURRENT.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: `slot` is this CPU's `SYSCALL_CURRENT` element, used only by programs that do
    // not nest with this one (see `vigil_sys_enter`). `ctx` is the sched_switch record and the
    // `switch_prev_*` offsets those of its `prev_pid` and `prev_state` fields in this kernel's
    // format; `read_at` copies with bpf_probe_read_kernel, which fails, never faults.
    unsafe {
        if (*slot).tid == 0 {
            return 0;
        }
        let prev = ctx.read_at::<i32>(l.switch_prev_pid as usize).unwrap_or(0);
        let state = ctx
            .read_at::<i64>(l.switch_prev_state as usize)
            .unwrap_or(0);
        if prev as u32 == (*slot).tid && state & EXITED == 0 {
            let _ = SYSCALL_START.insert((*slot).tid, (*slot).start, 0);
        }
        (*slot).tid = 0;
    }
    0
}

/// The entry of the syscall the current thread is leaving.
#[inline(always)]
fn take_start(tid: u32) -> Option<SyscallStart> {
    let slot = SYSCALL_CURRENT.get_ptr_mut(0)?;
    // SAFETY: `slot` is this CPU's `SYSCALL_CURRENT` element, used only by programs that do
    // not nest with this one (see `vigil_sys_enter`).
    unsafe {
        if (*slot).tid == tid {
            (*slot).tid = 0;
            return Some((*slot).start);
        }
    }
    // SAFETY: `get` is unsafe because another CPU may remove or reuse the element while the
    // reference lives; only this thread writes its key, and the plain-integer value is
    // copied out at once.
    let start = unsafe { SYSCALL_START.get(tid).copied() }?;
    let _ = SYSCALL_START.remove(tid);
    Some(start)
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn vigil_sys_exit(ctx: RawTracePointContext) -> i32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    let Some(start) = take_start(tid) else {
        return 0;
    };
    // TP_PROTO(struct pt_regs *regs, long ret)
    let ret: i64 = ctx.arg(1);
    let failed = (-MAX_ERRNO..0).contains(&ret);
    let timed = start.ktime_ns != 0;
    if !timed && !failed {
        return 0;
    }
    // SAFETY: bpf_ktime_get_ns and bpf_get_current_cgroup_id take no arguments; they read the
    // monotonic clock and the calling task's cgroup.
    let (now, cgroup) = unsafe { (bpf_ktime_get_ns(), bpf_get_current_cgroup_id()) };
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
    if let Some(s) = get_or_insert!(SYSCALLS, &key, &init, map_slot::SYSCALLS) {
        // SAFETY: `s` is this CPU's copy of a live `SYSCALLS` value. Only this program writes
        // `SYSCALLS`, and it is not re-entered on a CPU (it runs at a syscall's return, never
        // from an interrupt), so plain adds cannot lose an update.
        unsafe {
            if timed {
                record(&mut (*s).latency, now.saturating_sub(start.ktime_ns));
            }
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
            // SAFETY: `n` is this CPU's copy of a live `SYSCALL_ERRORS` value, written only by
            // this program, which does not nest with itself (as for `SYSCALLS` above).
            unsafe { *n += 1 };
        }
    }
    0
}
