//! The store's tables: events, incidents, their evidence and diagnoses, baselines, nodes, metric
//! intervals and their samples.

pub const SCHEMA: &str = "
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
CREATE TABLE IF NOT EXISTS diagnoses (
    incident_id INTEGER PRIMARY KEY REFERENCES incidents (id),
    class TEXT,
    confidence REAL NOT NULL,
    route TEXT NOT NULL,
    diagnosed_unix_ns INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    incident_id INTEGER PRIMARY KEY REFERENCES incidents (id),
    verdict TEXT NOT NULL,
    class TEXT NOT NULL,
    recorded_unix_ns INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at_unix_ns INTEGER NOT NULL,
    kind TEXT NOT NULL,
    incident_id INTEGER,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_incident ON audit (incident_id);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    size INTEGER PRIMARY KEY,
    checkpoint TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS remediation_actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL,
    target TEXT NOT NULL,
    state TEXT NOT NULL,
    decided_unix_ns INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS remediation_by_incident ON remediation_actions (incident_id);
CREATE INDEX IF NOT EXISTS remediation_by_state ON remediation_actions (state);
CREATE INDEX IF NOT EXISTS remediation_by_time ON remediation_actions (decided_unix_ns);
CREATE TABLE IF NOT EXISTS api_tokens (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_unix_ns INTEGER NOT NULL,
    created_by TEXT NOT NULL
);
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
pub const INTERVALS: &str = "
CREATE TABLE IF NOT EXISTS metric_intervals (
    node TEXT NOT NULL,
    seq INTEGER NOT NULL,
    start_unix_ns INTEGER NOT NULL,
    end_unix_ns INTEGER NOT NULL,
    maps TEXT NOT NULL,
    PRIMARY KEY (node, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS metric_intervals_by_end ON metric_intervals (end_unix_ns);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY,
    node TEXT NOT NULL,
    interval_seq INTEGER NOT NULL,
    start_unix_ns INTEGER NOT NULL,
    end_unix_ns INTEGER NOT NULL,
    kind TEXT NOT NULL,
    workload_key TEXT NOT NULL,
    sample TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_by_kind ON samples (kind, end_unix_ns);
DROP INDEX IF EXISTS samples_by_workload;
CREATE INDEX IF NOT EXISTS samples_by_workload_kind ON samples (workload_key, kind, end_unix_ns);
CREATE INDEX IF NOT EXISTS samples_by_interval ON samples (node, interval_seq);
";
