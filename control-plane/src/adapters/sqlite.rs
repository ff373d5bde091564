//! The embedded store: one SQLite file (WAL) for events, incidents and nodes (metric
//! intervals: `sqlite_telemetry`).
//!
//! Domain values that the store never filters on (workload details, event payloads, incident
//! attributes) are kept as JSON; everything queried has its own column and index. A stored
//! value that no longer reads back is an error naming the row (`StoreError::Corrupt`), never a
//! silent default.

use std::{path::Path, sync::Mutex};

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::sqlite_codec::{decode_attributes, encode_attributes, BaselineCodec};
use crate::domain::{
    clock::{Clock, SystemClock},
    detection::{
        baseline::EntityBaseline,
        ports::{BaselineStore, StoredBaseline},
    },
    entity::{EntityId, Subject},
    event::{
        ports::{EventQuery, EventStore, InsertOutcome},
        KernelEvent, StoredEvent,
    },
    incident::{
        ports::{IncidentQuery, IncidentStore},
        EvidenceRef, Finding, Incident, IncidentId, IncidentKind, IncidentStatus, Severity,
    },
    node::{ports::NodeStore, AgentStats, NodeInfo},
    store::StoreError,
};

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS events (
    node TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    time_unix_ns INTEGER NOT NULL,
    kernel_time_ns INTEGER NOT NULL,
    received_unix_ns INTEGER NOT NULL,
    stored_unix_ns INTEGER NOT NULL,
    workload_key TEXT NOT NULL,
    task TEXT NOT NULL,
    workload TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (node, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_time ON events (time_unix_ns);
CREATE INDEX IF NOT EXISTS events_by_workload ON events (workload_key, time_unix_ns);
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    severity TEXT NOT NULL,
    node TEXT NOT NULL,
    workload_key TEXT NOT NULL,
    title TEXT NOT NULL,
    summary TEXT NOT NULL,
    opened_unix_ns INTEGER NOT NULL,
    updated_unix_ns INTEGER NOT NULL,
    resolved_unix_ns INTEGER,
    occurrences INTEGER NOT NULL,
    attributes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_open ON incidents (status, kind, node, workload_key);
CREATE TABLE IF NOT EXISTS incident_evidence (
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    node TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (incident_id, node, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS baselines (
    entity TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
    name TEXT PRIMARY KEY,
    kernel_release TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    protocol_version INTEGER NOT NULL,
    probes TEXT NOT NULL,
    stats TEXT NOT NULL,
    last_seen_unix_ns INTEGER NOT NULL
);
";

pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// Stamps rows with when they were stored.
    clock: Box<dyn Clock>,
}

pub(super) fn backend(action: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::Backend {
        action,
        source: Box::new(e),
    }
}

pub(super) fn json_err(action: &'static str) -> impl FnOnce(serde_json::Error) -> StoreError {
    move |e| StoreError::Backend {
        action,
        source: Box::new(e),
    }
}

/// A stored value that does not read back.
pub(super) fn corrupt(
    what: &'static str,
    key: impl Into<String>,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> StoreError {
    StoreError::Corrupt {
        what,
        key: key.into(),
        source: source.into(),
    }
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Backend {
                action: "creating the store directory",
                source: Box::new(e),
            })?;
        }
        let conn = Connection::open(path).map_err(backend("opening the store"))?;
        Self::init(conn)
    }

    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(backend("opening the store"))?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend("configuring the store"))?;
        conn.execute_batch(SCHEMA)
            .map_err(backend("creating the schema"))?;
        conn.execute_batch(super::sqlite_telemetry::SCHEMA)
            .map_err(backend("creating the telemetry schema"))?;
        Ok(Self {
            conn: Mutex::new(conn),
            clock: Box::new(SystemClock),
        })
    }

    pub(super) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

// ---- events ----

const EVENT_COLUMNS: &str =
    "node, seq, time_unix_ns, kernel_time_ns, received_unix_ns, stored_unix_ns, task, workload, detail";

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    fn parse<T: serde::de::DeserializeOwned>(row: &Row<'_>, i: usize) -> rusqlite::Result<T> {
        let text: String = row.get(i)?;
        serde_json::from_str(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    }
    Ok(StoredEvent {
        event: KernelEvent {
            node: row.get(0)?,
            seq: row.get::<_, i64>(1)? as u64,
            time_unix_ns: row.get(2)?,
            kernel_time_ns: row.get::<_, i64>(3)? as u64,
            task: parse(row, 6)?,
            workload: parse(row, 7)?,
            kind: parse(row, 8)?,
        },
        received_unix_ns: row.get(4)?,
        stored_unix_ns: row.get(5)?,
    })
}

impl EventStore for SqliteStore {
    fn insert_batch(
        &self,
        events: &[KernelEvent],
        received_unix_ns: i64,
    ) -> Result<InsertOutcome, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction()
            .map_err(backend("starting a transaction"))?;
        let mut outcome = InsertOutcome::default();
        {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "INSERT OR IGNORE INTO events ({EVENT_COLUMNS}, kind, workload_key) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                ))
                .map_err(backend("preparing the event insert"))?;
            let stored = self.clock.now_unix_ns();
            for e in events {
                let changed = stmt
                    .execute(params![
                        e.node,
                        e.seq as i64,
                        e.time_unix_ns,
                        e.kernel_time_ns as i64,
                        received_unix_ns,
                        stored,
                        serde_json::to_string(&e.task).map_err(json_err("encoding a task"))?,
                        serde_json::to_string(&e.workload)
                            .map_err(json_err("encoding a workload"))?,
                        serde_json::to_string(&e.kind).map_err(json_err("encoding an event"))?,
                        e.kind.name(),
                        e.workload.key.as_str(),
                    ])
                    .map_err(backend("inserting an event"))?;
                if changed == 1 {
                    outcome.inserted.push(e.seq);
                } else {
                    outcome.duplicates += 1;
                }
            }
        }
        tx.commit().map_err(backend("committing events"))?;
        outcome.inserted.sort_unstable();
        Ok(outcome)
    }

    fn last_seq(&self, node: &str) -> Result<u64, StoreError> {
        let last: Option<i64> = self
            .conn()
            .query_row("SELECT MAX(seq) FROM events WHERE node = ?1", [node], |r| {
                r.get(0)
            })
            .map_err(backend("reading the last sequence number"))?;
        Ok(last.unwrap_or(0) as u64)
    }

    fn list_events(&self, q: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events \
                 WHERE (?1 IS NULL OR node = ?1) AND (?2 IS NULL OR kind = ?2) \
                   AND (?3 IS NULL OR workload_key = ?3) AND (?4 IS NULL OR time_unix_ns >= ?4) \
                 ORDER BY time_unix_ns DESC, node, seq DESC LIMIT ?5"
            ))
            .map_err(backend("preparing the event query"))?;
        let rows = stmt
            .query_map(
                params![
                    q.node,
                    q.kind,
                    q.workload_key,
                    q.since_unix_ns,
                    q.limit.min(i64::MAX as usize) as i64
                ],
                event_from_row,
            )
            .map_err(backend("querying events"))?;
        rows.collect::<Result<_, _>>()
            .map_err(backend("reading events"))
    }

    fn get_event(&self, node: &str, seq: u64) -> Result<Option<StoredEvent>, StoreError> {
        self.conn()
            .query_row(
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE node = ?1 AND seq = ?2"),
                params![node, seq as i64],
                event_from_row,
            )
            .optional()
            .map_err(backend("reading an event"))
    }
}

// ---- incidents ----

const INCIDENT_COLUMNS: &str = "id, kind, status, severity, node, workload_key, title, summary, \
     opened_unix_ns, updated_unix_ns, resolved_unix_ns, occurrences, attributes";

/// An incident row as stored: the incident but for its attributes, which are decoded for its
/// kind once the row is out of SQLite's hands.
struct IncidentRow {
    head: Incident<()>,
    attributes: String,
}

fn incident_from_row(row: &Row<'_>) -> rusqlite::Result<IncidentRow> {
    let text = |i: usize| row.get::<_, String>(i);
    let bad = |i: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown {what}").into(),
        )
    };
    Ok(IncidentRow {
        head: Incident {
            id: IncidentId(row.get(0)?),
            kind: IncidentKind::parse(&text(1)?).ok_or_else(|| bad(1, "incident kind"))?,
            status: IncidentStatus::parse(&text(2)?).ok_or_else(|| bad(2, "incident status"))?,
            severity: Severity::parse(&text(3)?).ok_or_else(|| bad(3, "severity"))?,
            node: text(4)?,
            workload_key: EntityId::new(text(5)?),
            title: text(6)?,
            summary: text(7)?,
            opened_unix_ns: row.get(8)?,
            updated_unix_ns: row.get(9)?,
            resolved_unix_ns: row.get(10)?,
            occurrences: row.get::<_, i64>(11)? as u64,
            attributes: (),
        },
        attributes: text(12)?,
    })
}

impl IncidentRow {
    /// The incident with its attributes decoded for its kind, or the row named as corrupt.
    fn decode(self) -> Result<Incident, StoreError> {
        let head = self.head;
        let attributes = decode_attributes(head.kind, &self.attributes)
            .map_err(|e| corrupt("incident", head.id.to_string(), e))?;
        Ok(head.with_attributes(attributes))
    }
}

fn insert_evidence(
    conn: &Connection,
    id: IncidentId,
    evidence: &[EvidenceRef],
) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO incident_evidence (incident_id, node, seq) VALUES (?1, ?2, ?3)",
        )
        .map_err(backend("preparing the evidence insert"))?;
    for e in evidence {
        stmt.execute(params![id.0, e.node, e.seq as i64])
            .map_err(backend("inserting evidence"))?;
    }
    Ok(())
}

impl SqliteStore {
    fn get_incident(conn: &Connection, id: IncidentId) -> Result<Option<Incident>, StoreError> {
        conn.query_row(
            &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"),
            [id.0],
            incident_from_row,
        )
        .optional()
        .map_err(backend("reading an incident"))?
        .map(IncidentRow::decode)
        .transpose()
    }
}

impl IncidentStore for SqliteStore {
    fn find_open(
        &self,
        kind: IncidentKind,
        node: &str,
        workload_key: &str,
    ) -> Result<Option<Incident>, StoreError> {
        self.conn()
            .query_row(
                &format!(
                    "SELECT {INCIDENT_COLUMNS} FROM incidents \
                     WHERE status = 'open' AND kind = ?1 AND node = ?2 AND workload_key = ?3 \
                     ORDER BY id DESC LIMIT 1"
                ),
                params![kind.as_str(), node, workload_key],
                incident_from_row,
            )
            .optional()
            .map_err(backend("finding an open incident"))?
            .map(IncidentRow::decode)
            .transpose()
    }

    fn create(&self, f: &Finding) -> Result<Incident, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction()
            .map_err(backend("starting a transaction"))?;
        tx.execute(
            "INSERT INTO incidents (kind, status, severity, node, workload_key, title, summary, \
             opened_unix_ns, updated_unix_ns, occurrences, attributes) \
             VALUES (?1, 'open', ?2, ?3, ?4, ?5, ?6, ?7, ?7, 1, ?8)",
            params![
                f.kind().as_str(),
                f.severity.as_str(),
                f.node,
                f.workload_key.as_str(),
                f.title,
                f.summary,
                f.time_unix_ns,
                encode_attributes(&f.attributes())?
            ],
        )
        .map_err(backend("creating an incident"))?;
        let id = IncidentId(tx.last_insert_rowid());
        insert_evidence(&tx, id, &f.evidence)?;
        let incident = Self::get_incident(&tx, id)?.ok_or(StoreError::NoSuchIncident(id))?;
        tx.commit().map_err(backend("committing an incident"))?;
        Ok(incident)
    }

    fn add_occurrence(&self, id: IncidentId, f: &Finding) -> Result<Incident, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction()
            .map_err(backend("starting a transaction"))?;
        let changed = tx
            .execute(
                "UPDATE incidents SET occurrences = occurrences + 1, \
                 updated_unix_ns = MAX(updated_unix_ns, ?2), title = ?3, summary = ?4, attributes = ?5, \
                 severity = CASE WHEN ?6 = 'critical' THEN 'critical' ELSE severity END, workload_key = ?7 \
                 WHERE id = ?1",
                params![
                    id.0,
                    f.time_unix_ns,
                    f.title,
                    f.summary,
                    encode_attributes(&f.attributes())?,
                    f.severity.as_str(),
                    f.workload_key.as_str()
                ],
            )
            .map_err(backend("updating an incident"))?;
        if changed == 0 {
            return Err(StoreError::NoSuchIncident(id));
        }
        insert_evidence(&tx, id, &f.evidence)?;
        let incident = Self::get_incident(&tx, id)?.ok_or(StoreError::NoSuchIncident(id))?;
        tx.commit()
            .map_err(backend("committing an incident update"))?;
        Ok(incident)
    }

    fn resolve(&self, id: IncidentId, at_unix_ns: i64) -> Result<(), StoreError> {
        let changed = self
            .conn()
            .execute(
                "UPDATE incidents SET status = 'resolved', resolved_unix_ns = ?2 WHERE id = ?1 AND status = 'open'",
                params![id.0, at_unix_ns],
            )
            .map_err(backend("resolving an incident"))?;
        if changed == 0 {
            return Err(StoreError::NoSuchIncident(id));
        }
        Ok(())
    }

    fn reopen(&self, id: IncidentId, at_unix_ns: i64) -> Result<(), StoreError> {
        let changed = self
            .conn()
            .execute(
                "UPDATE incidents SET status = 'open', resolved_unix_ns = NULL, \
                 updated_unix_ns = MAX(updated_unix_ns, ?2) WHERE id = ?1",
                params![id.0, at_unix_ns],
            )
            .map_err(backend("reopening an incident"))?;
        if changed == 0 {
            return Err(StoreError::NoSuchIncident(id));
        }
        Ok(())
    }

    fn list(&self, q: &IncidentQuery) -> Result<Vec<Incident>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents \
                 WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR kind = ?2) \
                 ORDER BY id DESC LIMIT ?3"
            ))
            .map_err(backend("preparing the incident query"))?;
        let rows = stmt
            .query_map(
                params![
                    q.status.map(IncidentStatus::as_str),
                    q.kind.map(IncidentKind::as_str),
                    q.limit.min(i64::MAX as usize) as i64
                ],
                incident_from_row,
            )
            .map_err(backend("querying incidents"))?;
        rows.map(|r| r.map_err(backend("reading incidents"))?.decode())
            .collect()
    }

    fn get(&self, id: IncidentId) -> Result<Option<Incident>, StoreError> {
        Self::get_incident(&self.conn(), id)
    }

    fn evidence(&self, id: IncidentId) -> Result<Vec<EvidenceRef>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT node, seq FROM incident_evidence WHERE incident_id = ?1 ORDER BY node, seq",
            )
            .map_err(backend("preparing the evidence query"))?;
        let rows = stmt
            .query_map([id.0], |r| {
                Ok(EvidenceRef {
                    node: r.get(0)?,
                    seq: r.get::<_, i64>(1)? as u64,
                })
            })
            .map_err(backend("querying evidence"))?;
        rows.collect::<Result<_, _>>()
            .map_err(backend("reading evidence"))
    }
}

// ---- nodes ----

impl NodeStore for SqliteStore {
    fn record_hello(&self, n: &NodeInfo) -> Result<(), StoreError> {
        let probes = serde_json::to_string(&n.probes).map_err(json_err("encoding probes"))?;
        let stats = serde_json::to_string(&n.stats).map_err(json_err("encoding stats"))?;
        self.conn()
            .execute(
                "INSERT INTO nodes (name, kernel_release, agent_version, protocol_version, probes, stats, last_seen_unix_ns) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (name) DO UPDATE SET kernel_release = ?2, agent_version = ?3, \
                 protocol_version = ?4, probes = ?5, last_seen_unix_ns = ?7",
                params![n.name, n.kernel_release, n.agent_version, n.protocol_version, probes, stats, n.last_seen_unix_ns],
            )
            .map_err(backend("recording a node"))?;
        Ok(())
    }

    fn record_stats(&self, node: &str, stats: &AgentStats, at: i64) -> Result<(), StoreError> {
        let stats = serde_json::to_string(stats).map_err(json_err("encoding stats"))?;
        self.conn()
            .execute(
                "UPDATE nodes SET stats = ?2, last_seen_unix_ns = ?3 WHERE name = ?1",
                params![node, stats, at],
            )
            .map_err(backend("recording node stats"))?;
        Ok(())
    }

    fn list_nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT name, kernel_release, agent_version, protocol_version, probes, stats, last_seen_unix_ns \
                 FROM nodes ORDER BY name",
            )
            .map_err(backend("preparing the node query"))?;
        let rows = stmt
            .query_map([], |r| {
                let node = NodeInfo {
                    name: r.get(0)?,
                    kernel_release: r.get(1)?,
                    agent_version: r.get(2)?,
                    protocol_version: r.get(3)?,
                    probes: Vec::new(),
                    stats: AgentStats::default(),
                    last_seen_unix_ns: r.get(6)?,
                };
                Ok((node, r.get::<_, String>(4)?, r.get::<_, String>(5)?))
            })
            .map_err(backend("querying nodes"))?;
        rows.map(|row| {
            let (mut node, probes, stats) = row.map_err(backend("reading nodes"))?;
            node.probes =
                serde_json::from_str(&probes).map_err(|e| corrupt("node probes", &node.name, e))?;
            node.stats =
                serde_json::from_str(&stats).map_err(|e| corrupt("node stats", &node.name, e))?;
            Ok(node)
        })
        .collect()
    }
}

impl BaselineStore for SqliteStore {
    fn load_baselines(&self) -> Result<Vec<StoredBaseline>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT entity, state FROM baselines ORDER BY entity")
            .map_err(backend("reading baselines"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(backend("reading baselines"))?;
        rows.map(|row| {
            let (key, state) = row.map_err(backend("reading baselines"))?;
            let state = BaselineCodec::decode(&key, &state);
            Ok(StoredBaseline { key, state })
        })
        .collect()
    }

    fn save_baselines(&self, baselines: &[(Subject, EntityBaseline)]) -> Result<(), StoreError> {
        // Encode all before writing any: a baseline that cannot be encoded fails the save.
        let rows: Vec<(String, String)> = baselines
            .iter()
            .map(|(subject, b)| BaselineCodec::encode(subject, b))
            .collect::<Result<_, _>>()?;
        let mut conn = self.conn();
        let tx = conn
            .transaction()
            .map_err(backend("starting a transaction"))?;
        {
            let mut stmt = tx
                .prepare(
                    "INSERT INTO baselines (entity, state) VALUES (?1, ?2) \
                     ON CONFLICT (entity) DO UPDATE SET state = excluded.state",
                )
                .map_err(backend("saving baselines"))?;
            for (entity, state) in &rows {
                stmt.execute(params![entity, state])
                    .map_err(backend("saving baselines"))?;
            }
        }
        tx.commit().map_err(backend("committing baselines"))
    }
}
