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
    /// `signal:signal_generate` fields (in the sender's context): `sig`, `code` (who sent
    /// it: a process's kill/tkill/sigqueue, or the kernel), target `pid`, `result`.
    pub generate_sig: u32,
    pub generate_code: u32,
    pub generate_pid: u32,
    pub generate_result: u32,
    /// `syscalls:sys_enter_execve` `filename`, `syscalls:sys_exit_execve` `ret`,
    /// `sched:sched_process_fork` `child_pid`.
    pub execve_filename: u32,
    pub execve_ret: u32,
    pub fork_child_pid: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<TracepointLayout>() == 84);

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
            generate_sig: FIELD_ABSENT,
            generate_code: FIELD_ABSENT,
            generate_pid: FIELD_ABSENT,
            generate_result: FIELD_ABSENT,
            execve_filename: FIELD_ABSENT,
            execve_ret: FIELD_ABSENT,
            fork_child_pid: FIELD_ABSENT,
            _pad: 0,
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), only u32 fields, no implicit padding (size asserted above).
unsafe impl aya::Pod for TracepointLayout {}

/// Where a tracepoint keeps a TCP socket's addresses and ports. Older tracepoints have split
/// fields (`sport`, `saddr`, `saddr_v6`, …); newer ones (`tcp_send_reset`, the address part of
/// `tcp_probe`) carry whole `sockaddr_in`/`sockaddr_in6` records in `saddr`/`daddr`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockTupleLayout {
    /// [`TUPLE_SPLIT`] or [`TUPLE_SOCKADDR`].
    pub mode: u32,
    /// Host-order ports and the address family (split mode only).
    pub sport: u32,
    pub dport: u32,
    pub family: u32,
    /// IPv4 addresses in split mode, `sockaddr` records in sockaddr mode.
    pub saddr: u32,
    pub daddr: u32,
    /// IPv6 addresses (split mode only).
    pub saddr_v6: u32,
    pub daddr_v6: u32,
}
const _: () = assert!(size_of::<SockTupleLayout>() == 32);

pub const TUPLE_SPLIT: u32 = 0;
pub const TUPLE_SOCKADDR: u32 = 1;

impl SockTupleLayout {
    pub const fn absent() -> Self {
        Self {
            mode: FIELD_ABSENT,
            sport: FIELD_ABSENT,
            dport: FIELD_ABSENT,
            family: FIELD_ABSENT,
            saddr: FIELD_ABSENT,
            daddr: FIELD_ABSENT,
            saddr_v6: FIELD_ABSENT,
            daddr_v6: FIELD_ABSENT,
        }
    }
}

/// Field offsets of the network, syscall, block and scheduler tracepoints.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelemetryLayout {
    /// `sock:inet_sock_set_state`.
    pub state: SockTupleLayout,
    pub state_old: u32,
    pub state_new: u32,
    pub state_protocol: u32,
    /// `tcp:tcp_probe` `srtt` (microseconds).
    pub probe_srtt: u32,
    /// `tcp:tcp_retransmit_skb`, `tcp:tcp_receive_reset`, `tcp:tcp_send_reset`, `tcp:tcp_probe`.
    pub retransmit: SockTupleLayout,
    pub receive_reset: SockTupleLayout,
    pub send_reset: SockTupleLayout,
    pub probe: SockTupleLayout,
    /// `block:block_rq_issue` / `block_rq_complete` `dev` and `sector`.
    pub rq_issue_dev: u32,
    pub rq_issue_sector: u32,
    pub rq_complete_dev: u32,
    pub rq_complete_sector: u32,
    /// `sched:sched_wakeup(_new)` `pid`; `sched:sched_switch` `prev_pid`, `prev_state`,
    /// `next_pid`.
    pub wakeup_pid: u32,
    pub switch_prev_pid: u32,
    pub switch_prev_state: u32,
    pub switch_next_pid: u32,
    /// `fd` of `syscalls:sys_enter_{read,write,readv,writev,sendto,recvfrom,sendmsg,recvmsg}`
    /// (one offset: the TLS group checks they agree).
    pub io_fd: u32,
}
const _: () = assert!(size_of::<TelemetryLayout>() == 5 * 32 + 13 * 4);

impl TelemetryLayout {
    pub const fn absent() -> Self {
        Self {
            state: SockTupleLayout::absent(),
            state_old: FIELD_ABSENT,
            state_new: FIELD_ABSENT,
            state_protocol: FIELD_ABSENT,
            probe_srtt: FIELD_ABSENT,
            retransmit: SockTupleLayout::absent(),
            receive_reset: SockTupleLayout::absent(),
            send_reset: SockTupleLayout::absent(),
            probe: SockTupleLayout::absent(),
            rq_issue_dev: FIELD_ABSENT,
            rq_issue_sector: FIELD_ABSENT,
            rq_complete_dev: FIELD_ABSENT,
            rq_complete_sector: FIELD_ABSENT,
            wakeup_pid: FIELD_ABSENT,
            switch_prev_pid: FIELD_ABSENT,
            switch_prev_state: FIELD_ABSENT,
            switch_next_pid: FIELD_ABSENT,
            io_fd: FIELD_ABSENT,
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), only u32 fields, no implicit padding (size asserted above).
unsafe impl aya::Pod for TelemetryLayout {}
