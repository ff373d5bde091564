//! Draining the ring buffer as it fills, and reading the kernel's drop counters.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use aya::maps::{MapData, PerCpuArray, RingBuf};
use tokio::{io::unix::AsyncFd, sync::mpsc};
use tracing::warn;

use super::decode::{decode, KernelEvent};

/// Counters shared with the stream (reported to the control plane in every batch).
#[derive(Debug, Default)]
pub struct ReaderStats {
    pub events_read: AtomicU64,
    pub malformed: AtomicU64,
    pub kernel_dropped: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    #[error("the eBPF object has no map {0}")]
    MissingMap(&'static str),
    #[error("cannot open map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("polling the ring buffer")]
    Poll(#[from] std::io::Error),
}

/// Opens the ring buffer and drop counters of a loaded object.
pub fn open(
    ebpf: &mut aya::Ebpf,
) -> Result<(RingBuf<MapData>, PerCpuArray<MapData, u64>), ReaderError> {
    let ring = ebpf
        .take_map("EVENTS")
        .ok_or(ReaderError::MissingMap("EVENTS"))?;
    let ring = RingBuf::try_from(ring).map_err(|source| ReaderError::Map {
        name: "EVENTS",
        source,
    })?;
    let drops = ebpf
        .take_map("DROPS")
        .ok_or(ReaderError::MissingMap("DROPS"))?;
    let drops = PerCpuArray::try_from(drops).map_err(|source| ReaderError::Map {
        name: "DROPS",
        source,
    })?;
    Ok((ring, drops))
}

/// Sum of every CPU's drop counters.
pub fn kernel_drops(drops: &PerCpuArray<MapData, u64>) -> u64 {
    drops
        .iter()
        .filter_map(Result::ok)
        .map(|per_cpu| per_cpu.iter().sum::<u64>())
        .sum()
}

/// Reads records until the receiver goes away, decoding them and sending them on.
pub async fn run(
    ring: RingBuf<MapData>,
    drops: PerCpuArray<MapData, u64>,
    stats: Arc<ReaderStats>,
    tx: mpsc::Sender<KernelEvent>,
) -> Result<(), ReaderError> {
    // SAFETY: the ring buffer owns its map fd, which stays open and unchanged for as long as
    // the `AsyncFd` owns the ring buffer.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| ReaderError::Poll(std::io::Error::other(e.to_string())))?;
    let mut last_drops = 0;
    loop {
        let mut guard = fd.readable_mut().await?;
        let ring = guard.get_inner_mut();
        while let Some(item) = ring.next() {
            let decoded = decode(&item);
            // Release the record before awaiting: the item borrows the ring.
            drop(item);
            match decoded {
                Ok(event) => {
                    stats.events_read.fetch_add(1, Ordering::Relaxed);
                    if tx.send(event).await.is_err() {
                        return Ok(());
                    }
                }
                Err(error) => {
                    stats.malformed.fetch_add(1, Ordering::Relaxed);
                    warn!(%error, "skipping malformed ring buffer record");
                }
            }
        }
        guard.clear_ready();
        let dropped = kernel_drops(&drops);
        if dropped > last_drops {
            warn!(
                dropped_total = dropped,
                new = dropped - last_drops,
                "kernel ring buffer was full: events lost"
            );
            last_drops = dropped;
        }
        stats.kernel_dropped.store(dropped, Ordering::Relaxed);
    }
}
