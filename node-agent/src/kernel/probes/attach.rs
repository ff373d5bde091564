//! Loading one program of the object into the kernel and attaching it where its group says.

use std::{fs::File, path::PathBuf, sync::Arc};

use aya::{
    programs::{
        cgroup_skb::{CgroupSkbAttachType, CgroupSkbLink},
        raw_trace_point::RawTracePointLink,
        trace_point::TracePointLink,
        uprobe::{UProbeLink, UProbeScope},
        CgroupAttachMode, CgroupSkb, ProgramError, RawTracePoint, TracePoint, UProbe,
    },
    Ebpf,
};

use super::{
    layout::LayoutError,
    spec::{Attach, ProbeSpec},
};

/// Why one probe is not running. The control plane gets it as text
/// (`vigil_config_file::error_chain`), with every cause.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Switched off in the config. The text starts with "disabled by" (the tests and the CLI
    /// tell a switched-off probe from a failed one by it).
    #[error("disabled by {key} = false")]
    Disabled { key: &'static str },
    /// This kernel's tracefs lacks a tracepoint or field the probe's group reads.
    #[error("this kernel lacks what the probe reads")]
    Layout(#[source] Arc<LayoutError>),
    #[error(
        "program {program} is missing from the eBPF object: the embedded object is older than \
         the agent; rebuild it with `cargo xtask build-ebpf`, then rebuild the agent"
    )]
    MissingProgram { program: &'static str },
    #[error(
        "program {program} in the eBPF object is not a {expected} program: the object and the \
         agent's probe table disagree; rebuild both with `cargo xtask build`"
    )]
    WrongType {
        program: &'static str,
        expected: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error(
        "the kernel refused to load {program} (verifier log below); it needs root (CAP_BPF + \
         CAP_PERFMON) and a kernel this object supports"
    )]
    Load {
        program: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error(
        "attaching {program} to {point} failed (the agent needs root, and tracefs mounted for \
         tracepoints)"
    )]
    Attach {
        program: &'static str,
        point: String,
        #[source]
        source: ProgramError,
    },
    #[error(
        "attaching {program} to {point} of {library} failed: the library must exist (a path, or \
         a name without `.so` that `ldconfig -p` lists, e.g. `libssl`) and export the symbol; set telemetry.tls_library to the \
         OpenSSL the workloads load, or telemetry.tls = false"
    )]
    Uprobe {
        program: &'static str,
        point: String,
        library: String,
        #[source]
        source: Box<ProgramError>,
    },
    #[error(
        "no cgroup2 hierarchy is mounted: the network probes attach to its root; mount one \
         (e.g. `mount -t cgroup2 none /sys/fs/cgroup/unified`) or set telemetry.network = false"
    )]
    NoCgroup2,
    #[error("cannot open the cgroup2 root {}: the agent must run as root", path.display())]
    OpenCgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where the probes attach, beyond what their spec says.
#[derive(Debug, Clone)]
pub struct Targets {
    /// The cgroup v2 mount, for the cgroup_skb programs.
    pub cgroup2: Option<PathBuf>,
    /// The OpenSSL library, for the uprobes.
    pub tls_library: String,
}

/// One attached probe. Dropping it detaches the program from that point (the program stays
/// loaded, so attaching it again needs no verifier pass).
#[derive(Debug)]
pub enum ProbeLink {
    Tracepoint(TracePointLink),
    RawTracepoint(RawTracePointLink),
    Uprobe(UProbeLink),
    CgroupSkb(CgroupSkbLink),
}

/// Loads `spec`'s program (once, if several attach points share it, or it was detached and is
/// attached again) and attaches it.
pub fn attach(
    ebpf: &mut Ebpf,
    spec: &ProbeSpec,
    targets: &Targets,
) -> Result<ProbeLink, ProbeError> {
    let cgroup2 = targets.cgroup2.as_deref();
    let program = spec.program;
    let found = ebpf
        .program_mut(program)
        .ok_or(ProbeError::MissingProgram { program })?;
    let wrong_type = |expected: &'static str| {
        move |source: ProgramError| ProbeError::WrongType {
            program,
            expected,
            source,
        }
    };
    let load = |source: ProgramError| ProbeError::Load { program, source };
    let attach = |source: ProgramError| ProbeError::Attach {
        program,
        point: spec.name(),
        source,
    };
    match spec.attach {
        Attach::Tracepoint { category, name } => {
            let p: &mut TracePoint = found.try_into().map_err(wrong_type("tracepoint"))?;
            // One program may serve several tracepoints (sched_wakeup and _new).
            if p.fd().is_err() {
                p.load().map_err(load)?;
            }
            let id = p.attach(category, name).map_err(attach)?;
            p.take_link(id).map(ProbeLink::Tracepoint).map_err(attach)
        }
        Attach::RawTracepoint { name, .. } => {
            let p: &mut RawTracePoint = found.try_into().map_err(wrong_type("raw tracepoint"))?;
            if p.fd().is_err() {
                p.load().map_err(load)?;
            }
            let id = p.attach(name).map_err(attach)?;
            p.take_link(id)
                .map(ProbeLink::RawTracepoint)
                .map_err(attach)
        }
        Attach::Uprobe { symbol, .. } => {
            let p: &mut UProbe = found.try_into().map_err(wrong_type("uprobe"))?;
            // One program serves `SSL_read` and `SSL_read_ex` (and the write pair).
            if p.fd().is_err() {
                p.load().map_err(load)?;
            }
            let library = targets.tls_library.as_str();
            let refused = |source| ProbeError::Uprobe {
                program,
                point: spec.name(),
                library: library.to_string(),
                source: Box::new(source),
            };
            let id = p
                .attach(symbol, library, UProbeScope::AllProcesses)
                .map_err(refused)?;
            p.take_link(id).map(ProbeLink::Uprobe).map_err(refused)
        }
        Attach::CgroupSkb { egress } => {
            let root = cgroup2.ok_or(ProbeError::NoCgroup2)?;
            let cgroup = File::open(root).map_err(|source| ProbeError::OpenCgroup {
                path: root.to_path_buf(),
                source,
            })?;
            let p: &mut CgroupSkb = found.try_into().map_err(wrong_type("cgroup_skb"))?;
            if p.fd().is_err() {
                p.load().map_err(load)?;
            }
            let kind = if egress {
                CgroupSkbAttachType::Egress
            } else {
                CgroupSkbAttachType::Ingress
            };
            // aya attaches through a bpf_link (5.7+), which always coexists with other tools'
            // programs on the root cgroup; the kernel refuses explicit flags on cgroup links.
            let refused = |source| ProbeError::Attach {
                program,
                point: format!("{} ({})", spec.name(), root.display()),
                source,
            };
            let id = p
                .attach(cgroup, kind, CgroupAttachMode::Single)
                .map_err(refused)?;
            p.take_link(id).map(ProbeLink::CgroupSkb).map_err(refused)
        }
    }
}
