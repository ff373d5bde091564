//! Wiring the agent: mount, load, attach, read, attribute, ship.

use std::{
    future::Future,
    path::Path,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use tokio::sync::mpsc;
use tracing::{error, info, warn};
use vigil_proto::v1;

use crate::{
    attribution::{CgroupIndex, ProcessTable},
    clock::BootClock,
    config::AgentConfig,
    enrich::enrich,
    kernel::{
        probes::{self, LoadError, ProbeStatus},
        reader::{self, ReaderError, ReaderStats},
        tracefs::{self, TracefsError},
    },
    stream::{buffer::EventBuffer, shipper::Shipper},
};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Mount(#[from] TracefsError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Reader(#[from] ReaderError),
    #[error("control_plane.endpoint is not a valid URI")]
    Endpoint(#[source] tonic::transport::Error),
    #[error("cannot start the attribution thread")]
    Thread(#[source] std::io::Error),
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
        probes: status
            .iter()
            .map(|s| v1::ProbeStatus {
                name: s.name.clone(),
                attached: s.error.is_none(),
                error: s.error.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

/// Runs the agent until `shutdown` completes, then drains the buffer (bounded by a timeout).
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let kernel = &config.kernel;
    if tracefs::ensure_tracefs(Path::new(&kernel.tracefs))? {
        info!(path = %kernel.tracefs, "mounted tracefs");
    }
    if tracefs::ensure_bpffs(Path::new(&kernel.bpffs))? {
        info!(path = %kernel.bpffs, "mounted bpffs");
    }
    let mut loaded = probes::load_and_attach(
        Path::new(&kernel.tracefs),
        kernel.ring_buffer_bytes,
        kernel.require_all_probes,
    )?;
    let (ring, drops) = reader::open(&mut loaded.ebpf)?;

    let node_name = config.resolved_node_name();
    let stats = Arc::new(ReaderStats::default());
    let buffer = Arc::new(EventBuffer::new(config.buffer.max_events));
    let (tx, mut rx) = mpsc::channel(8192);

    let mut cgroups = CgroupIndex::discover();
    let mut table = ProcessTable::new(&kernel.proc, PROCESS_TABLE_CAPACITY);
    let known = table.scan();
    info!(node = %node_name, processes = known, "process table primed");

    // Attribution reads procfs synchronously: keep it on its own thread.
    let enrich_buffer = buffer.clone();
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
                enrich_buffer.push(enrich(event, &mut table, &mut cgroups, &clock));
            }
        })
        .map_err(AgentError::Thread)?;

    let shipper = Shipper::new(
        config.clone(),
        hello(&node_name, &loaded.status),
        buffer.clone(),
        stats.clone(),
    )
    .map_err(AgentError::Endpoint)?;
    let reader_task = tokio::spawn(reader::run(ring, drops, stats, tx));
    let state = shipper.state.clone();
    let shipper_task = tokio::spawn(shipper.run());

    tokio::select! {
        () = shutdown => info!("shutting down"),
        result = reader_task => match result {
            Ok(Err(e)) => error!(error = %e, "ring buffer reader failed"),
            Ok(Ok(())) => error!("ring buffer reader stopped"),
            Err(e) => error!(error = %e, "ring buffer reader panicked"),
        },
    }
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    while (!buffer.is_empty() || state.in_flight.load(Ordering::Relaxed) > 0)
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
    drop(enricher);
    drop(loaded);
    Ok(())
}
