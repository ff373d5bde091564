//! Draining the ring buffer as it fills, and reading the kernel's drop counters.

use std::{
    os::fd::AsRawFd,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
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
    #[error(
        "cannot register the ring buffer with the async runtime (epoll); the agent needs a \
         kernel with BPF ring buffers (5.8+), whose map fds can be polled"
    )]
    Register {
        #[source]
        source: std::io::Error,
    },
    #[error("polling the ring buffer")]
    Poll(#[from] std::io::Error),
}

/// Registers `inner`'s fd with the tokio reactor for readability, keeping the io error (its
/// errno included) as the source when the reactor refuses it.
///
/// # Safety
/// `inner`'s fd must be valid and open, and `as_raw_fd` must return that same fd, for as long
/// as the returned `AsyncFd` owns `inner` (tokio's `AsyncFd::register_with_interest`).
unsafe fn register_readable<T: AsRawFd>(inner: T) -> Result<AsyncFd<T>, ReaderError> {
    // SAFETY: forwarded from the caller.
    unsafe { AsyncFd::register_with_interest(inner, tokio::io::Interest::READABLE) }.map_err(|e| {
        ReaderError::Register {
            source: e.into_parts().1,
        }
    })
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
    let mut fd = unsafe { register_readable(ring) }?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_registration_keeps_the_os_error() {
        // epoll refuses regular files with EPERM: the same path a ring buffer fd takes.
        let file = tempfile::tempfile().expect("tempfile");
        // SAFETY: the `File` owns its fd, open and unchanged for as long as it lives.
        let err = unsafe { register_readable(file) }.expect_err("epoll refuses regular files");
        let ReaderError::Register { source } = &err else {
            panic!("expected a registration error, got {err:?}");
        };
        assert_eq!(source.raw_os_error(), Some(libc::EPERM), "{source:?}");
        let chained = std::error::Error::source(&err).expect("the io error is the source");
        assert!(chained.downcast_ref::<std::io::Error>().is_some());
    }
}
