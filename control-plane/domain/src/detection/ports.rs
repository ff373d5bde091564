//! What detection needs from the outside: somewhere to keep baselines across restarts, and a
//! view of the service graph.

use super::baseline::EntityBaseline;
use crate::{
    entity::{EdgeId, EntityId, Subject},
    interval::Endpoint,
    store::StoreError,
};

/// A stored baseline as it read back: its key, and its state or why that no longer reads.
#[derive(Debug)]
pub struct StoredBaseline {
    pub key: String,
    pub state: Result<(Subject, EntityBaseline), StoreError>,
}

/// Detection baselines, persisted so a restarted control plane does not relearn from zero.
/// The adapter chooses the encoding; a baseline it cannot encode fails the whole save, so the
/// caller keeps every one of them for the next attempt.
pub trait BaselineStore: Send + Sync {
    /// Every stored baseline.
    fn load_baselines(&self) -> Result<Vec<StoredBaseline>, StoreError>;
    /// Upserts these baselines atomically: all or none.
    fn save_baselines(&self, baselines: &[(Subject, EntityBaseline)]) -> Result<(), StoreError>;
}

/// What detection needs from the service graph.
pub trait GraphView: Send + Sync {
    /// The entity serving `endpoint`, as seen from `node`.
    fn server_entity(&self, node: &str, endpoint: &Endpoint) -> EntityId;
    /// Current call edges, caller → callee.
    fn call_edges(&self, now_unix_ns: i64) -> Vec<EdgeId>;
}
