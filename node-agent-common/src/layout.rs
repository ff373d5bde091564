//! Tracepoint field offsets, read by the agent from tracefs `format` files at load time and
//! written into the eBPF object as a read-only global before loading.
//!
//! Tracepoint layouts are not kernel ABI (`oom:mark_victim` gained fields in 6.x and
//! `sched_process_exit` gained `group_dead`), so hard-coding offsets would silently read
//! garbage on another kernel. The verifier sees these as constants.

use core::mem::size_of;

/// Marks a field this kernel's tracepoint does not have.
pub const FIELD_ABSENT: u32 = u32::MAX;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TracepointLayout {
    /// `sched:sched_process_exec` `__data_loc char[] filename`.
    pub exec_filename: u32,
    /// `syscalls:sys_enter_exit_group` `error_code`.
    pub exit_group_code: u32,
    /// `sched:sched_process_exit` `group_dead` (bool), or [`FIELD_ABSENT`].
    pub process_exit_group_dead: u32,
    /// `signal:signal_deliver` `sig`.
    pub signal_sig: u32,
    /// `signal:signal_deliver` `sa_handler`.
    pub signal_sa_handler: u32,
    /// `oom:mark_victim` fields.
    pub oom_pid: u32,
    /// `__data_loc char[] comm`, or [`FIELD_ABSENT`] on kernels without it.
    pub oom_comm: u32,
    pub oom_total_vm: u32,
    pub oom_anon_rss: u32,
    pub oom_file_rss: u32,
    pub oom_shmem_rss: u32,
    pub oom_uid: u32,
    pub oom_score_adj: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<TracepointLayout>() == 56);

impl TracepointLayout {
    /// All fields absent: what the object holds until the agent overrides it.
    pub const fn absent() -> Self {
        Self {
            exec_filename: FIELD_ABSENT,
            exit_group_code: FIELD_ABSENT,
            process_exit_group_dead: FIELD_ABSENT,
            signal_sig: FIELD_ABSENT,
            signal_sa_handler: FIELD_ABSENT,
            oom_pid: FIELD_ABSENT,
            oom_comm: FIELD_ABSENT,
            oom_total_vm: FIELD_ABSENT,
            oom_anon_rss: FIELD_ABSENT,
            oom_file_rss: FIELD_ABSENT,
            oom_shmem_rss: FIELD_ABSENT,
            oom_uid: FIELD_ABSENT,
            oom_score_adj: FIELD_ABSENT,
            _pad: 0,
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), only u32 fields, no implicit padding (size asserted above).
unsafe impl aya::Pod for TracepointLayout {}
