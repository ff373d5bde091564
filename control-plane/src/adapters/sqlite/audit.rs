//! The audit log: one row per record (its whole canonical content as JSON, its sequence number,
//! time, kind and incident in columns) and one per signed checkpoint. Rows are only inserted;
//! nothing here updates or deletes them.

use rusqlite::{params, OptionalExtension};

use super::{
    errors::{backend, corrupt, json_err},
    SqliteStore,
};
use crate::domain::{
    audit::{ports::AuditStore, AuditRecord, Checkpoint},
    store::StoreError,
};

/// A record as stored; its place in the log is the `seq` column, whatever the JSON says.
fn decode(seq: i64, json: &str) -> Result<AuditRecord, StoreError> {
    let mut record: AuditRecord =
        serde_json::from_str(json).map_err(|e| corrupt("audit record", seq.to_string(), e))?;
    record.seq = u64::try_from(seq).map_err(|e| corrupt("audit record", seq.to_string(), e))?;
    Ok(record)
}

fn seq(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|e| StoreError::backend("numbering an audit record", e))
}

impl AuditStore for SqliteStore {
    fn append_record(&self, r: &AuditRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(r).map_err(json_err("encoding an audit record"))?;
        self.conn()
            .execute(
                "INSERT INTO audit (seq, at_unix_ns, kind, incident_id, record) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    seq(r.seq)?,
                    r.at_unix_ns,
                    r.kind.as_str(),
                    r.incident.map(|i| i.0),
                    json
                ],
            )
            .map_err(backend("appending an audit record"))?;
        Ok(())
    }

    fn records(&self, after_seq: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT seq, record FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2")
            .map_err(backend("reading the audit log"))?;
        let rows = stmt
            .query_map(
                params![seq(after_seq)?, i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )
            .map_err(backend("reading the audit log"))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, json) = row.map_err(backend("reading the audit log"))?;
            out.push(decode(seq, &json)?);
        }
        Ok(out)
    }

    fn last_record(&self) -> Result<Option<AuditRecord>, StoreError> {
        let row: Option<(i64, String)> = self
            .conn()
            .query_row(
                "SELECT seq, record FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(backend("reading the audit log's head"))?;
        row.map(|(seq, json)| decode(seq, &json)).transpose()
    }

    fn save_checkpoint(&self, c: &Checkpoint) -> Result<(), StoreError> {
        let json = serde_json::to_string(c).map_err(json_err("encoding an audit checkpoint"))?;
        self.conn()
            .execute(
                "INSERT INTO audit_checkpoints (size, checkpoint) VALUES (?1, ?2)",
                params![seq(c.size)?, json],
            )
            .map_err(backend("saving an audit checkpoint"))?;
        Ok(())
    }

    fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT size, checkpoint FROM audit_checkpoints ORDER BY size")
            .map_err(backend("reading audit checkpoints"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(backend("reading audit checkpoints"))?;
        let mut out = Vec::new();
        for row in rows {
            let (size, json) = row.map_err(backend("reading audit checkpoints"))?;
            out.push(
                serde_json::from_str(&json)
                    .map_err(|e| corrupt("audit checkpoint", size.to_string(), e))?,
            );
        }
        Ok(out)
    }
}
