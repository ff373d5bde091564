//! The bounded buffer between the kernel reader and the shipper.
//!
//! While the control plane is away events accumulate here up to a configured bound; past it
//! the oldest are dropped (the newest say most about the present) and counted, and the count
//! travels in every batch's stats so the loss is visible in the control plane.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::Duration,
};

use tokio::sync::Notify;
use vigil_proto::v1;

/// A bounded FIFO that drops its oldest item when full. Events by default; metric batches
/// use it too.
pub struct EventBuffer<T = v1::Event> {
    queue: Mutex<VecDeque<T>>,
    capacity: usize,
    dropped: AtomicU64,
    notify: Notify,
    /// What the items are, for the warning.
    what: &'static str,
}

impl EventBuffer<v1::Event> {
    pub fn new(capacity: usize) -> Self {
        Self::of("events", capacity)
    }
}

impl<T> EventBuffer<T> {
    pub fn of(what: &'static str, capacity: usize) -> Self {
        Self {
            queue: Mutex::new(VecDeque::with_capacity(capacity.min(65_536))),
            capacity,
            dropped: AtomicU64::new(0),
            notify: Notify::new(),
            what,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<T>> {
        // A poisoned lock only means another thread panicked mid-push; the queue is intact.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, event: T) {
        let mut q = self.lock();
        if q.len() >= self.capacity {
            q.pop_front();
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped_total = n,
                    capacity = self.capacity,
                    "agent buffer full: dropping the oldest {}",
                    self.what
                );
            }
        }
        q.push_back(event);
        drop(q);
        self.notify.notify_one();
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits for the oldest item and takes it.
    pub async fn pop(&self) -> T {
        loop {
            let notified = self.notify.notified();
            if let Some(item) = self.lock().pop_front() {
                return item;
            }
            notified.await;
        }
    }

    /// Waits for at least one event, then up to `linger` for the batch to fill to `max`,
    /// and takes up to `max` events.
    pub async fn next_batch(&self, max: usize, linger: Duration) -> Vec<T> {
        loop {
            // Register interest before checking, so a push between check and wait is not lost.
            let notified = self.notify.notified();
            if !self.is_empty() {
                break;
            }
            notified.await;
        }
        let deadline = tokio::time::Instant::now() + linger;
        while self.len() < max {
            let notified = self.notify.notified();
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        let mut q = self.lock();
        let n = q.len().min(max);
        q.drain(..n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: u64) -> v1::Event {
        v1::Event {
            kernel_time_ns: t,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn drops_oldest_and_counts() {
        let b = EventBuffer::new(3);
        for t in 1..=5 {
            b.push(ev(t));
        }
        assert_eq!(b.dropped(), 2);
        let batch = b.next_batch(10, Duration::from_millis(1)).await;
        let times: Vec<u64> = batch.iter().map(|e| e.kernel_time_ns).collect();
        assert_eq!(times, vec![3, 4, 5]);
    }

    #[tokio::test]
    async fn batch_waits_for_first_event_and_respects_max() {
        let b = std::sync::Arc::new(EventBuffer::new(100));
        let b2 = b.clone();
        let handle =
            tokio::spawn(async move { b2.next_batch(2, Duration::from_millis(200)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        for t in 0..3 {
            b.push(ev(t));
        }
        let batch = handle.await.expect("join");
        assert_eq!(batch.len(), 2);
        assert_eq!(b.len(), 1);
    }
}
