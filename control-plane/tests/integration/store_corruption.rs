//! What the SQLite store does with rows that no longer read back: an error naming the row,
//! never a silent default (before, corrupt incident attributes became `null` and corrupt node
//! rows fell back to empty probes and zero counters).

use std::sync::Arc;

use control_plane::{
    adapters::sqlite::SqliteStore,
    domain::{
        clock::{Clock, SystemClock},
        incident::{
            ports::{IncidentQuery, IncidentStore},
            IncidentId,
        },
        ingest::{Batch, CrashLoopPolicy, IngestParts, IngestService, KernelRules},
        node::{ports::NodeStore, NodeInfo},
        store::StoreError,
    },
    eval::synthetic::oom_kill,
};

fn corrupt(path: &std::path::Path, sql: &str) {
    let conn = rusqlite::Connection::open(path).expect("open the store file");
    conn.execute(sql, []).expect("corrupt a row");
}

#[test]
fn corrupt_incident_attributes_and_node_rows_are_errors_naming_the_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vigil.db");
    let store = Arc::new(SqliteStore::open(&path).expect("store"));
    let ingest = IngestService::new(IngestParts {
        events: store.clone(),
        incidents: store.clone(),
        nodes: store.clone(),
        rules: KernelRules::new(CrashLoopPolicy::default()),
        clock: Arc::new(SystemClock),
    });
    let opened = ingest
        .ingest(&Batch {
            node: "n1".into(),
            events: vec![oom_kill(1, SystemClock.now_unix_ns(), "cgroup/a")],
            stats: None,
        })
        .expect("ingest");
    let id: IncidentId = opened.incidents_opened[0];
    assert!(store.get(id).expect("readable").is_some());
    store
        .record_hello(&NodeInfo {
            name: "n1".into(),
            ..Default::default()
        })
        .expect("hello");

    corrupt(&path, "UPDATE incidents SET attributes = '{\"victim\": 7}'");
    let err = store.get(id).expect_err("corrupt attributes");
    assert!(
        matches!(&err, StoreError::Corrupt { what: "incident", key, .. } if *key == id.to_string()),
        "{err:?}"
    );
    assert!(
        store.list(&IncidentQuery::open(10)).is_err(),
        "listing does not skip or blank the bad row"
    );

    corrupt(&path, "UPDATE nodes SET stats = 'not json'");
    let err = store.list_nodes().expect_err("corrupt node stats");
    assert!(
        matches!(&err, StoreError::Corrupt { what: "node stats", key, .. } if key == "n1"),
        "{err:?}"
    );
}

#[test]
fn corrupt_samples_are_errors_naming_the_row() {
    use control_plane::{
        domain::interval::ports::{IntervalStore, SampleQuery},
        eval::synthetic::Fleet,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vigil.db");
    let store = SqliteStore::open(&path).expect("store");
    let interval = Fleet::new(1).interval(1, SystemClock.now_unix_ns(), None);
    assert!(store.insert_interval(&interval).expect("insert"));
    let all = SampleQuery {
        limit: 1000,
        ..Default::default()
    };
    assert!(!store.samples(&all).expect("readable").is_empty());

    corrupt(
        &path,
        "UPDATE samples SET sample = 'not json' WHERE kind = 'flow'",
    );
    let err = store.samples(&all).expect_err("a corrupt observation");
    assert!(
        matches!(&err, StoreError::Corrupt { what: "sample", .. }),
        "{err:?}"
    );

    corrupt(&path, "UPDATE samples SET kind = 'bogus', sample = '{}'");
    let err = store.samples(&all).expect_err("an unknown kind");
    assert!(
        matches!(&err, StoreError::Corrupt { what: "sample", .. }),
        "an unknown kind is not read as a flow: {err:?}"
    );
}
