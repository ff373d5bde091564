//! The probe table, one declaration per group: the config switch that turns the group off, its
//! programs and where each attaches, and the field offsets its programs read from those
//! tracepoints' `format` files. The layout reader (`layout.rs`) and the attach loop
//! (`mod.rs`) derive everything from [`GROUPS`]: adding a probe touches one entry here (and
//! the eBPF program).

use node_agent_common::TracepointLayout;

use std::path::Path;

use super::{
    layout::{sock_tuple, Formats, GroupFailures, LayoutError, Layouts},
    spec::{Attach, ProbeGroup, ProbeSpec, Switch},
};
use crate::config::TelemetryConfig;

/// Fills in a group's offsets from the formats of the tracepoints it attaches to.
pub type LayoutFn = fn(&Formats, &mut Layouts) -> Result<(), LayoutError>;

/// One probe group, declared once.
#[derive(Debug, Clone, Copy)]
pub struct GroupSpec {
    pub group: ProbeGroup,
    /// `None`: always on, and the agent does not start when this kernel lacks what the group
    /// reads. A group with a switch that cannot run is reported as not attached instead.
    pub switch: Option<Switch>,
    pub probes: &'static [ProbeSpec],
    /// May only read the formats of the tracepoints in `probes` (`Formats::get` refuses
    /// others), so what the group reads and what it attaches to cannot drift apart.
    pub layout: LayoutFn,
}

impl GroupSpec {
    pub fn enabled(&self, t: &TelemetryConfig) -> bool {
        self.switch.is_none_or(|s| (s.enabled)(t))
    }
}

const fn tp(program: &'static str, category: &'static str, name: &'static str) -> ProbeSpec {
    ProbeSpec {
        program,
        attach: Attach::Tracepoint { category, name },
    }
}

const fn raw_tp(program: &'static str, category: &'static str, name: &'static str) -> ProbeSpec {
    ProbeSpec {
        program,
        attach: Attach::RawTracepoint { category, name },
    }
}

const fn skb(program: &'static str, egress: bool) -> ProbeSpec {
    ProbeSpec {
        program,
        attach: Attach::CgroupSkb { egress },
    }
}

const fn uprobe(program: &'static str, symbol: &'static str, ret: bool) -> ProbeSpec {
    ProbeSpec {
        program,
        attach: Attach::Uprobe { symbol, ret },
    }
}

/// The syscalls OpenSSL's socket IO ends in (and curl's own BIO: `send`/`recv` are
/// `sendto`/`recvfrom`): inside an OpenSSL call, their `fd` is the connection's socket.
const TLS_IO_SYSCALLS: [&str; 8] = [
    "sys_enter_read",
    "sys_enter_write",
    "sys_enter_readv",
    "sys_enter_writev",
    "sys_enter_sendto",
    "sys_enter_recvfrom",
    "sys_enter_sendmsg",
    "sys_enter_recvmsg",
];

pub const GROUPS: &[GroupSpec] = &[
    GroupSpec {
        group: ProbeGroup::Process,
        switch: None,
        probes: &[
            tp("vigil_process_exec", "sched", "sched_process_exec"),
            tp("vigil_exit_group", "syscalls", "sys_enter_exit_group"),
            tp("vigil_signal_deliver", "signal", "signal_deliver"),
            tp("vigil_signal_generate", "signal", "signal_generate"),
            tp("vigil_execve_enter", "syscalls", "sys_enter_execve"),
            tp("vigil_execve_exit", "syscalls", "sys_exit_execve"),
            tp("vigil_process_fork", "sched", "sched_process_fork"),
            tp("vigil_process_exit", "sched", "sched_process_exit"),
            tp("vigil_oom_mark_victim", "oom", "mark_victim"),
        ],
        layout: |f, l| {
            let exec = f.get("sched", "sched_process_exec")?;
            let exit_group = f.get("syscalls", "sys_enter_exit_group")?;
            let process_exit = f.get("sched", "sched_process_exit")?;
            let deliver = f.get("signal", "signal_deliver")?;
            let generate = f.get("signal", "signal_generate")?;
            let execve_enter = f.get("syscalls", "sys_enter_execve")?;
            let execve_exit = f.get("syscalls", "sys_exit_execve")?;
            let fork = f.get("sched", "sched_process_fork")?;
            let oom = f.get("oom", "mark_victim")?;
            l.process = TracepointLayout {
                exec_filename: exec.offset("filename")?,
                exit_group_code: exit_group.offset("error_code")?,
                process_exit_group_dead: process_exit.optional_offset("group_dead"),
                signal_sig: deliver.offset("sig")?,
                signal_sa_handler: deliver.offset("sa_handler")?,
                oom_pid: oom.offset("pid")?,
                oom_comm: oom.optional_offset("comm"),
                oom_total_vm: oom.offset("total_vm")?,
                oom_anon_rss: oom.offset("anon_rss")?,
                oom_file_rss: oom.offset("file_rss")?,
                oom_shmem_rss: oom.offset("shmem_rss")?,
                oom_uid: oom.offset("uid")?,
                oom_score_adj: oom.offset("oom_score_adj")?,
                generate_sig: generate.offset("sig")?,
                generate_code: generate.offset("code")?,
                generate_pid: generate.offset("pid")?,
                generate_result: generate.offset("result")?,
                execve_filename: execve_enter.offset("filename")?,
                execve_ret: execve_exit.offset("ret")?,
                fork_child_pid: fork.offset("child_pid")?,
                _pad: 0,
            };
            Ok(())
        },
    },
    GroupSpec {
        group: ProbeGroup::Network,
        switch: Some(Switch {
            key: "telemetry.network",
            enabled: |t| t.network,
        }),
        probes: &[
            tp("vigil_inet_sock_set_state", "sock", "inet_sock_set_state"),
            tp("vigil_tcp_retransmit", "tcp", "tcp_retransmit_skb"),
            tp("vigil_tcp_receive_reset", "tcp", "tcp_receive_reset"),
            tp("vigil_tcp_send_reset", "tcp", "tcp_send_reset"),
            tp("vigil_tcp_probe", "tcp", "tcp_probe"),
            skb("vigil_skb_ingress", false),
            skb("vigil_skb_egress", true),
        ],
        layout: |f, l| {
            let state = f.get("sock", "inet_sock_set_state")?;
            let probe = f.get("tcp", "tcp_probe")?;
            let t = &mut l.telemetry;
            t.state = sock_tuple(state)?;
            t.state_old = state.offset("oldstate")?;
            t.state_new = state.offset("newstate")?;
            t.state_protocol = state.offset("protocol")?;
            t.retransmit = sock_tuple(f.get("tcp", "tcp_retransmit_skb")?)?;
            t.receive_reset = sock_tuple(f.get("tcp", "tcp_receive_reset")?)?;
            t.send_reset = sock_tuple(f.get("tcp", "tcp_send_reset")?)?;
            t.probe = sock_tuple(probe)?;
            t.probe_srtt = probe.offset("srtt")?;
            Ok(())
        },
    },
    GroupSpec {
        group: ProbeGroup::Syscalls,
        switch: Some(Switch {
            key: "telemetry.syscalls",
            enabled: |t| t.syscalls,
        }),
        probes: &[
            raw_tp("vigil_sys_enter", "raw_syscalls", "sys_enter"),
            raw_tp("vigil_sys_exit", "raw_syscalls", "sys_exit"),
            tp("vigil_syscall_switch", "sched", "sched_switch"),
        ],
        // The raw tracepoints take no offsets: their arguments are (regs, id) and (regs, ret).
        layout: |f, l| {
            let switch = f.get("sched", "sched_switch")?;
            l.telemetry.switch_prev_pid = switch.offset("prev_pid")?;
            l.telemetry.switch_prev_state = switch.offset("prev_state")?;
            Ok(())
        },
    },
    GroupSpec {
        group: ProbeGroup::RunQueue,
        switch: Some(Switch {
            key: "telemetry.runqueue",
            enabled: |t| t.runqueue,
        }),
        probes: &[
            // One program serves both wakeups (their layouts have always matched; checked).
            tp("vigil_sched_wakeup", "sched", "sched_wakeup"),
            tp("vigil_sched_wakeup", "sched", "sched_wakeup_new"),
            tp("vigil_sched_switch", "sched", "sched_switch"),
        ],
        layout: |f, l| {
            let wakeup = f.get("sched", "sched_wakeup")?.offset("pid")?;
            let wakeup_new = f.get("sched", "sched_wakeup_new")?.offset("pid")?;
            if wakeup_new != wakeup {
                return Err(LayoutError::Mismatch {
                    field: "pid",
                    tracepoint: "sched:sched_wakeup_new",
                    offset: wakeup_new,
                    like: "sched:sched_wakeup",
                    expected: wakeup,
                });
            }
            let switch = f.get("sched", "sched_switch")?;
            let t = &mut l.telemetry;
            t.wakeup_pid = wakeup;
            t.switch_prev_pid = switch.offset("prev_pid")?;
            t.switch_prev_state = switch.offset("prev_state")?;
            t.switch_next_pid = switch.offset("next_pid")?;
            Ok(())
        },
    },
    GroupSpec {
        group: ProbeGroup::BlockIo,
        switch: Some(Switch {
            key: "telemetry.block_io",
            enabled: |t| t.block_io,
        }),
        probes: &[
            tp("vigil_block_rq_issue", "block", "block_rq_issue"),
            tp("vigil_block_rq_complete", "block", "block_rq_complete"),
        ],
        layout: |f, l| {
            let issue = f.get("block", "block_rq_issue")?;
            let complete = f.get("block", "block_rq_complete")?;
            let t = &mut l.telemetry;
            t.rq_issue_dev = issue.offset("dev")?;
            t.rq_issue_sector = issue.offset("sector")?;
            t.rq_complete_dev = complete.offset("dev")?;
            t.rq_complete_sector = complete.offset("sector")?;
            Ok(())
        },
    },
    GroupSpec {
        group: ProbeGroup::Requests,
        switch: Some(Switch {
            key: "telemetry.requests",
            enabled: |t| t.network && t.requests,
        }),
        // Programs of their own beside the byte counters (cgroups take several): each has
        // the whole 512-byte BPF stack, and the switch turns parsing off without a rebuild.
        probes: &[skb("vigil_l7_ingress", false), skb("vigil_l7_egress", true)],
        // cgroup_skb reads packets, not trace records: no offsets.
        layout: |_, _| Ok(()),
    },
    GroupSpec {
        group: ProbeGroup::Tls,
        switch: Some(Switch {
            key: "telemetry.tls",
            enabled: |t| t.network && t.requests && t.tls,
        }),
        // `SSL_read_ex`/`SSL_write_ex` (OpenSSL 1.1.1+, used by Python and others) do not call
        // `SSL_read`/`SSL_write` nor the reverse, so both pairs are probed and nothing is seen
        // twice.
        probes: &[
            uprobe("vigil_ssl_write", "SSL_write", false),
            uprobe("vigil_ssl_write_ex", "SSL_write_ex", false),
            uprobe("vigil_ssl_read", "SSL_read", false),
            uprobe("vigil_ssl_read_ex", "SSL_read_ex", false),
            uprobe("vigil_ssl_write_ret", "SSL_write", true),
            uprobe("vigil_ssl_write_ret", "SSL_write_ex", true),
            uprobe("vigil_ssl_read_ret", "SSL_read", true),
            uprobe("vigil_ssl_read_ret", "SSL_read_ex", true),
            uprobe("vigil_ssl_free", "SSL_free", false),
            // `SSL_connect`/`SSL_accept` call `SSL_do_handshake`; the inner return ends the
            // call, which is harmless (the fd is learnt by then).
            uprobe("vigil_ssl_handshake", "SSL_do_handshake", false),
            uprobe("vigil_ssl_handshake", "SSL_connect", false),
            uprobe("vigil_ssl_handshake", "SSL_accept", false),
            uprobe("vigil_ssl_handshake_ret", "SSL_do_handshake", true),
            uprobe("vigil_ssl_handshake_ret", "SSL_connect", true),
            uprobe("vigil_ssl_handshake_ret", "SSL_accept", true),
            tp("vigil_tls_fd", "syscalls", TLS_IO_SYSCALLS[0]),
            tp("vigil_tls_fd", "syscalls", TLS_IO_SYSCALLS[1]),
            tp("vigil_tls_fd", "syscalls", TLS_IO_SYSCALLS[2]),
            tp("vigil_tls_fd", "syscalls", TLS_IO_SYSCALLS[3]),
            tp("vigil_tls_fd", "syscalls", TLS_IO_SYSCALLS[4]),
            tp("vigil_tls_fd", "syscalls", TLS_IO_SYSCALLS[5]),
            tp("vigil_tls_fd", "syscalls", TLS_IO_SYSCALLS[6]),
            tp("vigil_tls_fd", "syscalls", TLS_IO_SYSCALLS[7]),
        ],
        // One program reads `fd` from all eight: their offsets must agree.
        layout: |f, l| {
            let first = f.get("syscalls", TLS_IO_SYSCALLS[0])?.offset("fd")?;
            for &name in &TLS_IO_SYSCALLS[1..] {
                let offset = f.get("syscalls", name)?.offset("fd")?;
                if offset != first {
                    return Err(LayoutError::Mismatch {
                        field: "fd",
                        tracepoint: name,
                        offset,
                        like: TLS_IO_SYSCALLS[0],
                        expected: first,
                    });
                }
            }
            l.telemetry.io_fd = first;
            Ok(())
        },
    },
];

/// Every probe of every group, in declaration order.
pub fn probes() -> impl Iterator<Item = (&'static GroupSpec, &'static ProbeSpec)> {
    GROUPS
        .iter()
        .flat_map(|g| g.probes.iter().map(move |p| (g, p)))
}

/// This kernel's offsets for every group in `groups`. A group that is always on (no switch)
/// and cannot be read fails the whole read; any other group that cannot keeps
/// `FIELD_ABSENT` offsets (none of its writes are kept) and is returned in the failures.
pub fn read_layouts(
    tracefs: &Path,
    groups: &[GroupSpec],
) -> Result<(Layouts, GroupFailures), LayoutError> {
    let mut layouts = Layouts::absent();
    let mut failed = GroupFailures::new();
    for spec in groups {
        let mut candidate = layouts;
        let result = Formats::read(tracefs, spec.group, spec.probes)
            .map_err(LayoutError::from)
            .and_then(|formats| (spec.layout)(&formats, &mut candidate));
        match result {
            Ok(()) => layouts = candidate,
            Err(e) if spec.switch.is_none() => return Err(e),
            Err(e) => {
                failed.insert(spec.group, std::sync::Arc::new(e));
            }
        }
    }
    Ok((layouts, failed))
}
