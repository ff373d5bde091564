//! Loading the embedded eBPF object and attaching each probe.
//!
//! Probes come in groups (process lifecycle, network, syscalls, run queue, block IO), each
//! declared once in [`groups::GROUPS`]: its config switch, its programs and attach points, and
//! the tracepoint fields it reads. Each group can be switched off in the config; a group whose
//! tracepoints this kernel lacks is reported as not attached, with the reason, and the others
//! run.

mod attach;
pub mod groups;
mod inflight;
pub mod layout;
#[cfg(test)]
mod layout_tests;
pub mod spec;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use aya::{Ebpf, EbpfLoader};
use node_agent_common::NoReturnSyscalls;
use tracing::{debug, info, warn};

pub use self::{
    attach::{ProbeError, ProbeLink, Targets},
    groups::{GroupSpec, GROUPS},
    layout::{LayoutError, Layouts},
    spec::{Attach, ProbeGroup, ProbeSpec},
};
use crate::config::TelemetryConfig;

/// The eBPF object built by `cargo xtask build-ebpf`, embedded at compile time. Empty when
/// the agent was built before the object existed (`build.rs` embeds a placeholder then).
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(env!("VIGIL_EBPF_OBJECT_PATH"));

/// The embedded eBPF object, or why the agent cannot start.
pub fn embedded_object() -> Result<&'static [u8], LoadError> {
    check_object(EBPF_OBJECT)
}

fn check_object(object: &'static [u8]) -> Result<&'static [u8], LoadError> {
    if object.is_empty() {
        return Err(LoadError::NoObject);
    }
    Ok(object)
}

/// Whether one probe is running, and why not.
#[derive(Debug, Clone)]
pub struct ProbeStatus {
    pub name: String,
    pub group: ProbeGroup,
    pub error: Option<Arc<ProbeError>>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "this agent was built without its eBPF object: run `cargo xtask build-ebpf` and rebuild \
         (or build everything with `cargo xtask build`)"
    )]
    NoObject,
    #[error("reading tracepoint layouts from tracefs")]
    Layout(#[from] LayoutError),
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
    #[error(
        "probe {probe} could not be attached (kernel.require_all_probes is set; unset it to run \
         without the probe)"
    )]
    ProbeRequired {
        probe: String,
        #[source]
        source: Arc<ProbeError>,
    },
}

/// The loaded object with every probe it could attach.
pub struct LoadedProbes {
    pub ebpf: Ebpf,
    /// One per probe of [`GROUPS`], in its order, as attached at start.
    pub status: Vec<ProbeStatus>,
    /// The same probes' links: `None` where it did not attach, or is detached now.
    links: Vec<Option<ProbeLink>>,
    targets: Targets,
}

impl LoadedProbes {
    /// Detaches (`on: false`) every attached probe of `group`, or attaches again (`on: true`)
    /// every probe of it that attached at start and is detached now. Returns how many
    /// changed; a probe that will not attach again is the error, the others still change.
    pub fn set_group(&mut self, group: ProbeGroup, on: bool) -> Result<usize, ProbeError> {
        let mut changed = 0;
        let mut first_error = None;
        if on {
            match inflight::clear_group(&mut self.ebpf, group) {
                Ok(n) => debug!(
                    ?group,
                    entries = n,
                    "in-flight state cleared before attaching again"
                ),
                Err(e) => {
                    warn!(?group, error = %e, "could not clear the in-flight state: the first latencies after attaching again may span the gap")
                }
            }
        }
        for (i, (g, spec)) in groups::probes().enumerate() {
            let started = self.status.get(i).is_some_and(|s| s.error.is_none());
            if g.group != group || !started {
                continue;
            }
            let Some(slot) = self.links.get_mut(i) else {
                continue;
            };
            match (on, slot.is_some()) {
                // Dropping the link detaches it.
                (false, true) => {
                    *slot = None;
                    changed += 1;
                }
                (true, false) => match attach::attach(&mut self.ebpf, spec, &self.targets) {
                    Ok(link) => {
                        *slot = Some(link);
                        changed += 1;
                    }
                    Err(e) => {
                        warn!(probe = %spec.name(), error = %vigil_config_file::error_chain(&e), "probe not attached again");
                        first_error.get_or_insert(e);
                    }
                },
                _ => {}
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(changed),
        }
    }

    /// Probes attached now, by name.
    pub fn attached(&self) -> Vec<String> {
        self.status
            .iter()
            .zip(&self.links)
            .filter(|(_, l)| l.is_some())
            .map(|(s, _)| s.name.clone())
            .collect()
    }
}

/// The governor switches groups through the loaded probes, shared with the agent that owns
/// them.
impl crate::governor::ProbeSwitch for Arc<std::sync::Mutex<LoadedProbes>> {
    fn set(&mut self, group: ProbeGroup, on: bool) -> Result<usize, ProbeError> {
        self.lock()
            .unwrap_or_else(|p| p.into_inner())
            .set_group(group, on)
    }
}

/// `exit` and `exit_group` on the architecture the agent was built for (the host's).
fn noreturn_syscalls() -> NoReturnSyscalls {
    NoReturnSyscalls {
        exit: syscalls::Sysno::exit as u32,
        exit_group: syscalls::Sysno::exit_group as u32,
    }
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
    let object = embedded_object()?;
    let (layouts, layout_errors) = groups::read_layouts(opts.tracefs, GROUPS)?;
    let noreturn = noreturn_syscalls();
    let error_samples = u32::from(opts.telemetry.error_samples);
    let syscall_sample_mask = opts
        .telemetry
        .syscall_latency_sample_every
        .saturating_sub(1);
    let mut loader = EbpfLoader::new();
    loader
        .override_global("TP_LAYOUT", &layouts.process, true)
        .override_global("TELEMETRY_LAYOUT", &layouts.telemetry, true)
        .override_global("NORETURN_SYSCALLS", &noreturn, true)
        .override_global("L7_ERROR_SAMPLES", &error_samples, true)
        .override_global("SYSCALL_SAMPLE_MASK", &syscall_sample_mask, true)
        .map_max_entries("EVENTS", opts.ring_buffer_bytes);
    for (map, _, size) in opts.telemetry.maps.entries() {
        loader.map_max_entries(map, size);
    }
    let mut ebpf = loader
        .load(object)
        .map_err(|source| LoadError::Load { source })?;

    let targets = Targets {
        cgroup2: opts.cgroup2_root.clone(),
        tls_library: opts.telemetry.tls_library.clone(),
    };
    let mut status = Vec::new();
    let mut links = Vec::new();
    for (group, spec) in groups::probes() {
        let enabled = group.enabled(opts.telemetry);
        let result = match (group.switch, layout_errors.get(&group.group)) {
            (Some(switch), _) if !enabled => Err(ProbeError::Disabled { key: switch.key }),
            (_, Some(reason)) => Err(ProbeError::Layout(reason.clone())),
            _ => attach::attach(&mut ebpf, spec, &targets),
        };
        let error = match result {
            Ok(link) => {
                info!(probe = %spec.name(), "probe attached");
                links.push(Some(link));
                None
            }
            Err(error) => {
                if enabled {
                    let reason = vigil_config_file::error_chain(&error);
                    warn!(probe = %spec.name(), %reason, "probe not attached");
                    if opts.require_all {
                        return Err(LoadError::ProbeRequired {
                            probe: spec.name(),
                            source: Arc::new(error),
                        });
                    }
                }
                links.push(None);
                Some(Arc::new(error))
            }
        };
        status.push(ProbeStatus {
            name: spec.name(),
            group: group.group,
            error,
        });
    }
    if status.iter().all(|s| s.error.is_some()) {
        let reasons: Vec<String> = status
            .iter()
            .filter_map(|s| {
                let error = s.error.as_deref()?;
                Some(format!(
                    "{}: {}",
                    s.name,
                    vigil_config_file::error_chain(error)
                ))
            })
            .collect();
        return Err(LoadError::NothingAttached(reasons.join("; ")));
    }
    Ok(LoadedProbes {
        ebpf,
        status,
        links,
        targets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_built_without_the_object_says_how_to_build_it() {
        let err = check_object(&[]).expect_err("an empty object is the build.rs placeholder");
        assert!(matches!(err, LoadError::NoObject));
        assert!(err.to_string().contains("cargo xtask build-ebpf"), "{err}");
        assert!(check_object(b"\x7fELF").is_ok());
    }

    /// The table the probes were declared in before it was split by group: names (shown by the
    /// control plane and the metrics), order, groups and programs must not change.
    #[test]
    fn the_probe_table_is_unchanged() {
        use ProbeGroup::{BlockIo, Network, Process, Requests, RunQueue, Syscalls, Tls};
        let expected = [
            ("vigil_process_exec", Process, "sched:sched_process_exec"),
            ("vigil_exit_group", Process, "syscalls:sys_enter_exit_group"),
            ("vigil_signal_deliver", Process, "signal:signal_deliver"),
            ("vigil_signal_generate", Process, "signal:signal_generate"),
            ("vigil_execve_enter", Process, "syscalls:sys_enter_execve"),
            ("vigil_execve_exit", Process, "syscalls:sys_exit_execve"),
            ("vigil_process_fork", Process, "sched:sched_process_fork"),
            ("vigil_process_exit", Process, "sched:sched_process_exit"),
            ("vigil_oom_mark_victim", Process, "oom:mark_victim"),
            (
                "vigil_inet_sock_set_state",
                Network,
                "sock:inet_sock_set_state",
            ),
            ("vigil_tcp_retransmit", Network, "tcp:tcp_retransmit_skb"),
            ("vigil_tcp_receive_reset", Network, "tcp:tcp_receive_reset"),
            ("vigil_tcp_send_reset", Network, "tcp:tcp_send_reset"),
            ("vigil_tcp_probe", Network, "tcp:tcp_probe"),
            ("vigil_skb_ingress", Network, "cgroup_skb/ingress"),
            ("vigil_skb_egress", Network, "cgroup_skb/egress"),
            ("vigil_sys_enter", Syscalls, "raw_tp:sys_enter"),
            ("vigil_sys_exit", Syscalls, "raw_tp:sys_exit"),
            ("vigil_syscall_switch", Syscalls, "sched:sched_switch"),
            ("vigil_sched_wakeup", RunQueue, "sched:sched_wakeup"),
            ("vigil_sched_wakeup", RunQueue, "sched:sched_wakeup_new"),
            ("vigil_sched_switch", RunQueue, "sched:sched_switch"),
            ("vigil_block_rq_issue", BlockIo, "block:block_rq_issue"),
            (
                "vigil_block_rq_complete",
                BlockIo,
                "block:block_rq_complete",
            ),
            ("vigil_l7_ingress", Requests, "cgroup_skb/ingress"),
            ("vigil_l7_egress", Requests, "cgroup_skb/egress"),
            ("vigil_ssl_write", Tls, "uprobe:SSL_write"),
            ("vigil_ssl_write_ex", Tls, "uprobe:SSL_write_ex"),
            ("vigil_ssl_read", Tls, "uprobe:SSL_read"),
            ("vigil_ssl_read_ex", Tls, "uprobe:SSL_read_ex"),
            ("vigil_ssl_write_ret", Tls, "uretprobe:SSL_write"),
            ("vigil_ssl_write_ret", Tls, "uretprobe:SSL_write_ex"),
            ("vigil_ssl_read_ret", Tls, "uretprobe:SSL_read"),
            ("vigil_ssl_read_ret", Tls, "uretprobe:SSL_read_ex"),
            ("vigil_ssl_free", Tls, "uprobe:SSL_free"),
            ("vigil_ssl_handshake", Tls, "uprobe:SSL_do_handshake"),
            ("vigil_ssl_handshake", Tls, "uprobe:SSL_connect"),
            ("vigil_ssl_handshake", Tls, "uprobe:SSL_accept"),
            ("vigil_ssl_handshake_ret", Tls, "uretprobe:SSL_do_handshake"),
            ("vigil_ssl_handshake_ret", Tls, "uretprobe:SSL_connect"),
            ("vigil_ssl_handshake_ret", Tls, "uretprobe:SSL_accept"),
            ("vigil_tls_fd", Tls, "syscalls:sys_enter_read"),
            ("vigil_tls_fd", Tls, "syscalls:sys_enter_write"),
            ("vigil_tls_fd", Tls, "syscalls:sys_enter_readv"),
            ("vigil_tls_fd", Tls, "syscalls:sys_enter_writev"),
            ("vigil_tls_fd", Tls, "syscalls:sys_enter_sendto"),
            ("vigil_tls_fd", Tls, "syscalls:sys_enter_recvfrom"),
            ("vigil_tls_fd", Tls, "syscalls:sys_enter_sendmsg"),
            ("vigil_tls_fd", Tls, "syscalls:sys_enter_recvmsg"),
        ];
        let actual: Vec<_> = groups::probes()
            .map(|(g, p)| (p.program, g.group, p.name()))
            .collect();
        let expected: Vec<_> = expected
            .iter()
            .map(|&(program, group, name)| (program, group, name.to_string()))
            .collect();
        assert_eq!(actual, expected);
    }

    #[test]
    fn only_the_process_group_is_always_on() {
        let off = TelemetryConfig {
            network: false,
            syscalls: false,
            runqueue: false,
            block_io: false,
            ..TelemetryConfig::default()
        };
        for g in GROUPS {
            assert_eq!(
                g.enabled(&off),
                g.group == ProbeGroup::Process,
                "{:?}",
                g.group
            );
            assert!(g.enabled(&TelemetryConfig::default()), "{:?}", g.group);
        }
    }
}
