//! The ingest use case over the real SQLite adapter: dedup of retried batches, one incident
//! per workload while open, resolution after a quiet period, and a recurrence afterwards
//! opening a new incident.

use std::{sync::Arc, time::Duration};

use control_plane::{
    adapters::sqlite::SqliteStore,
    domain::{
        clock::{Clock, ManualClock, SystemClock},
        event::KernelEvent,
        incident::{
            ports::{IncidentQuery, IncidentStore},
            IncidentStatus,
        },
        ingest::{Batch, CrashLoopPolicy, IngestParts, IngestService, KernelRules},
    },
    eval::synthetic::oom_kill,
};

const SECOND: i64 = 1_000_000_000;

fn batch(events: Vec<KernelEvent>) -> Batch {
    Batch {
        node: "n1".into(),
        events,
        stats: None,
    }
}

#[test]
fn incidents_deduplicate_resolve_and_recur() {
    let store = Arc::new(SqliteStore::in_memory().expect("store"));
    let now = SystemClock.now_unix_ns();
    let clock = Arc::new(ManualClock::at(now));
    let service = IngestService::new(IngestParts {
        events: store.clone(),
        incidents: store.clone(),
        nodes: store.clone(),
        rules: KernelRules::new(CrashLoopPolicy {
            restarts: 3,
            window: Duration::from_secs(60),
            ..CrashLoopPolicy::default()
        }),
        clock: clock.clone(),
    });

    let first = service
        .ingest(&batch(vec![oom_kill(1, now, "cgroup/a")]))
        .expect("ingest");
    assert_eq!(first.incidents_opened.len(), 1);
    let id = first.incidents_opened[0];

    // A retried batch stores nothing and evaluates nothing.
    let retry = service
        .ingest(&batch(vec![oom_kill(1, now, "cgroup/a")]))
        .expect("retry");
    assert_eq!(
        (retry.stored.inserted.len(), retry.stored.duplicates),
        (0, 1)
    );
    assert!(retry.incidents_opened.is_empty() && retry.incidents_updated.is_empty());

    // Another kill of the same workload updates the open incident; another workload opens its own.
    let more = service
        .ingest(&batch(vec![
            oom_kill(2, now + SECOND, "cgroup/a"),
            oom_kill(3, now + SECOND, "cgroup/b"),
        ]))
        .expect("more");
    assert_eq!(more.incidents_updated, vec![id]);
    assert_eq!(more.incidents_opened.len(), 1);
    let incident = store.get(id).expect("get").expect("exists");
    assert_eq!(incident.occurrences, 2);
    assert_eq!(store.evidence(id).expect("evidence").len(), 2);

    // Quiet for the configured period: both resolve; not before.
    clock.set(now + 5 * SECOND);
    assert!(service
        .resolve_quiet(10 * SECOND)
        .expect("resolve")
        .is_empty());
    clock.set(now + 20 * SECOND);
    let resolved = service.resolve_quiet(10 * SECOND).expect("resolve");
    assert_eq!(resolved.len(), 2);
    let open = store
        .list(&IncidentQuery {
            status: Some(IncidentStatus::Open),
            kind: None,
            limit: 10,
        })
        .expect("list");
    assert!(open.is_empty());

    // A recurrence after resolution opens a new incident.
    let again = service
        .ingest(&batch(vec![oom_kill(4, now + 30 * SECOND, "cgroup/a")]))
        .expect("again");
    assert_eq!(again.incidents_opened.len(), 1);
    assert_ne!(again.incidents_opened[0], id);
}

/// An incident still open (the quiet period is long) takes a repeat within the crash-loop
/// window as another occurrence, but a finding after a longer gap is a new episode: the old
/// incident resolves when its episode ended, and the new one opens with its own diagnosis.
#[test]
fn a_repeat_after_the_episode_gap_opens_a_new_incident() {
    let store = Arc::new(SqliteStore::in_memory().expect("store"));
    let now = SystemClock.now_unix_ns();
    let clock = Arc::new(ManualClock::at(now));
    let service = IngestService::new(IngestParts {
        events: store.clone(),
        incidents: store.clone(),
        nodes: store.clone(),
        rules: KernelRules::new(CrashLoopPolicy {
            window: Duration::from_secs(60),
            ..CrashLoopPolicy::default()
        }),
        clock: clock.clone(),
    });
    let first = service
        .ingest(&batch(vec![oom_kill(1, now, "cgroup/a")]))
        .expect("ingest");
    let id = first.incidents_opened[0];
    clock.set(now + 50 * SECOND);
    let repeat = service
        .ingest(&batch(vec![oom_kill(2, now + 50 * SECOND, "cgroup/a")]))
        .expect("repeat");
    assert_eq!(repeat.incidents_updated, vec![id], "within the window");

    // 61 s after the last occurrence: a new episode.
    clock.set(now + 111 * SECOND);
    let later = service
        .ingest(&batch(vec![oom_kill(3, now + 111 * SECOND, "cgroup/a")]))
        .expect("later");
    assert_eq!(later.incidents_opened.len(), 1);
    assert_ne!(later.incidents_opened[0], id);
    let old = store.get(id).expect("get").expect("exists");
    assert_eq!(old.status, IncidentStatus::Resolved);
    assert_eq!(old.occurrences, 2);
    assert_eq!(
        old.resolved_unix_ns,
        Some(now + 110 * SECOND),
        "when its episode ended"
    );
}
