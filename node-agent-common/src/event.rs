//! Ring-buffer records. Each record starts with an [`EventHeader`] whose `kind` says which
//! struct follows; user space checks the record length against that struct before reading it.

use core::mem::size_of;

/// Length of the kernel's `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;
/// Bytes of the exec'd filename kept; longer paths are truncated (NUL-terminated).
pub const FILENAME_LEN: usize = 128;

/// Discriminant stored in [`EventHeader::kind`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    ProcessExec = 1,
    ProcessExit = 2,
    OomKill = 3,
    DnsFailure = 4,
    ExecFailure = 5,
}

impl EventKind {
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::ProcessExec),
            2 => Some(Self::ProcessExit),
            3 => Some(Self::OomKill),
            4 => Some(Self::DnsFailure),
            5 => Some(Self::ExecFailure),
            _ => None,
        }
    }
}

/// Number of slots in the per-CPU drop counter map, indexed by `EventKind as u32`.
pub const DROP_SLOTS: u32 = 6;

/// Who the kernel was running when the event fired.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EventHeader {
    pub kind: u32,
    pub cpu: u32,
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC, nanoseconds since boot (excluding suspend).
    pub ktime_ns: u64,
    /// cgroup v2 id of the current task (`bpf_get_current_cgroup_id`).
    pub cgroup_id: u64,
    /// Thread id of the current task.
    pub pid: u32,
    /// Process id (thread-group id) of the current task.
    pub tgid: u32,
    pub comm: [u8; COMM_LEN],
}
const _: () = assert!(size_of::<EventHeader>() == 48);

/// `sched:sched_process_exec`: a process replaced its image.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProcessExec {
    pub header: EventHeader,
    pub filename: [u8; FILENAME_LEN],
}
const _: () = assert!(size_of::<ProcessExec>() == 176);

/// The exit code is known (the process called `exit_group`).
pub const EXIT_FLAG_CODE: u32 = 1 << 0;
/// The process died of a fatal signal delivered with the default action.
pub const EXIT_FLAG_SIGNALED: u32 = 1 << 1;

/// A whole process (thread group) ended: emitted from `sched:sched_process_exit` when the
/// group is dead, carrying what `exit_group` and `signal_deliver` recorded before.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProcessExit {
    pub header: EventHeader,
    /// Low byte of the `exit_group` argument, valid with [`EXIT_FLAG_CODE`].
    pub exit_code: i32,
    /// Fatal signal number, valid with [`EXIT_FLAG_SIGNALED`].
    pub signal: u32,
    pub flags: u32,
    /// The process that sent the fatal signal (kill, tkill, sigqueue), 0 when none did (a
    /// crash, the kernel, the OOM killer).
    pub killer_tgid: u32,
    pub killer_comm: [u8; COMM_LEN],
}
const _: () = assert!(size_of::<ProcessExit>() == 80);

/// A process ended without ever running the program it tried to exec: emitted at its exit
/// when its last `execve` failed (a deployed binary that is not executable, missing, or not
/// permitted). The header is the exiting child's, in the cgroup it was placed in.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecFailure {
    pub header: EventHeader,
    /// The failed `execve`'s error (positive errno).
    pub errno: i32,
    /// The process that forked it (0 when the fork was not seen).
    pub parent_tgid: u32,
    pub filename: [u8; FILENAME_LEN],
}
const _: () = assert!(size_of::<ExecFailure>() == 184);

/// An `execve` in flight or failed, by tgid, until the process execs or exits.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PendingExec {
    /// 0 while in flight; the positive errno once it failed.
    pub errno: i32,
    pub _pad: u32,
    pub filename: [u8; FILENAME_LEN],
}
const _: () = assert!(size_of::<PendingExec>() == 136);

/// A fatal signal another process sent, kept by target pid until the target dies of it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Kill {
    pub sender_tgid: u32,
    pub sig: u32,
    pub sender_comm: [u8; COMM_LEN],
}
const _: () = assert!(size_of::<Kill>() == 24);

/// `oom:mark_victim`: the OOM killer chose a victim. The header describes the task that hit
/// the limit (for a memcg OOM, a task charging that memcg); the victim is described here.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OomKill {
    pub header: EventHeader,
    pub victim_pid: u32,
    pub victim_uid: u32,
    pub total_vm_kb: u64,
    pub anon_rss_kb: u64,
    pub file_rss_kb: u64,
    pub shmem_rss_kb: u64,
    pub oom_score_adj: i32,
    pub _pad: u32,
    pub victim_comm: [u8; COMM_LEN],
}
const _: () = assert!(size_of::<OomKill>() == 112);

/// What the kernel remembers about a process between `exit_group`/`signal_deliver` and its
/// final `sched_process_exit`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PendingExit {
    pub exit_code: i32,
    pub signal: u32,
    pub flags: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<PendingExit>() == 16);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all types are `repr(C)`, `Copy`, made only of integers and byte arrays, with
    // explicit padding, so every bit pattern is valid.
    unsafe impl aya::Pod for super::EventHeader {}
    unsafe impl aya::Pod for super::ProcessExec {}
    unsafe impl aya::Pod for super::ProcessExit {}
    unsafe impl aya::Pod for super::OomKill {}
    unsafe impl aya::Pod for super::PendingExit {}
    unsafe impl aya::Pod for super::Kill {}
    unsafe impl aya::Pod for super::ExecFailure {}
    unsafe impl aya::Pod for super::PendingExec {}
}
