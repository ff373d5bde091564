//! Process lifecycle: exec, exit code, fatal signals, and the final exit of a thread group.

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_probe_read_kernel_str_bytes,
        bpf_probe_read_user_str_bytes,
    },
    macros::tracepoint,
    programs::TracePointContext,
    EbpfContext,
};
use node_agent_common::{
    EventKind, ExecFailure, Kill, PendingExec, PendingExit, ProcessExec, ProcessExit,
    EXIT_FLAG_CODE, EXIT_FLAG_SIGNALED, FIELD_ABSENT, FILENAME_LEN,
};

use crate::{
    emit::{fill_header, reserve},
    maps::{EXECS, KILLS, PARENTS, PENDING_EXITS, TP_LAYOUT},
};

#[tracepoint]
pub fn vigil_process_exec(ctx: TracePointContext) -> u32 {
    match try_process_exec(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

fn try_process_exec(ctx: &TracePointContext) -> Result<u32, u32> {
    let layout = TP_LAYOUT.load();
    // It runs the new program: no failed exec to report at its exit.
    let _ = EXECS.remove((bpf_get_current_pid_tgid() >> 32) as u32);
    let Some(mut entry) = reserve::<ProcessExec>(EventKind::ProcessExec) else {
        return Ok(0);
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points at the record `reserve` just took from the ring buffer: sized
    // and aligned for `ProcessExec`, and ours alone until `submit`. `ctx` is the
    // sched_process_exec record; `exec_filename` is the offset of its `__data_loc filename`
    // in this kernel's format, whose low 16 bits give the string's offset from the record
    // start. `read_at` and bpf_probe_read_kernel_str_bytes fail instead of faulting on a bad
    // address, and the latter writes at most `filename.len()` bytes.
    unsafe {
        fill_header(&mut (*event).header, EventKind::ProcessExec);
        (*event).filename[0] = 0;
        // `__data_loc`: low 16 bits are the offset of the string from the record start.
        if let Ok(loc) = ctx.read_at::<u32>(layout.exec_filename as usize) {
            let src = ctx.as_ptr().cast::<u8>().add((loc & 0xffff) as usize);
            let _ = bpf_probe_read_kernel_str_bytes(src, &mut (*event).filename);
        }
    }
    entry.submit(0);
    Ok(0)
}

#[tracepoint]
pub fn vigil_process_fork(ctx: TracePointContext) -> u32 {
    let layout = TP_LAYOUT.load();
    // SAFETY: `ctx` is the sched_process_fork record and `fork_child_pid` the offset of its
    // `child_pid` field in this kernel's format; `read_at` fails instead of faulting.
    if let Ok(child) = unsafe { ctx.read_at::<i32>(layout.fork_child_pid as usize) } {
        // Runs in the parent: its tgid is the current one.
        let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
        if child > 0 && child as u32 != parent {
            let _ = PARENTS.insert(child as u32, parent, 0);
        }
    }
    0
}

#[tracepoint]
pub fn vigil_execve_enter(ctx: TracePointContext) -> u32 {
    let layout = TP_LAYOUT.load();
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let mut pending = PendingExec {
        errno: 0,
        _pad: 0,
        filename: [0; FILENAME_LEN],
    };
    // SAFETY: `ctx` is the sys_enter_execve record and `execve_filename` the offset of its
    // `const char *filename` argument; the pointer is the caller's, read with
    // bpf_probe_read_user_str_bytes, which fails instead of faulting and writes at most
    // `filename.len()` bytes.
    unsafe {
        if let Ok(ptr) = ctx.read_at::<u64>(layout.execve_filename as usize) {
            let _ = bpf_probe_read_user_str_bytes(ptr as *const u8, &mut pending.filename);
        }
    }
    let _ = EXECS.insert(tgid, pending, 0);
    0
}

#[tracepoint]
pub fn vigil_execve_exit(ctx: TracePointContext) -> u32 {
    let layout = TP_LAYOUT.load();
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: `ctx` is the sys_exit_execve record and `execve_ret` the offset of its `long
    // ret`; `read_at` fails instead of faulting.
    let Ok(ret) = (unsafe { ctx.read_at::<i64>(layout.execve_ret as usize) }) else {
        return 0;
    };
    if ret >= 0 {
        let _ = EXECS.remove(tgid);
    } else if let Some(p) = EXECS.get_ptr_mut(tgid) {
        // SAFETY: `p` points at this thread group's live entry; only its own threads write it.
        unsafe { (*p).errno = (-ret) as i32 };
    }
    0
}

#[tracepoint]
pub fn vigil_exit_group(ctx: TracePointContext) -> u32 {
    match try_exit_group(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

fn try_exit_group(ctx: &TracePointContext) -> Result<u32, u32> {
    let layout = TP_LAYOUT.load();
    // SAFETY: `ctx` is the sys_enter_exit_group record and `exit_group_code` the offset of
    // its `error_code` field in this kernel's format; `read_at` copies with
    // bpf_probe_read_kernel (fails, never faults), and any bit pattern is a valid u64.
    let code: u64 = unsafe { ctx.read_at(layout.exit_group_code as usize) }.map_err(|_| 0u32)?;
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let pending = PendingExit {
        // The wait status keeps only the low byte of the argument.
        exit_code: (code & 0xff) as i32,
        signal: 0,
        flags: EXIT_FLAG_CODE,
        _pad: 0,
    };
    let _ = PENDING_EXITS.insert(tgid, pending, 0);
    Ok(0)
}

#[tracepoint]
pub fn vigil_signal_deliver(ctx: TracePointContext) -> u32 {
    match try_signal_deliver(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

/// Signals whose default action is to ignore or stop, never to terminate (signal(7)).
#[inline(always)]
fn terminates_by_default(sig: i32) -> bool {
    // SIGCHLD 17, SIGCONT 18, SIGSTOP 19, SIGTSTP 20, SIGTTIN 21, SIGTTOU 22, SIGURG 23,
    // SIGWINCH 28.
    (1..=64).contains(&sig) && !matches!(sig, 17..=23 | 28)
}

fn try_signal_deliver(ctx: &TracePointContext) -> Result<u32, u32> {
    let layout = TP_LAYOUT.load();
    // SAFETY: `ctx` is the signal_deliver record and `signal_sig`/`signal_sa_handler` the
    // offsets of its `sig` and `sa_handler` fields in this kernel's format; `read_at` copies
    // with bpf_probe_read_kernel (fails, never faults) into plain integers.
    let (sig, handler) = unsafe {
        (
            ctx.read_at::<i32>(layout.signal_sig as usize)
                .map_err(|_| 0u32)?,
            ctx.read_at::<u64>(layout.signal_sa_handler as usize)
                .map_err(|_| 0u32)?,
        )
    };
    // SIG_DFL is 0: only a signal handled by its default action kills the process.
    if handler != 0 || !terminates_by_default(sig) {
        return Ok(0);
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let pending = PendingExit {
        exit_code: 0,
        signal: sig as u32,
        flags: EXIT_FLAG_SIGNALED,
        _pad: 0,
    };
    let _ = PENDING_EXITS.insert(tgid, pending, 0);
    Ok(0)
}

#[tracepoint]
pub fn vigil_signal_generate(ctx: TracePointContext) -> u32 {
    match try_signal_generate(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

/// `si_code`s of signals a process sent with a syscall: kill(2) (SI_USER), sigqueue(3)
/// (SI_QUEUE), tkill/tgkill (SI_TKILL). Only then is the current task the sender; the
/// kernel's own (SI_KERNEL: the OOM killer, a timer) may run in any task's context.
#[inline(always)]
fn sent_by_a_process(code: i32) -> bool {
    matches!(code, 0 | -1 | -6)
}

fn try_signal_generate(ctx: &TracePointContext) -> Result<u32, u32> {
    let layout = TP_LAYOUT.load();
    // SAFETY: `ctx` is the signal_generate record and the `generate_*` offsets are those of
    // its `sig`, `code`, `pid` and `result` fields in this kernel's format; `read_at` copies
    // with bpf_probe_read_kernel (fails, never faults) into plain integers.
    let (sig, code, target, result) = unsafe {
        (
            ctx.read_at::<i32>(layout.generate_sig as usize)
                .map_err(|_| 0u32)?,
            ctx.read_at::<i32>(layout.generate_code as usize)
                .map_err(|_| 0u32)?,
            ctx.read_at::<i32>(layout.generate_pid as usize)
                .map_err(|_| 0u32)?,
            ctx.read_at::<i32>(layout.generate_result as usize)
                .map_err(|_| 0u32)?,
        )
    };
    // TRACE_SIGNAL_DELIVERED is 0; ignored, already pending or lost signals kill nothing.
    if result != 0 || !terminates_by_default(sig) || !sent_by_a_process(code) || target <= 0 {
        return Ok(0);
    }
    let sender = (bpf_get_current_pid_tgid() >> 32) as u32;
    if sender == target as u32 {
        // raise(3), abort(3): a process ending itself is a crash, not a kill.
        return Ok(0);
    }
    let kill = Kill {
        sender_tgid: sender,
        sig: sig as u32,
        sender_comm: bpf_get_current_comm().unwrap_or([0; 16]),
    };
    let _ = KILLS.insert(target as u32, kill, 0);
    Ok(0)
}

#[tracepoint]
pub fn vigil_process_exit(ctx: TracePointContext) -> u32 {
    match try_process_exit(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

fn try_process_exit(ctx: &TracePointContext) -> Result<u32, u32> {
    let layout = TP_LAYOUT.load();
    let pid_tgid = bpf_get_current_pid_tgid();
    let (pid, tgid) = (pid_tgid as u32, (pid_tgid >> 32) as u32);
    let group_dead = if layout.process_exit_group_dead == FIELD_ABSENT {
        // Older kernels: the leader's exit is the best approximation of the group's.
        pid == tgid
    } else {
        // SAFETY: `ctx` is the sched_process_exit record and `process_exit_group_dead` (not
        // FIELD_ABSENT here) the offset of its `group_dead` bool in this kernel's format, read
        // as a u8 so no bit pattern is invalid; `read_at` fails instead of faulting.
        unsafe { ctx.read_at::<u8>(layout.process_exit_group_dead as usize) }.map_err(|_| 0u32)?
            != 0
    };
    if !group_dead {
        return Ok(0);
    }
    // SAFETY: `get` is unsafe because another CPU may remove or reuse the element while the
    // reference lives; it is copied out at once (only this thread group's exits write its
    // key), and `PendingExit` is plain integers, valid for any bit pattern.
    let pending = unsafe { PENDING_EXITS.get(tgid) }
        .copied()
        .unwrap_or_default();
    let _ = PENDING_EXITS.remove(tgid);

    let Some(mut entry) = reserve::<ProcessExit>(EventKind::ProcessExit) else {
        return Ok(0);
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points at the record `reserve` just took from the ring buffer: sized
    // and aligned for `ProcessExit`, and ours alone until `submit`.
    unsafe {
        fill_header(&mut (*event).header, EventKind::ProcessExit);
        (*event).exit_code = pending.exit_code;
        (*event).signal = pending.signal;
        (*event).flags = pending.flags;
        (*event).killer_tgid = 0;
        (*event).killer_comm = [0; 16];
    }
    if pending.flags & EXIT_FLAG_SIGNALED != 0 {
        // SAFETY: copied out at once; `Kill` is plain integers and bytes, valid for any bit
        // pattern. Another CPU may replace the entry meanwhile: then a later sender is named.
        if let Some(kill) = unsafe { KILLS.get(tgid) }.copied() {
            // SAFETY: as above, `event` is ours until `submit`.
            unsafe {
                (*event).killer_tgid = kill.sender_tgid;
                (*event).killer_comm = kill.sender_comm;
                // A fatal signal with the default action becomes a group exit, which every
                // thread dequeues as SIGKILL (complete_signal): the signal sent is the one
                // that killed it.
                (*event).signal = kill.sig;
            }
        }
    }
    let _ = KILLS.remove(tgid);
    report_failed_exec(tgid);
    let _ = PARENTS.remove(tgid);
    entry.submit(0);
    Ok(0)
}

/// At the exit of a process whose last `execve` failed (it never ran the program): one
/// `ExecFailure` record naming the file, the error and who forked it.
#[inline(always)]
fn report_failed_exec(tgid: u32) {
    // SAFETY: copied out at once; `PendingExec` is plain integers and bytes.
    let Some(pending) = (unsafe { EXECS.get(tgid) }).copied() else {
        return;
    };
    let _ = EXECS.remove(tgid);
    if pending.errno == 0 {
        return;
    }
    // SAFETY: as above; a u32.
    let parent = unsafe { PARENTS.get(tgid) }.copied().unwrap_or(0);
    let Some(mut entry) = reserve::<ExecFailure>(EventKind::ExecFailure) else {
        return;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points at the record `reserve` just took from the ring buffer: sized
    // and aligned for `ExecFailure`, and ours alone until `submit`.
    unsafe {
        fill_header(&mut (*event).header, EventKind::ExecFailure);
        (*event).errno = pending.errno;
        (*event).parent_tgid = parent;
        (*event).filename = pending.filename;
    }
    entry.submit(0);
}
