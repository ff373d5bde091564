//! Wiring the agent: mount, load, attach, read, attribute, ship.

use std::{
    future::Future,
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use tokio::sync::mpsc;
use tracing::{error, info, warn};
use vigil_proto::v1;

use crate::{
    attribution::{cgroup_index::cgroup2_mount, CgroupIndex, ProcessTable},
    clock::{monotonic_now_ns, BootClock},
    config::AgentConfig,
    enrich::enrich,
    exporter::{self, EventCounter, Exporter, Sources},
    governor::{self, Degraded},
    kernel::{
        probes::{self, LoadError, LoadOptions, ProbeGroup, ProbeStatus},
        reader::{self, ReaderError, ReaderStats},
        tracefs::{self, TracefsError},
    },
    metrics::{
        collector::Collector,
        kernel_maps::{AggregateMaps, MapsError},
        notices::{self, ErrorSamples},
        queue::{metric_queue, MetricQueue},
        tls_sockets::TlsSockets,
    },
    stream::{buffer::EventBuffer, metrics_shipper::MetricsShipper, shipper::Shipper},
};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Mount(#[from] TracefsError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Reader(#[from] ReaderError),
    #[error("cannot reach the control plane as configured in [control_plane]")]
    Endpoint(#[source] crate::stream::connection::ConnectError),
    #[error("cannot start the attribution thread")]
    Thread(#[source] std::io::Error),
    #[error(transparent)]
    Maps(#[from] MapsError),
    #[error("cannot serve Prometheus metrics on {addr}. Is another process using the port? Set `metrics.listen`, or `metrics.enabled = false`")]
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Drains the kernel aggregates every `interval` into `queue` until `stop` is set.
fn spawn_collector(
    mut collector: Collector,
    interval: Duration,
    queue: Arc<MetricQueue>,
    stop: Arc<AtomicBool>,
) -> Result<(), AgentError> {
    std::thread::Builder::new()
        .name("vigil-metrics".into())
        .spawn(move || {
            let mut clock = BootClock::measure();
            let mut start = clock.to_unix_ns(monotonic_now_ns());
            let mut next = std::time::Instant::now() + interval;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
                next += interval;
                clock = BootClock::measure();
                let now = monotonic_now_ns();
                let end = clock.to_unix_ns(now);
                queue.push(collector.collect(start, end, now));
                start = end;
            }
        })
        .map(|_| ())
        .map_err(AgentError::Thread)
}

/// How long shutdown waits for buffered events to reach the control plane.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the monotonic→Unix offset is re-measured.
const CLOCK_REMEASURE: Duration = Duration::from_secs(5);
/// Entries in the process table before it is rebuilt from procfs.
const PROCESS_TABLE_CAPACITY: usize = 1 << 16;

fn hello(node_name: &str, status: &[ProbeStatus]) -> v1::NodeHello {
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    v1::NodeHello {
        node_name: node_name.to_string(),
        kernel_release: kernel,
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        protocol_version: vigil_proto::PROTOCOL_VERSION,
        probes: status.iter().map(wire_status).collect(),
    }
}

/// A probe's status as the control plane gets it: the error as text, with every cause.
fn wire_status(s: &ProbeStatus) -> v1::ProbeStatus {
    v1::ProbeStatus {
        name: s.name.clone(),
        attached: s.error.is_none(),
        error: s
            .error
            .as_deref()
            .map(|e| vigil_config_file::error_chain(e))
            .unwrap_or_default(),
    }
}

/// Runs the agent until `shutdown` completes, then drains the buffer (bounded by a timeout).
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    // Before touching the system: an agent built without its eBPF object cannot run.
    probes::embedded_object()?;
    let kernel = &config.kernel;
    if tracefs::ensure_tracefs(Path::new(&kernel.tracefs))? {
        info!(path = %kernel.tracefs, "mounted tracefs");
    }
    if tracefs::ensure_bpffs(Path::new(&kernel.bpffs))? {
        info!(path = %kernel.bpffs, "mounted bpffs");
    }
    let cgroup2_root = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|m| cgroup2_mount(&m));
    let mut loaded = probes::load_and_attach(&LoadOptions {
        tracefs: Path::new(&kernel.tracefs),
        cgroup2_root,
        ring_buffer_bytes: kernel.ring_buffer_bytes,
        require_all: kernel.require_all_probes,
        telemetry: &config.telemetry,
    })?;
    let (ring, drops) = reader::open(&mut loaded.ebpf)?;
    let aggregates = AggregateMaps::open(&mut loaded.ebpf)?;
    let status = loaded.status.clone();
    let telemetry_on = status
        .iter()
        .any(|s| s.group != ProbeGroup::Process && s.error.is_none());
    // From here the governor may switch probe groups off and on.
    let loaded = Arc::new(Mutex::new(loaded));

    let node_name = config.resolved_node_name();
    let stats = Arc::new(ReaderStats::default());
    let buffer = Arc::new(EventBuffer::new(config.buffer.max_events));
    let (tx, mut rx) = mpsc::channel::<crate::kernel::decode::KernelEvent>(8192);

    let mut cgroups = CgroupIndex::discover();
    let mut table = ProcessTable::new(&kernel.proc, PROCESS_TABLE_CAPACITY);
    let known = table.scan();
    info!(node = %node_name, processes = known, "process table primed");

    // Attribution reads procfs synchronously: keep it on its own thread.
    let enrich_buffer = buffer.clone();
    let event_counter = EventCounter::default();
    let counted = event_counter.clone();
    let enricher = std::thread::Builder::new()
        .name("vigil-enrich".into())
        .spawn(move || {
            let mut clock = BootClock::measure();
            let mut measured = std::time::Instant::now();
            while let Some(event) = rx.blocking_recv() {
                // Follow wall-clock steps (NTP) without a syscall pair per event.
                if measured.elapsed() >= CLOCK_REMEASURE {
                    clock = BootClock::measure();
                    measured = std::time::Instant::now();
                }
                counted.get_or_create(&[("kind", event.kind_name())]).inc();
                enrich_buffer.push(enrich(event, &mut table, &mut cgroups, &clock));
            }
        })
        .map_err(AgentError::Thread)?;

    let metrics = Arc::new(metric_queue(config.telemetry.max_buffered_intervals));
    let degraded = Arc::new(Degraded::default());
    let sequence = (!config.state_file.as_os_str().is_empty())
        .then(|| crate::stream::sequence_file::SequenceFile::new(&config.state_file, &node_name));
    let shipper = Shipper::new(
        config.clone(),
        hello(&node_name, &status),
        buffer.clone(),
        stats.clone(),
        metrics.clone(),
        degraded.clone(),
        sequence.as_ref().map_or(0, |s| s.resume()),
    )
    .map_err(AgentError::Endpoint)?;
    let state = shipper.state.clone();
    if let Some(sequence) = sequence {
        tokio::spawn(sequence.keep(state.clone(), buffer.clone()));
    }
    if config.metrics.enabled {
        let exporter = Exporter::new(
            event_counter,
            Sources {
                node: node_name.clone(),
                reader: stats.clone(),
                events: buffer.clone(),
                intervals: metrics.clone(),
                shipper: state.clone(),
                probes: status.clone(),
                degraded: degraded.clone(),
            },
        );
        exporter::serve(config.metrics.listen, Arc::new(exporter))
            .await
            .map_err(|source| AgentError::Metrics {
                addr: config.metrics.listen,
                source,
            })?;
    }
    // The kernel's drops: the ring filled faster than the agent drained it. Not the buffer's:
    // those mean the control plane was away, which shedding does not help.
    let losses = {
        let stats = stats.clone();
        Box::new(move || {
            (
                stats.events_read.load(Ordering::Relaxed),
                stats.kernel_dropped.load(Ordering::Relaxed),
            )
        })
    };
    let stop_governor = Arc::new(AtomicBool::new(false));
    governor::spawn(
        &config.budget,
        &kernel.proc,
        Box::new(loaded.clone()),
        losses,
        degraded.clone(),
        stop_governor.clone(),
    )
    .map_err(AgentError::Thread)?;
    let reader_task = tokio::spawn(reader::run(ring, drops, stats, tx));
    let shipper_task = tokio::spawn(shipper.run());

    // Metrics: a thread drains the kernel aggregates each interval (map reads are syscalls),
    // a task ships the batches.
    let stop_collector = Arc::new(AtomicBool::new(false));
    let mut metrics_task = None;
    if telemetry_on {
        let mut aggregates = aggregates;
        let proc = Path::new(&kernel.proc);
        let tls_sockets = Arc::new(Mutex::new(TlsSockets::new(proc)));
        let error_samples = Arc::new(Mutex::new(ErrorSamples::default()));
        let requests_on = status.iter().any(|s| {
            matches!(s.group, ProbeGroup::Requests | ProbeGroup::Tls) && s.error.is_none()
        });
        if let Some(ring) = aggregates.notices.take().filter(|_| requests_on) {
            notices::watch(
                ring,
                tls_sockets.clone(),
                error_samples.clone(),
                stop_collector.clone(),
            )
            .map_err(AgentError::Thread)?;
        }
        let collector = Collector::new(
            aggregates,
            config.telemetry.clone(),
            proc,
            tls_sockets,
            error_samples,
        );
        spawn_collector(
            collector,
            config.telemetry_interval(),
            metrics.clone(),
            stop_collector.clone(),
        )?;
        let shipper =
            MetricsShipper::new(config.clone(), hello(&node_name, &status), metrics.clone())
                .map_err(AgentError::Endpoint)?;
        metrics_task = Some(tokio::spawn(shipper.run()));
    } else {
        info!("no telemetry probe attached: metric batches are off");
    }

    tokio::select! {
        () = shutdown => info!("shutting down"),
        result = reader_task => match result {
            Ok(Err(e)) => error!(error = %e, "ring buffer reader failed"),
            Ok(Ok(())) => error!("ring buffer reader stopped"),
            Err(e) => error!(error = %e, "ring buffer reader panicked"),
        },
    }
    stop_collector.store(true, Ordering::Relaxed);
    stop_governor.store(true, Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    while (!buffer.is_empty()
        || state.in_flight.load(Ordering::Relaxed) > 0
        || (metrics_task.is_some() && !metrics.is_empty()))
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = buffer.len() + state.in_flight.load(Ordering::Relaxed);
    if left > 0 {
        warn!(
            events = left,
            "exiting with events not delivered to the control plane"
        );
    }
    shipper_task.abort();
    if let Some(t) = metrics_task {
        t.abort();
    }
    drop(enricher);
    drop(loaded);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::kernel::{
        probes::{LayoutError, ProbeError},
        tracefs::TracefsError,
    };

    fn status(error: ProbeError) -> ProbeStatus {
        ProbeStatus {
            name: "cgroup_skb/ingress".into(),
            group: ProbeGroup::Network,
            error: Some(Arc::new(error)),
        }
    }

    #[test]
    fn the_control_plane_gets_each_probe_error_with_its_causes() {
        let open = status(ProbeError::OpenCgroup {
            path: "/sys/fs/cgroup/unified".into(),
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        });
        let wire = wire_status(&open);
        assert!(!wire.attached);
        assert!(
            wire.error.contains("/sys/fs/cgroup/unified")
                && wire.error.contains("Permission denied"),
            "the cause (the io error) must reach the control plane: {}",
            wire.error
        );

        let layout = status(ProbeError::Layout(Arc::new(LayoutError::Tracefs(
            TracefsError::MissingTracepoint {
                category: "tcp".into(),
                name: "tcp_probe".into(),
                path: "/sys/kernel/tracing/events/tcp/tcp_probe".into(),
            },
        ))));
        assert_eq!(
            wire_status(&layout).error,
            "this kernel lacks what the probe reads: tracepoint tcp:tcp_probe does not exist on \
             this kernel (/sys/kernel/tracing/events/tcp/tcp_probe is missing); the kernel was \
             built without it"
        );

        let disabled = status(ProbeError::Disabled {
            key: "telemetry.network",
        });
        assert_eq!(
            wire_status(&disabled).error,
            "disabled by telemetry.network = false"
        );
        let attached = ProbeStatus {
            error: None,
            ..open
        };
        assert!(wire_status(&attached).attached && wire_status(&attached).error.is_empty());
    }
}
