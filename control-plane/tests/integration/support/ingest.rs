//! Ingest as the tests wire it over the real store: three restarts in a minute make a crash
//! loop, and a service counts as up after 30 s.

use std::{sync::Arc, time::Duration};

use control_plane::{
    adapters::sqlite::SqliteStore,
    domain::{
        clock::Clock,
        incident::ports::IncidentStore,
        ingest::{CrashLoopPolicy, IngestParts, IngestService, KernelRules},
    },
};

/// Ingest into `store`, writing incidents through `incidents` (the store itself, or the store
/// with observers around it).
pub fn ingest(
    store: &Arc<SqliteStore>,
    incidents: Arc<dyn IncidentStore>,
    clock: Arc<dyn Clock>,
) -> IngestService {
    IngestService::new(IngestParts {
        events: store.clone(),
        incidents,
        nodes: store.clone(),
        rules: KernelRules::new(CrashLoopPolicy {
            restarts: 3,
            window: Duration::from_secs(60),
            service_uptime: Duration::from_secs(30),
        }),
        clock,
    })
}
