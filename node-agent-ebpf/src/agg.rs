//! Helpers for adding into aggregate maps: get-or-create with insert counting, atomic adds,
//! histogram updates.

use node_agent_common::{log2_bucket, LatencyHist};

use crate::maps::MAP_INSERTS;

/// `BPF_NOEXIST`: create only; a concurrent creator on another CPU wins and we use its entry.
pub const BPF_NOEXIST: u64 = 1;

/// Counts one new key in an aggregate map (for eviction accounting in user space).
#[inline(always)]
pub fn count_insert(slot: u32) {
    if let Some(n) = MAP_INSERTS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU while we run.
        unsafe { *n += 1 };
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

/// Adds to a counter other CPUs may be adding to at the same time.
///
/// # Safety
/// `counter` must point into a live map value.
#[inline(always)]
pub unsafe fn atomic_add(counter: *mut u64, v: u64) {
    // `core::sync::atomic` has no read-modify-write on the BPF target; the intrinsic lowers
    // to the BPF atomic add instruction. SAFETY: caller guarantees a valid, aligned map field.
    #[cfg(target_arch = "bpf")]
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            counter, v,
        )
    };
    // Host builds (cargo check/clippy of the workspace) only type-check this crate.
    #[cfg(not(target_arch = "bpf"))]
    unsafe {
        core::sync::atomic::AtomicU64::from_ptr(counter)
            .fetch_add(v, core::sync::atomic::Ordering::Relaxed)
    };
}

/// Records one latency into a per-CPU histogram (no atomics needed).
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
