//! Loading the embedded eBPF object and attaching each probe to its tracepoint.

use std::path::Path;

use aya::{programs::TracePoint, Ebpf, EbpfLoader};
use node_agent_common::TracepointLayout;
use tracing::{info, warn};

use super::tracefs::{TracefsError, TracepointFormat};

/// The eBPF object built by `cargo xtask build-ebpf`, embedded at compile time.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(env!("VIGIL_EBPF_OBJECT_PATH"));

/// One program of the object and the tracepoint it attaches to.
#[derive(Debug, Clone, Copy)]
pub struct ProbeSpec {
    pub program: &'static str,
    pub category: &'static str,
    pub tracepoint: &'static str,
}

impl ProbeSpec {
    pub fn name(&self) -> String {
        format!("{}:{}", self.category, self.tracepoint)
    }
}

pub const PROBES: &[ProbeSpec] = &[
    ProbeSpec {
        program: "vigil_process_exec",
        category: "sched",
        tracepoint: "sched_process_exec",
    },
    ProbeSpec {
        program: "vigil_exit_group",
        category: "syscalls",
        tracepoint: "sys_enter_exit_group",
    },
    ProbeSpec {
        program: "vigil_signal_deliver",
        category: "signal",
        tracepoint: "signal_deliver",
    },
    ProbeSpec {
        program: "vigil_process_exit",
        category: "sched",
        tracepoint: "sched_process_exit",
    },
    ProbeSpec {
        program: "vigil_oom_mark_victim",
        category: "oom",
        tracepoint: "mark_victim",
    },
];

/// Whether one probe is running, and why not.
#[derive(Debug, Clone)]
pub struct ProbeStatus {
    pub name: String,
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

/// Reads the offsets of every field the programs use from this kernel's tracefs.
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

/// The loaded object with every probe it could attach.
pub struct LoadedProbes {
    pub ebpf: Ebpf,
    pub status: Vec<ProbeStatus>,
}

/// Loads the object with this kernel's layout and attaches every probe. A probe that cannot
/// attach is reported (and logged) but does not stop the others unless `require_all`.
pub fn load_and_attach(
    tracefs: &Path,
    ring_buffer_bytes: u32,
    require_all: bool,
) -> Result<LoadedProbes, LoadError> {
    let layout = read_layout(tracefs)?;
    let mut ebpf = EbpfLoader::new()
        .override_global("TP_LAYOUT", &layout, true)
        .map_max_entries("EVENTS", ring_buffer_bytes)
        .load(EBPF_OBJECT)
        .map_err(|source| LoadError::Load { source })?;

    let mut status = Vec::with_capacity(PROBES.len());
    for spec in PROBES {
        let result = attach(&mut ebpf, spec);
        match &result {
            Ok(()) => info!(probe = %spec.name(), "probe attached"),
            Err(reason) => {
                warn!(probe = %spec.name(), %reason, "probe not attached");
                if require_all {
                    return Err(LoadError::ProbeRequired {
                        probe: spec.name(),
                        reason: reason.clone(),
                    });
                }
            }
        }
        status.push(ProbeStatus {
            name: spec.name(),
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

fn attach(ebpf: &mut Ebpf, spec: &ProbeSpec) -> Result<(), String> {
    let program: &mut TracePoint = ebpf
        .program_mut(spec.program)
        .ok_or_else(|| format!("program {} is missing from the eBPF object", spec.program))?
        .try_into()
        .map_err(|e| format!("program {} is not a tracepoint: {e}", spec.program))?;
    program
        .load()
        .map_err(|e| format!("the verifier rejected {}: {e}", spec.program))?;
    program
        .attach(spec.category, spec.tracepoint)
        .map(|_link| ())
        .map_err(|e| format!("attaching to {}: {e}", spec.name()))
}
