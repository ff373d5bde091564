//! What ingest needs to keep kernel events.

use super::{KernelEvent, StoredEvent};
use crate::store::StoreError;

/// What inserting a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Sequence numbers stored by this call (not seen before).
    pub inserted: Vec<u64>,
    /// Events already stored (a retried batch).
    pub duplicates: u32,
}

#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub node: Option<String>,
    pub kind: Option<String>,
    pub workload_key: Option<String>,
    pub since_unix_ns: Option<i64>,
    /// Only events before this time (exclusive). The newest `limit` are returned, so a
    /// window in the past needs its end, or newer events crowd it out.
    pub until_unix_ns: Option<i64>,
    pub limit: usize,
}

pub trait EventStore: Send + Sync {
    /// Stores the events not stored before, keyed on (node, seq), atomically.
    fn insert_batch(
        &self,
        events: &[KernelEvent],
        received_unix_ns: i64,
    ) -> Result<InsertOutcome, StoreError>;
    /// Highest sequence number stored for `node`, 0 if none.
    fn last_seq(&self, node: &str) -> Result<u64, StoreError>;
    fn list_events(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, StoreError>;
    fn get_event(&self, node: &str, seq: u64) -> Result<Option<StoredEvent>, StoreError>;
}
