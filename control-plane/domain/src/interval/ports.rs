//! What the metrics use case needs: a store of intervals, and the consumers it feeds.

use super::{MapUsage, MetricInterval, SampleKind, StoredSample};
use crate::store::StoreError;

#[derive(Debug, Clone, Default)]
pub struct SampleQuery {
    pub kind: Option<SampleKind>,
    pub node: Option<String>,
    pub workload_key: Option<String>,
    pub since_unix_ns: Option<i64>,
    pub limit: usize,
}

pub trait IntervalStore: Send + Sync {
    /// Stores an interval unless (node, seq) is already stored; returns whether it was new.
    fn insert_interval(&self, interval: &MetricInterval) -> Result<bool, StoreError>;
    /// Highest interval stored for `node`, 0 if none.
    fn last_interval_seq(&self, node: &str) -> Result<u64, StoreError>;
    /// Newest first.
    fn samples(&self, query: &SampleQuery) -> Result<Vec<StoredSample>, StoreError>;
    /// Kernel map usage of the node's latest interval (empty before the first).
    fn map_usage(&self, node: &str) -> Result<Vec<MapUsage>, StoreError>;
    /// Intervals that ended after `since`, oldest first (to rebuild the graph on start).
    fn intervals_since(&self, since_unix_ns: i64) -> Result<Vec<MetricInterval>, StoreError>;
    /// Drops samples older than `before_unix_ns`; returns how many.
    fn prune_samples(&self, before_unix_ns: i64) -> Result<usize, StoreError>;
}

/// What consumes each newly stored interval (the service graph, detection). Called on the
/// ingest path: it must not block for long (queue, or update in memory).
pub trait IntervalSink: Send + Sync {
    fn accept(&self, interval: &MetricInterval);
}
