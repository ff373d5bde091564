//! Block request latency (issue → complete) per cgroup and device. The cgroup is that of the
//! task issuing the request: the writer for direct and synchronous IO, a kernel flusher for
//! buffered writeback.

use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_ktime_get_ns},
    macros::tracepoint,
    programs::TracePointContext,
};
use node_agent_common::{map_slot, BlockKey, BlockRequest, BlockRequestKey, LatencyHist};

use crate::{
    agg::{get_or_insert, record},
    maps::{BLOCK_INFLIGHT, BLOCK_IO, TELEMETRY_LAYOUT},
};

#[inline(always)]
fn request(ctx: &TracePointContext, dev: u32, sector: u32) -> Option<BlockRequestKey> {
    // SAFETY: `ctx` is the block_rq_issue/block_rq_complete record the kernel passed, and
    // `dev`/`sector` are the offsets of its `dev` (u32) and `sector` (u64) fields in this
    // kernel's format, read by the agent at load time. `read_at` copies with
    // bpf_probe_read_kernel, which fails instead of faulting on a bad address, and any bit
    // pattern is a valid integer.
    unsafe {
        Some(BlockRequestKey {
            sector: ctx.read_at::<u64>(sector as usize).ok()?,
            dev: ctx.read_at::<u32>(dev as usize).ok()?,
            _pad: 0,
        })
    }
}

#[tracepoint]
pub fn vigil_block_rq_issue(ctx: TracePointContext) -> u32 {
    let l = TELEMETRY_LAYOUT.load();
    if let Some(key) = request(&ctx, l.rq_issue_dev, l.rq_issue_sector) {
        // SAFETY: bpf_ktime_get_ns and bpf_get_current_cgroup_id take no arguments; they read
        // the monotonic clock and the issuing task's cgroup.
        let req = unsafe {
            BlockRequest {
                ktime_ns: bpf_ktime_get_ns(),
                cgroup_id: bpf_get_current_cgroup_id(),
            }
        };
        let _ = BLOCK_INFLIGHT.insert(key, req, 0);
    }
    0
}

#[tracepoint]
pub fn vigil_block_rq_complete(ctx: TracePointContext) -> u32 {
    let l = TELEMETRY_LAYOUT.load();
    let Some(key) = request(&ctx, l.rq_complete_dev, l.rq_complete_sector) else {
        return 0;
    };
    // SAFETY: `get` is unsafe because another CPU may remove or reuse the element while we
    // hold the reference; it is copied out at once, and a torn copy of these two integers
    // only makes one latency sample wrong.
    let Some(req) = (unsafe { BLOCK_INFLIGHT.get(key).copied() }) else {
        return 0;
    };
    let _ = BLOCK_INFLIGHT.remove(key);
    let hkey = BlockKey {
        cgroup_id: req.cgroup_id,
        dev: key.dev,
        _pad: 0,
    };
    if let Some(h) = get_or_insert!(BLOCK_IO, &hkey, &LatencyHist::ZERO, map_slot::BLOCK_IO) {
        // SAFETY: `h` is this CPU's copy of a live `BLOCK_IO` value. Only this tracepoint
        // program writes `BLOCK_IO`, and tracepoint programs never nest on a CPU
        // (`bpf_prog_active`), so the `&mut` is exclusive. bpf_ktime_get_ns takes no
        // arguments.
        unsafe { record(&mut *h, bpf_ktime_get_ns().saturating_sub(req.ktime_ns)) };
    }
    0
}
