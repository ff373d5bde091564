//! Loading the embedded eBPF object and attaching each probe.
//!
//! Probes come in groups (process lifecycle, network, syscalls, run queue, block IO). Each
//! group can be switched off in the config; a group whose tracepoints this kernel lacks is
//! reported as not attached, with the reason, and the others run.

use std::{
    collections::HashMap,
    fs::File,
    path::{Path, PathBuf},
};

use aya::{
    programs::{
        cgroup_skb::CgroupSkbAttachType, CgroupAttachMode, CgroupSkb, RawTracePoint, TracePoint,
    },
    Ebpf, EbpfLoader,
};
use node_agent_common::{
    SockTupleLayout, TelemetryLayout, TracepointLayout, TUPLE_SOCKADDR, TUPLE_SPLIT,
};
use tracing::{info, warn};

use super::tracefs::{TracefsError, TracepointFormat};
use crate::config::TelemetryConfig;

/// The eBPF object built by `cargo xtask build-ebpf`, embedded at compile time.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(env!("VIGIL_EBPF_OBJECT_PATH"));

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeGroup {
    Process,
    Network,
    Syscalls,
    RunQueue,
    BlockIo,
}

impl ProbeGroup {
    /// The config switch that turns the group off.
    fn config_key(self) -> &'static str {
        match self {
            Self::Process => "(always on)",
            Self::Network => "telemetry.network",
            Self::Syscalls => "telemetry.syscalls",
            Self::RunQueue => "telemetry.runqueue",
            Self::BlockIo => "telemetry.block_io",
        }
    }

    fn enabled(self, t: &TelemetryConfig) -> bool {
        match self {
            Self::Process => true,
            Self::Network => t.network,
            Self::Syscalls => t.syscalls,
            Self::RunQueue => t.runqueue,
            Self::BlockIo => t.block_io,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Attach {
    Tracepoint {
        category: &'static str,
        name: &'static str,
    },
    /// A raw tracepoint: the tracepoint's arguments, no trace record (cheaper).
    RawTracepoint { name: &'static str },
    /// On the cgroup v2 root, so every socket of the node is seen.
    CgroupSkb { egress: bool },
}

/// One program of the object and where it attaches.
#[derive(Debug, Clone, Copy)]
pub struct ProbeSpec {
    pub program: &'static str,
    pub group: ProbeGroup,
    pub attach: Attach,
}

impl ProbeSpec {
    pub fn name(&self) -> String {
        match self.attach {
            Attach::Tracepoint { category, name } => format!("{category}:{name}"),
            Attach::RawTracepoint { name } => format!("raw_tp:{name}"),
            Attach::CgroupSkb { egress: false } => "cgroup_skb/ingress".into(),
            Attach::CgroupSkb { egress: true } => "cgroup_skb/egress".into(),
        }
    }
}

const fn tp(
    program: &'static str,
    group: ProbeGroup,
    category: &'static str,
    name: &'static str,
) -> ProbeSpec {
    ProbeSpec {
        program,
        group,
        attach: Attach::Tracepoint { category, name },
    }
}

use ProbeGroup::{BlockIo, Network, Process, RunQueue, Syscalls};

pub const PROBES: &[ProbeSpec] = &[
    tp("vigil_process_exec", Process, "sched", "sched_process_exec"),
    tp(
        "vigil_exit_group",
        Process,
        "syscalls",
        "sys_enter_exit_group",
    ),
    tp("vigil_signal_deliver", Process, "signal", "signal_deliver"),
    tp("vigil_process_exit", Process, "sched", "sched_process_exit"),
    tp("vigil_oom_mark_victim", Process, "oom", "mark_victim"),
    tp(
        "vigil_inet_sock_set_state",
        Network,
        "sock",
        "inet_sock_set_state",
    ),
    tp("vigil_tcp_retransmit", Network, "tcp", "tcp_retransmit_skb"),
    tp(
        "vigil_tcp_receive_reset",
        Network,
        "tcp",
        "tcp_receive_reset",
    ),
    tp("vigil_tcp_send_reset", Network, "tcp", "tcp_send_reset"),
    tp("vigil_tcp_probe", Network, "tcp", "tcp_probe"),
    ProbeSpec {
        program: "vigil_skb_ingress",
        group: Network,
        attach: Attach::CgroupSkb { egress: false },
    },
    ProbeSpec {
        program: "vigil_skb_egress",
        group: Network,
        attach: Attach::CgroupSkb { egress: true },
    },
    ProbeSpec {
        program: "vigil_sys_enter",
        group: Syscalls,
        attach: Attach::RawTracepoint { name: "sys_enter" },
    },
    ProbeSpec {
        program: "vigil_sys_exit",
        group: Syscalls,
        attach: Attach::RawTracepoint { name: "sys_exit" },
    },
    tp("vigil_syscall_switch", Syscalls, "sched", "sched_switch"),
    tp("vigil_sched_wakeup", RunQueue, "sched", "sched_wakeup"),
    tp("vigil_sched_wakeup", RunQueue, "sched", "sched_wakeup_new"),
    tp("vigil_sched_switch", RunQueue, "sched", "sched_switch"),
    tp("vigil_block_rq_issue", BlockIo, "block", "block_rq_issue"),
    tp(
        "vigil_block_rq_complete",
        BlockIo,
        "block",
        "block_rq_complete",
    ),
];

/// Whether one probe is running, and why not.
#[derive(Debug, Clone)]
pub struct ProbeStatus {
    pub name: String,
    pub group: ProbeGroup,
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading tracepoint layouts from tracefs")]
    Layout(#[from] TracefsError),
    #[error(
        "loading the eBPF object failed; it needs root (CAP_BPF + CAP_PERFMON) and a kernel \
         with BPF ring buffers (5.8+)"
    )]
    Load {
        #[source]
        source: aya::EbpfError,
    },
    #[error("no probe could be attached: {0}")]
    NothingAttached(String),
    #[error("probe {probe} could not be attached: {reason} (kernel.require_all_probes is set)")]
    ProbeRequired { probe: String, reason: String },
}

/// Reads the offsets of every field the process programs use from this kernel's tracefs.
pub fn read_layout(tracefs: &Path) -> Result<TracepointLayout, TracefsError> {
    let exec = TracepointFormat::read(tracefs, "sched", "sched_process_exec")?;
    let exit_group = TracepointFormat::read(tracefs, "syscalls", "sys_enter_exit_group")?;
    let process_exit = TracepointFormat::read(tracefs, "sched", "sched_process_exit")?;
    let deliver = TracepointFormat::read(tracefs, "signal", "signal_deliver")?;
    let oom = TracepointFormat::read(tracefs, "oom", "mark_victim")?;
    Ok(TracepointLayout {
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
        _pad: 0,
    })
}

/// Where a TCP tracepoint keeps its 4-tuple: whole `sockaddr`s (28-byte `saddr`) or split
/// fields.
fn sock_tuple(f: &TracepointFormat) -> Result<SockTupleLayout, TracefsError> {
    let saddr = f.field("saddr");
    if saddr.is_some_and(|s| s.size >= 16) {
        return Ok(SockTupleLayout {
            mode: TUPLE_SOCKADDR,
            saddr: f.offset("saddr")?,
            daddr: f.offset("daddr")?,
            ..SockTupleLayout::absent()
        });
    }
    Ok(SockTupleLayout {
        mode: TUPLE_SPLIT,
        sport: f.offset("sport")?,
        dport: f.offset("dport")?,
        family: f.offset("family")?,
        saddr: f.offset("saddr")?,
        daddr: f.offset("daddr")?,
        saddr_v6: f.offset("saddr_v6")?,
        daddr_v6: f.offset("daddr_v6")?,
    })
}

/// Offsets for the telemetry programs, group by group. A group whose tracepoints or fields
/// are missing keeps `FIELD_ABSENT` offsets and is reported in the returned map.
pub fn read_telemetry_layout(tracefs: &Path) -> (TelemetryLayout, HashMap<ProbeGroup, String>) {
    let mut l = TelemetryLayout::absent();
    let mut failed = HashMap::new();
    let read = |c: &str, n: &str| TracepointFormat::read(tracefs, c, n);
    let network = (|| -> Result<(), TracefsError> {
        let state = read("sock", "inet_sock_set_state")?;
        let probe = read("tcp", "tcp_probe")?;
        l.state = sock_tuple(&state)?;
        l.state_old = state.offset("oldstate")?;
        l.state_new = state.offset("newstate")?;
        l.state_protocol = state.offset("protocol")?;
        l.retransmit = sock_tuple(&read("tcp", "tcp_retransmit_skb")?)?;
        l.receive_reset = sock_tuple(&read("tcp", "tcp_receive_reset")?)?;
        l.send_reset = sock_tuple(&read("tcp", "tcp_send_reset")?)?;
        l.probe = sock_tuple(&probe)?;
        l.probe_srtt = probe.offset("srtt")?;
        Ok(())
    })();
    let syscalls = (|| -> Result<(), TracefsError> {
        // The raw tracepoints take no offsets; the tracepoints must exist all the same.
        read("raw_syscalls", "sys_enter")?;
        read("raw_syscalls", "sys_exit")?;
        let switch = read("sched", "sched_switch")?;
        l.switch_prev_pid = switch.offset("prev_pid")?;
        l.switch_prev_state = switch.offset("prev_state")?;
        Ok(())
    })();
    let runqueue = (|| -> Result<(), TracefsError> {
        l.wakeup_pid = read("sched", "sched_wakeup")?.offset("pid")?;
        let new = read("sched", "sched_wakeup_new")?.offset("pid")?;
        if new != l.wakeup_pid {
            // One program serves both; their layouts have always matched.
            return Err(TracefsError::MissingField {
                tracepoint: "sched:sched_wakeup_new".into(),
                field: "pid (at the same offset as in sched_wakeup)".into(),
                path: tracefs.display().to_string(),
            });
        }
        let switch = read("sched", "sched_switch")?;
        l.switch_prev_pid = switch.offset("prev_pid")?;
        l.switch_prev_state = switch.offset("prev_state")?;
        l.switch_next_pid = switch.offset("next_pid")?;
        Ok(())
    })();
    let block_io = (|| -> Result<(), TracefsError> {
        let issue = read("block", "block_rq_issue")?;
        let complete = read("block", "block_rq_complete")?;
        l.rq_issue_dev = issue.offset("dev")?;
        l.rq_issue_sector = issue.offset("sector")?;
        l.rq_complete_dev = complete.offset("dev")?;
        l.rq_complete_sector = complete.offset("sector")?;
        Ok(())
    })();
    for (group, result) in [
        (Network, network),
        (Syscalls, syscalls),
        (RunQueue, runqueue),
        (BlockIo, block_io),
    ] {
        if let Err(e) = result {
            failed.insert(group, vigil_config_file::error_chain(&e));
        }
    }
    (l, failed)
}

/// The loaded object with every probe it could attach.
pub struct LoadedProbes {
    pub ebpf: Ebpf,
    pub status: Vec<ProbeStatus>,
}

/// What `load_and_attach` needs from the config.
pub struct LoadOptions<'a> {
    pub tracefs: &'a Path,
    /// The cgroup v2 mount, for the cgroup_skb programs; `None` when the host has none.
    pub cgroup2_root: Option<PathBuf>,
    pub ring_buffer_bytes: u32,
    pub require_all: bool,
    pub telemetry: &'a TelemetryConfig,
}

/// Loads the object with this kernel's layouts and attaches every enabled probe. A probe that
/// cannot attach is reported (and logged) but does not stop the others unless `require_all`.
pub fn load_and_attach(opts: &LoadOptions<'_>) -> Result<LoadedProbes, LoadError> {
    let layout = read_layout(opts.tracefs)?;
    let (telemetry, layout_errors) = read_telemetry_layout(opts.tracefs);
    let mut loader = EbpfLoader::new();
    loader
        .override_global("TP_LAYOUT", &layout, true)
        .override_global("TELEMETRY_LAYOUT", &telemetry, true)
        .map_max_entries("EVENTS", opts.ring_buffer_bytes);
    for (map, _, size) in opts.telemetry.maps.entries() {
        loader.map_max_entries(map, size);
    }
    let mut ebpf = loader
        .load(EBPF_OBJECT)
        .map_err(|source| LoadError::Load { source })?;

    let mut status = Vec::with_capacity(PROBES.len());
    for spec in PROBES {
        let result = if !spec.group.enabled(opts.telemetry) {
            Err(format!("disabled by {} = false", spec.group.config_key()))
        } else if let Some(reason) = layout_errors.get(&spec.group) {
            Err(format!("this kernel lacks what the probe reads: {reason}"))
        } else {
            attach(&mut ebpf, spec, opts.cgroup2_root.as_deref())
        };
        let enabled = spec.group.enabled(opts.telemetry);
        match &result {
            Ok(()) => info!(probe = %spec.name(), "probe attached"),
            Err(reason) if enabled => {
                warn!(probe = %spec.name(), %reason, "probe not attached");
                if opts.require_all {
                    return Err(LoadError::ProbeRequired {
                        probe: spec.name(),
                        reason: reason.clone(),
                    });
                }
            }
            Err(_) => {}
        }
        status.push(ProbeStatus {
            name: spec.name(),
            group: spec.group,
            error: result.err(),
        });
    }
    if status.iter().all(|s| s.error.is_some()) {
        let reasons: Vec<String> = status
            .iter()
            .filter_map(|s| s.error.as_ref().map(|e| format!("{}: {e}", s.name)))
            .collect();
        return Err(LoadError::NothingAttached(reasons.join("; ")));
    }
    Ok(LoadedProbes { ebpf, status })
}

fn attach(ebpf: &mut Ebpf, spec: &ProbeSpec, cgroup2: Option<&Path>) -> Result<(), String> {
    let program = ebpf
        .program_mut(spec.program)
        .ok_or_else(|| format!("program {} is missing from the eBPF object", spec.program))?;
    match spec.attach {
        Attach::Tracepoint { category, name } => {
            let program: &mut TracePoint = program
                .try_into()
                .map_err(|e| format!("program {} is not a tracepoint: {e}", spec.program))?;
            // One program may serve several tracepoints (sched_wakeup and _new).
            if program.fd().is_err() {
                program
                    .load()
                    .map_err(|e| format!("the verifier rejected {}: {e}", spec.program))?;
            }
            program
                .attach(category, name)
                .map(|_link| ())
                .map_err(|e| format!("attaching to {}: {e}", spec.name()))
        }
        Attach::RawTracepoint { name } => {
            let program: &mut RawTracePoint = program
                .try_into()
                .map_err(|e| format!("program {} is not a raw tracepoint: {e}", spec.program))?;
            program
                .load()
                .map_err(|e| format!("the verifier rejected {}: {e}", spec.program))?;
            program
                .attach(name)
                .map(|_link| ())
                .map_err(|e| format!("attaching to raw tracepoint {name}: {e}"))
        }
        Attach::CgroupSkb { egress } => {
            let root = cgroup2.ok_or_else(|| {
                "no cgroup2 hierarchy is mounted (mount one, e.g. at /sys/fs/cgroup/unified)"
                    .to_string()
            })?;
            let cgroup = File::open(root)
                .map_err(|e| format!("opening the cgroup2 root {}: {e}", root.display()))?;
            let program: &mut CgroupSkb = program
                .try_into()
                .map_err(|e| format!("program {} is not cgroup_skb: {e}", spec.program))?;
            program
                .load()
                .map_err(|e| format!("the verifier rejected {}: {e}", spec.program))?;
            let kind = if egress {
                CgroupSkbAttachType::Egress
            } else {
                CgroupSkbAttachType::Ingress
            };
            // aya attaches through a bpf_link (5.7+), which always coexists with other tools'
            // programs on the root cgroup; the kernel refuses explicit flags on cgroup links.
            program
                .attach(cgroup, kind, CgroupAttachMode::Single)
                .map(|_link| ())
                .map_err(|e| {
                    format!(
                        "attaching to {}: {}",
                        root.display(),
                        vigil_config_file::error_chain(&e)
                    )
                })
        }
    }
}
