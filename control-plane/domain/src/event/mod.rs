//! Kernel events as the control plane understands them (already validated).

pub mod ports;

use serde::{Deserialize, Serialize};

use crate::entity::EntityId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadKind {
    Host,
    KubernetesContainer,
    Container,
    SystemdUnit,
    Cgroup,
}

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::KubernetesContainer => "kubernetes_container",
            Self::Container => "container",
            Self::SystemdUnit => "systemd_unit",
            Self::Cgroup => "cgroup",
        }
    }
}

/// Another process an event names (the sender of a fatal signal, the parent of a child):
/// its pid, comm and workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRef {
    pub pid: u32,
    pub comm: String,
    /// Its workload, when the agent saw it alive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<EntityId>,
}

/// Which workload an event belongs to, as the agent attributed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    /// The workload's entity id in the service graph.
    pub key: EntityId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_runtime: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    pub cgroup_path: String,
    pub is_root_process: bool,
}

/// The task the kernel was running (for an OOM kill: the one that hit the limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRef {
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub comm: String,
    pub cgroup_id: u64,
    pub cgroup_path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    ProcessExec {
        filename: String,
    },
    ProcessExit {
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        signal: Option<u32>,
        /// How long the process ran, when the agent knew when it started.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lifetime_ms: Option<u64>,
        /// The process that sent the fatal signal (none for a crash or the kernel's own).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        killed_by: Option<ProcessRef>,
    },
    OomKill {
        victim_pid: u32,
        victim_comm: String,
        victim_uid: u32,
        total_vm_kb: u64,
        anon_rss_kb: u64,
        file_rss_kb: u64,
        shmem_rss_kb: u64,
        oom_score_adj: i32,
    },
    /// A DNS answer with a failing rcode, attributed to the asking workload.
    DnsFailure {
        rcode: u32,
        rcode_name: String,
        query_name: String,
        query_type: u32,
        server: String,
    },
    /// A process ended without running the program its last `execve` named.
    ExecFailure {
        filename: String,
        errno: u32,
        errno_name: String,
        /// Who forked it (a runtime, a supervisor), when the fork was seen.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<ProcessRef>,
    },
}

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::ProcessExec { .. } => "process_exec",
            Self::ProcessExit { .. } => "process_exit",
            Self::OomKill { .. } => "oom_kill",
            Self::DnsFailure { .. } => "dns_failure",
            Self::ExecFailure { .. } => "exec_failure",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelEvent {
    pub node: String,
    pub seq: u64,
    pub kernel_time_ns: u64,
    pub time_unix_ns: i64,
    pub task: TaskRef,
    pub workload: WorkloadRef,
    pub kind: EventKind,
}

impl KernelEvent {
    /// A process ended abnormally: killed by a signal, or a non-zero exit code.
    /// A stop its own parent asked for is not one (see [`Self::is_orderly_stop`]).
    pub fn is_crash(&self) -> bool {
        match &self.kind {
            EventKind::ProcessExit {
                signal: Some(_), ..
            } => !self.is_orderly_stop(),
            EventKind::ProcessExit {
                exit_code: Some(code),
                ..
            } => *code != 0,
            _ => false,
        }
    }

    /// The process's own parent — the supervisor or init that started it — asked it to stop
    /// (SIGTERM, SIGINT or SIGHUP) and it did: a restart, a rollout or a shutdown its manager
    /// chose, which the manager's own records explain. The same signal from anyone else (an
    /// operator's `kill`, a chaos tool, a stray script) is a kill, and SIGKILL is one even
    /// from the parent: it is what a supervisor sends when a stop hangs. Container runtimes
    /// signal through `runc kill`, not the container's parent, so their stops still read as
    /// kills. The parent is the one known at exec or at the agent's start.
    pub fn is_orderly_stop(&self) -> bool {
        matches!(
            &self.kind,
            EventKind::ProcessExit {
                signal: Some(sig),
                killed_by: Some(sender),
                ..
            } if is_stop_signal(*sig) && sender.pid == self.task.ppid
        )
    }
}

/// An event as stored, with when it reached the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredEvent {
    #[serde(flatten)]
    pub event: KernelEvent,
    pub received_unix_ns: i64,
    pub stored_unix_ns: i64,
}

/// SIGHUP, SIGINT or SIGTERM: a request to stop, which a process may handle, unlike the
/// signals that end it outright (SIGKILL) or report a fault (SIGSEGV).
pub fn is_stop_signal(sig: u32) -> bool {
    matches!(sig, 1 | 2 | 15)
}

/// Signal names for display (x86-64/arm64 numbering).
pub fn signal_name(sig: u32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        31 => "SIGSYS",
        _ => "signal",
    }
}
