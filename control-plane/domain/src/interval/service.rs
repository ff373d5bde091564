//! The metrics use case: store each interval once and hand new ones to every sink (the service
//! graph, detection). It knows its sinks only by the `IntervalSink` port, so neither the graph
//! nor detection depends on it, nor it on them.

use std::sync::Arc;

use tracing::{info, instrument};

use super::{
    ports::{IntervalSink, IntervalStore},
    MetricInterval,
};
use crate::{
    observe::{NoObserver, Observer},
    store::StoreError,
};

pub struct MetricsService {
    store: Arc<dyn IntervalStore>,
    sinks: Vec<Arc<dyn IntervalSink>>,
    observer: Arc<dyn Observer>,
}

impl MetricsService {
    pub fn new(store: Arc<dyn IntervalStore>) -> Self {
        Self {
            store,
            sinks: Vec::new(),
            observer: Arc::new(NoObserver),
        }
    }

    /// Reports each stored interval to `observer` (exporters).
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// Feeds every new interval to `sink` too, in the order sinks were added.
    pub fn with_sink(mut self, sink: Arc<dyn IntervalSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Replays the stored intervals that ended after `since_unix_ns` into `sink`, so a
    /// restarted control plane serves the graph it had.
    #[instrument(skip(self, sink))]
    pub fn replay(&self, since_unix_ns: i64, sink: &dyn IntervalSink) -> Result<usize, StoreError> {
        let intervals = self.store.intervals_since(since_unix_ns)?;
        for i in &intervals {
            sink.accept(i);
        }
        if !intervals.is_empty() {
            info!(
                intervals = intervals.len(),
                "intervals replayed from the store"
            );
        }
        Ok(intervals.len())
    }

    pub fn last_interval_seq(&self, node: &str) -> Result<u64, StoreError> {
        self.store.last_interval_seq(node)
    }

    /// Stores the interval; returns false for a duplicate (already stored, not re-applied).
    #[instrument(skip_all, fields(node = %interval.node, seq = interval.seq))]
    pub fn ingest(&self, interval: &MetricInterval) -> Result<bool, StoreError> {
        let new = self.store.insert_interval(interval)?;
        if new {
            self.observer.intervals_ingested(&interval.node, 1);
            for sink in &self.sinks {
                sink.accept(interval);
            }
        }
        Ok(new)
    }
}
