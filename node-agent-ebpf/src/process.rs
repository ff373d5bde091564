//! Process lifecycle: exec, exit code, fatal signals, and the final exit of a thread group.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel_str_bytes},
    macros::tracepoint,
    programs::TracePointContext,
    EbpfContext,
};
use node_agent_common::{
    EventKind, PendingExit, ProcessExec, ProcessExit, EXIT_FLAG_CODE, EXIT_FLAG_SIGNALED,
    FIELD_ABSENT,
};

use crate::{
    emit::{fill_header, reserve},
    maps::{PENDING_EXITS, TP_LAYOUT},
};

#[tracepoint]
pub fn vigil_process_exec(ctx: TracePointContext) -> u32 {
    match try_process_exec(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

fn try_process_exec(ctx: &TracePointContext) -> Result<u32, u32> {
    let layout = TP_LAYOUT.load();
    let Some(mut entry) = reserve::<ProcessExec>(EventKind::ProcessExec) else {
        return Ok(0);
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points at a reserved, exclusively owned record of the right size.
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
pub fn vigil_exit_group(ctx: TracePointContext) -> u32 {
    match try_exit_group(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

fn try_exit_group(ctx: &TracePointContext) -> Result<u32, u32> {
    let layout = TP_LAYOUT.load();
    // SAFETY: offset comes from this kernel's tracefs format for this tracepoint.
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
    // SAFETY: offsets come from this kernel's tracefs format for this tracepoint.
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
        // SAFETY: offset from this kernel's tracefs format.
        unsafe { ctx.read_at::<u8>(layout.process_exit_group_dead as usize) }.map_err(|_| 0u32)?
            != 0
    };
    if !group_dead {
        return Ok(0);
    }
    // SAFETY: the value is copied out before the entry is removed.
    let pending = unsafe { PENDING_EXITS.get(tgid) }
        .copied()
        .unwrap_or_default();
    let _ = PENDING_EXITS.remove(tgid);

    let Some(mut entry) = reserve::<ProcessExit>(EventKind::ProcessExit) else {
        return Ok(0);
    };
    let event = entry.as_mut_ptr();
    // SAFETY: exclusively owned reserved record.
    unsafe {
        fill_header(&mut (*event).header, EventKind::ProcessExit);
        (*event).exit_code = pending.exit_code;
        (*event).signal = pending.signal;
        (*event).flags = pending.flags;
        (*event)._pad = 0;
    }
    entry.submit(0);
    Ok(0)
}
