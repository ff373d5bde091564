//! `oom:mark_victim`: the kernel's OOM killer picked a process to kill.

use aya_ebpf::{
    helpers::bpf_probe_read_kernel_str_bytes, macros::tracepoint, programs::TracePointContext,
    EbpfContext,
};
use node_agent_common::{EventKind, OomKill, FIELD_ABSENT};

use crate::{
    emit::{fill_header, reserve},
    maps::TP_LAYOUT,
};

#[tracepoint]
pub fn vigil_oom_mark_victim(ctx: TracePointContext) -> u32 {
    match try_mark_victim(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

fn try_mark_victim(ctx: &TracePointContext) -> Result<u32, u32> {
    let l = TP_LAYOUT.load();
    let Some(mut entry) = reserve::<OomKill>(EventKind::OomKill) else {
        return Ok(0);
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points at the record `reserve` just took from the ring buffer: sized
    // and aligned for `OomKill`, and ours alone until `submit`. `ctx` is the mark_victim
    // record the kernel passed; each `l.oom_*` is the offset of that field in this kernel's
    // format (read by the agent at load time), and `read_at` copies with
    // bpf_probe_read_kernel, which fails instead of faulting. `comm` is a `__data_loc`: its
    // low 16 bits are the string's offset from the record start, so `src` stays inside the
    // record, and bpf_probe_read_kernel_str_bytes writes at most `victim_comm.len()` bytes.
    unsafe {
        fill_header(&mut (*event).header, EventKind::OomKill);
        let e = &mut *event;
        e.victim_pid = ctx.read_at::<i32>(l.oom_pid as usize).unwrap_or(0) as u32;
        e.victim_uid = ctx.read_at::<u32>(l.oom_uid as usize).unwrap_or(0);
        e.total_vm_kb = ctx.read_at::<u64>(l.oom_total_vm as usize).unwrap_or(0);
        e.anon_rss_kb = ctx.read_at::<u64>(l.oom_anon_rss as usize).unwrap_or(0);
        e.file_rss_kb = ctx.read_at::<u64>(l.oom_file_rss as usize).unwrap_or(0);
        e.shmem_rss_kb = ctx.read_at::<u64>(l.oom_shmem_rss as usize).unwrap_or(0);
        e.oom_score_adj = i32::from(ctx.read_at::<i16>(l.oom_score_adj as usize).unwrap_or(0));
        e._pad = 0;
        e.victim_comm[0] = 0;
        if l.oom_comm != FIELD_ABSENT {
            if let Ok(loc) = ctx.read_at::<u32>(l.oom_comm as usize) {
                let src = ctx.as_ptr().cast::<u8>().add((loc & 0xffff) as usize);
                let _ = bpf_probe_read_kernel_str_bytes(src, &mut e.victim_comm);
            }
        }
    }
    entry.submit(0);
    Ok(0)
}
