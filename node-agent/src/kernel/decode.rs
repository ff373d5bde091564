//! Turning ring-buffer records into typed kernel events, checking sizes before reading.

use std::mem::size_of;

use node_agent_common::{
    DnsFailure, EventHeader, EventKind, ExecFailure, OomKill, ProcessExec, ProcessExit,
    EXIT_FLAG_CODE, EXIT_FLAG_SIGNALED,
};

/// A decoded kernel record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    Exec {
        task: TaskInfo,
        filename: String,
    },
    Exit {
        task: TaskInfo,
        exit_code: Option<i32>,
        signal: Option<u32>,
        /// The process that sent the fatal signal: (tgid, comm).
        killed_by: Option<(u32, String)>,
    },
    Oom {
        task: TaskInfo,
        victim: OomVictim,
    },
    /// A process ended without running the program its last `execve` named.
    ExecFailure {
        task: TaskInfo,
        errno: i32,
        parent_tgid: Option<u32>,
        filename: String,
    },
    /// A failing DNS answer; `task` carries only the asking socket's cgroup.
    DnsFailure {
        task: TaskInfo,
        rcode: u16,
        query_id: u16,
        server: std::net::IpAddr,
        /// Wire-format question section, possibly truncated.
        question: Vec<u8>,
    },
}

/// The task running when the probe fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    pub ktime_ns: u64,
    pub cgroup_id: u64,
    pub pid: u32,
    pub tgid: u32,
    pub comm: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomVictim {
    pub pid: u32,
    pub comm: String,
    pub uid: u32,
    pub total_vm_kb: u64,
    pub anon_rss_kb: u64,
    pub file_rss_kb: u64,
    pub shmem_rss_kb: u64,
    pub oom_score_adj: i32,
}

impl KernelEvent {
    /// The kind's name as the control plane's API names it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Exec { .. } => "process_exec",
            Self::Exit { .. } => "process_exit",
            Self::Oom { .. } => "oom_kill",
            Self::ExecFailure { .. } => "exec_failure",
            Self::DnsFailure { .. } => "dns_failure",
        }
    }

    pub fn task(&self) -> &TaskInfo {
        match self {
            Self::Exec { task, .. }
            | Self::Exit { task, .. }
            | Self::Oom { task, .. }
            | Self::ExecFailure { task, .. }
            | Self::DnsFailure { task, .. } => task,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than an event header")]
    Short { len: usize },
    #[error("unknown event kind {kind}")]
    UnknownKind { kind: u32 },
    #[error("{kind:?} record has {len} bytes, expected {expected}")]
    Size {
        kind: EventKind,
        len: usize,
        expected: usize,
    },
}

/// Reads a `T` from the start of `bytes`, which must be at least `size_of::<T>()` long.
fn read<T: aya::Pod>(bytes: &[u8], kind: EventKind) -> Result<T, DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError::Size {
            kind,
            len: bytes.len(),
            expected: size_of::<T>(),
        });
    }
    // SAFETY: length checked above; `T: Pod` accepts any bit pattern; read_unaligned because
    // the ring buffer only guarantees 8-byte alignment.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// The bytes of a NUL-terminated kernel string as UTF-8 (lossy).
pub fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn task(h: &EventHeader) -> TaskInfo {
    TaskInfo {
        ktime_ns: h.ktime_ns,
        cgroup_id: h.cgroup_id,
        pid: h.pid,
        tgid: h.tgid,
        comm: c_str(&h.comm),
    }
}

pub fn decode(bytes: &[u8]) -> Result<KernelEvent, DecodeError> {
    if bytes.len() < size_of::<EventHeader>() {
        return Err(DecodeError::Short { len: bytes.len() });
    }
    let kind_raw = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let kind = EventKind::from_u32(kind_raw).ok_or(DecodeError::UnknownKind { kind: kind_raw })?;
    Ok(match kind {
        EventKind::ProcessExec => {
            let e: ProcessExec = read(bytes, kind)?;
            KernelEvent::Exec {
                task: task(&e.header),
                filename: c_str(&e.filename),
            }
        }
        EventKind::ProcessExit => {
            let e: ProcessExit = read(bytes, kind)?;
            KernelEvent::Exit {
                task: task(&e.header),
                exit_code: (e.flags & EXIT_FLAG_CODE != 0).then_some(e.exit_code),
                signal: (e.flags & EXIT_FLAG_SIGNALED != 0).then_some(e.signal),
                killed_by: (e.killer_tgid != 0).then(|| (e.killer_tgid, c_str(&e.killer_comm))),
            }
        }
        EventKind::OomKill => {
            let e: OomKill = read(bytes, kind)?;
            KernelEvent::Oom {
                task: task(&e.header),
                victim: OomVictim {
                    pid: e.victim_pid,
                    comm: c_str(&e.victim_comm),
                    uid: e.victim_uid,
                    total_vm_kb: e.total_vm_kb,
                    anon_rss_kb: e.anon_rss_kb,
                    file_rss_kb: e.file_rss_kb,
                    shmem_rss_kb: e.shmem_rss_kb,
                    oom_score_adj: e.oom_score_adj,
                },
            }
        }
        EventKind::ExecFailure => {
            let e: ExecFailure = read(bytes, kind)?;
            KernelEvent::ExecFailure {
                task: task(&e.header),
                errno: e.errno,
                parent_tgid: (e.parent_tgid != 0).then_some(e.parent_tgid),
                filename: c_str(&e.filename),
            }
        }
        EventKind::DnsFailure => {
            let e: DnsFailure = read(bytes, kind)?;
            let len = usize::from(e.question_len).min(e.question.len());
            KernelEvent::DnsFailure {
                task: task(&e.header),
                rcode: e.rcode,
                query_id: e.query_id,
                server: crate::metrics::flows::ip(e.server_addr),
                question: e.question[..len].to_vec(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: EventKind) -> EventHeader {
        let mut comm = [0u8; 16];
        comm[..5].copy_from_slice(b"crash");
        EventHeader {
            kind: kind as u32,
            cpu: 1,
            ktime_ns: 42,
            cgroup_id: 7,
            pid: 10,
            tgid: 10,
            comm,
        }
    }

    fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: test-only view of a repr(C) POD value.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    #[test]
    fn decodes_signaled_exit() {
        let e = ProcessExit {
            header: header(EventKind::ProcessExit),
            exit_code: 0,
            signal: 15,
            flags: EXIT_FLAG_SIGNALED,
            killer_tgid: 77,
            killer_comm: *b"supervisor\0\0\0\0\0\0",
        };
        let ev = decode(&bytes_of(&e)).expect("decodes");
        assert_eq!(
            ev,
            KernelEvent::Exit {
                task: TaskInfo {
                    ktime_ns: 42,
                    cgroup_id: 7,
                    pid: 10,
                    tgid: 10,
                    comm: "crash".into()
                },
                exit_code: None,
                signal: Some(15),
                killed_by: Some((77, "supervisor".into())),
            }
        );
    }

    #[test]
    fn rejects_truncated_and_unknown_records() {
        let e = ProcessExit {
            header: header(EventKind::ProcessExit),
            exit_code: 3,
            signal: 0,
            flags: EXIT_FLAG_CODE,
            killer_tgid: 0,
            killer_comm: [0; 16],
        };
        let b = bytes_of(&e);
        assert!(matches!(decode(&b[..50]), Err(DecodeError::Size { .. })));
        assert!(matches!(decode(&b[..10]), Err(DecodeError::Short { .. })));
        let mut unknown = b.clone();
        unknown[0] = 99;
        assert_eq!(decode(&unknown), Err(DecodeError::UnknownKind { kind: 99 }));
    }
}
