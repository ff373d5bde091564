//! Kernel events: one row per (node, seq), so a retried batch is stored once.

use rusqlite::{params, OptionalExtension, Row};

use super::{
    errors::{backend, json_err},
    filter::Filter,
    SqliteStore,
};
use crate::domain::{
    clock::{Clock, SystemClock},
    event::{
        ports::{EventQuery, EventStore, InsertOutcome},
        KernelEvent, StoredEvent,
    },
    store::StoreError,
};

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
            // When the row was written: the wall clock, whatever clock the use cases run on.
            let stored = SystemClock.now_unix_ns();
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
        let filter = Filter::default()
            .and("node", "=", q.node.clone())
            .and("kind", "=", q.kind.clone())
            .and("workload_key", "=", q.workload_key.clone())
            .and("time_unix_ns", ">=", q.since_unix_ns)
            .and("time_unix_ns", "<", q.until_unix_ns);
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events{}",
            filter.sql(" ORDER BY time_unix_ns DESC, node, seq DESC LIMIT ?")
        );
        let mut params = filter.params;
        params.push(rusqlite::types::Value::Integer(
            q.limit.min(i64::MAX as usize) as i64,
        ));
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&sql)
            .map_err(backend("preparing the event query"))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params), event_from_row)
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
