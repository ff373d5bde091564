//! Helpers for adding into aggregate maps: get-or-create with insert counting, atomic adds,
//! histogram updates.
//!
//! When a plain `+=` is enough and when it is not: two programs race on one CPU's copy of a
//! per-CPU value only if one can run while the other is interrupted on that CPU.
//! - Tracepoint programs never nest with one another: `trace_call_bpf` skips a program when
//!   this CPU's `bpf_prog_active` is already taken (kernel/trace/bpf_trace.c).
//! - A raw tracepoint program is not re-entered on its CPU either (`__bpf_trace_run` checks the
//!   program's per-CPU `active` count), and `sys_enter`/`sys_exit` only fire in process
//!   context at a syscall boundary, never from an interrupt.
//! - cgroup_skb programs do interrupt the others: ingress runs in softirq (NET_RX, bottom
//!   halves disabled), and egress runs in the sending task's context with bottom halves
//!   enabled, so a softirq (an incoming packet, or an ACK or retransmission sent from a
//!   timer) may run a cgroup_skb program on the same CPU in the middle of a tracepoint, raw
//!   tracepoint or egress program.
//!
//! So a counter written both by a cgroup_skb program and by anything else (or by egress,
//! which can be interrupted by egress from softirq) needs an atomic add even in a per-CPU
//! map; a counter only one non-nesting program writes does not.

use node_agent_common::{log2_bucket, LatencyHist};

use crate::maps::MAP_INSERTS;

/// `BPF_NOEXIST`: create only; a concurrent creator on another CPU wins and we use its entry.
pub const BPF_NOEXIST: u64 = 1;

/// Counts one new key in an aggregate map (for eviction accounting in user space).
///
/// Every kind of program calls this, among them the cgroup_skb programs, which can interrupt
/// a tracepoint program on the same CPU between its load and its store (both count
/// `map_slot::FLOWS`): the per-CPU slot is therefore added to atomically.
#[inline(always)]
pub fn count_insert(slot: u32) {
    if let Some(n) = MAP_INSERTS.get_ptr_mut(slot) {
        // SAFETY: `get_ptr_mut` returned this CPU's element of `MAP_INSERTS`, a preallocated
        // array slot that lives as long as the map and is 8-byte aligned; the add is atomic,
        // so a program interrupting this one on the CPU cannot lose its increment or ours.
        unsafe { atomic_add(n, 1) };
    }
}

/// The entry for `$key` in `$map`, created from `$init` if missing. Evaluates to
/// `Option<*mut V>`. A macro because aya's hash map types share no trait.
macro_rules! get_or_insert {
    ($map:expr, $key:expr, $init:expr, $slot:expr) => {{
        match $map.get_ptr_mut($key) {
            Some(p) => Some(p),
            None => {
                if $map.insert($key, $init, $crate::agg::BPF_NOEXIST).is_ok() {
                    $crate::agg::count_insert($slot);
                }
                $map.get_ptr_mut($key)
            }
        }
    }};
}
pub(crate) use get_or_insert;

/// Adds to a counter other CPUs, or a program interrupting this one, may be adding to at the
/// same time. Lowers to the BPF atomic add (`lock *(u64 *)(r + off) += r`).
///
/// # Safety
/// `counter` must point to an 8-byte aligned `u64` inside a live map value.
#[inline(always)]
pub unsafe fn atomic_add(counter: *mut u64, v: u64) {
    // `core::sync::atomic` offers no read-modify-write on the BPF target (it has no
    // compare-and-swap, so `target_has_atomic = "64"` is unset and `AtomicU64::fetch_add` does
    // not exist there); the intrinsic lowers to the BPF atomic add instruction.
    #[cfg(target_arch = "bpf")]
    // SAFETY: the caller guarantees an aligned `u64` in a live map value; the kernel keeps
    // map values mapped for as long as the program runs.
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            counter, v,
        )
    };
    // Host builds (cargo check/clippy of the workspace) only type-check this crate.
    #[cfg(not(target_arch = "bpf"))]
    // SAFETY: as above; `AtomicU64::from_ptr` needs exactly an aligned, live `u64`.
    unsafe {
        core::sync::atomic::AtomicU64::from_ptr(counter)
            .fetch_add(v, core::sync::atomic::Ordering::Relaxed)
    };
}

/// Records one latency into a per-CPU histogram with plain adds: only for a histogram that a
/// single program writes and that no program interrupting it on the CPU touches (see the
/// module comment).
#[inline(always)]
pub fn record(hist: &mut LatencyHist, ns: u64) {
    hist.count += 1;
    hist.sum_ns += ns;
    let b = log2_bucket(ns);
    // `log2_bucket` is < HIST_BUCKETS; the check is for the verifier.
    if let Some(slot) = hist.buckets.get_mut(b) {
        *slot = slot.wrapping_add(1);
    }
}

/// Records one latency into a histogram several programs (or CPUs) may add to at once.
///
/// # Safety
/// `hist` must point to a `LatencyHist` inside a live map value.
#[inline(always)]
pub unsafe fn record_atomic(hist: *mut LatencyHist, ns: u64) {
    // SAFETY: the caller guarantees a live `LatencyHist`; its fields are aligned.
    unsafe {
        atomic_add(&raw mut (*hist).count, 1);
        atomic_add(&raw mut (*hist).sum_ns, ns);
        let b = log2_bucket(ns);
        // `log2_bucket` is < HIST_BUCKETS; the check is for the verifier.
        if b < node_agent_common::HIST_BUCKETS {
            atomic_add32(&raw mut (*hist).buckets[b], 1);
        }
    }
}

/// [`atomic_add`] on a `u32` (the BPF atomic add has a 32-bit form).
///
/// # Safety
/// `counter` must point to a 4-byte aligned `u32` inside a live map value.
#[inline(always)]
pub unsafe fn atomic_add32(counter: *mut u32, v: u32) {
    #[cfg(target_arch = "bpf")]
    // SAFETY: as for `atomic_add`.
    unsafe {
        core::intrinsics::atomic_xadd::<u32, u32, { core::intrinsics::AtomicOrdering::Relaxed }>(
            counter, v,
        )
    };
    #[cfg(not(target_arch = "bpf"))]
    // SAFETY: as for `atomic_add`.
    unsafe {
        core::sync::atomic::AtomicU32::from_ptr(counter)
            .fetch_add(v, core::sync::atomic::Ordering::Relaxed)
    };
}
