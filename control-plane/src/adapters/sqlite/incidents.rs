//! Incidents, their kernel-event evidence, and their typed attributes (decoded for their kind
//! by `codec`).

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{
    codec::{decode_attributes, encode_attributes},
    errors::{backend, corrupt},
    SqliteStore,
};
use crate::domain::{
    entity::EntityId,
    incident::{
        ports::{IncidentQuery, IncidentStore},
        EvidenceRef, Finding, Incident, IncidentId, IncidentKind, IncidentStatus, Severity,
    },
    store::StoreError,
};

const INCIDENT_COLUMNS: &str = "id, kind, status, severity, node, workload_key, title, summary, \
     opened_unix_ns, updated_unix_ns, resolved_unix_ns, occurrences, attributes";

/// An incident row: SQLite's own failures in the outer result, attributes that do not decode
/// for the row's kind (a corrupt row, named) in the inner one.
fn incident_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Incident, StoreError>> {
    let text = |i: usize| row.get::<_, String>(i);
    let bad = |i: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown {what}").into(),
        )
    };
    let id = IncidentId(row.get(0)?);
    let kind = IncidentKind::parse(&text(1)?).ok_or_else(|| bad(1, "incident kind"))?;
    let status = IncidentStatus::parse(&text(2)?).ok_or_else(|| bad(2, "incident status"))?;
    let severity = Severity::parse(&text(3)?).ok_or_else(|| bad(3, "severity"))?;
    let (node, workload_key, title, summary) = (text(4)?, text(5)?, text(6)?, text(7)?);
    let (opened_unix_ns, updated_unix_ns, resolved_unix_ns) =
        (row.get(8)?, row.get(9)?, row.get(10)?);
    let occurrences = row.get::<_, i64>(11)? as u64;
    let attributes = text(12)?;
    Ok(decode_attributes(kind, &attributes)
        .map_err(|e| corrupt("incident", id.to_string(), e))
        .map(|attributes| Incident {
            id,
            kind,
            status,
            severity,
            node,
            workload_key: EntityId::new(workload_key),
            title,
            summary,
            opened_unix_ns,
            updated_unix_ns,
            resolved_unix_ns,
            occurrences,
            attributes,
        }))
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
        rows.map(|r| r.map_err(backend("reading incidents"))?)
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
