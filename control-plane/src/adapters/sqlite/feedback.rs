//! Operators' feedback on diagnoses: the latest per incident, whole as JSON, with its verdict
//! and class in columns.

use rusqlite::{params, OptionalExtension};

use super::{
    errors::{backend, corrupt, json_err},
    SqliteStore,
};
use crate::domain::{
    diagnose::feedback::{Feedback, FeedbackStore},
    incident::IncidentId,
    store::StoreError,
};

fn decode(incident: i64, body: &str) -> Result<Feedback, StoreError> {
    serde_json::from_str(body).map_err(|e| corrupt("feedback on incident", incident.to_string(), e))
}

impl FeedbackStore for SqliteStore {
    fn save_feedback(&self, f: &Feedback) -> Result<(), StoreError> {
        let body = serde_json::to_string(f).map_err(json_err("encoding feedback"))?;
        self.conn()
            .execute(
                "INSERT INTO feedback (incident_id, verdict, class, recorded_unix_ns, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (incident_id) DO UPDATE SET verdict = excluded.verdict, \
                   class = excluded.class, recorded_unix_ns = excluded.recorded_unix_ns, \
                   body = excluded.body",
                params![
                    f.incident.0,
                    f.verdict.as_str(),
                    f.class.id(),
                    f.recorded_unix_ns,
                    body
                ],
            )
            .map_err(backend("saving feedback"))?;
        Ok(())
    }

    fn feedback(&self, incident: IncidentId) -> Result<Option<Feedback>, StoreError> {
        let body: Option<String> = self
            .conn()
            .query_row(
                "SELECT body FROM feedback WHERE incident_id = ?1",
                params![incident.0],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend("reading feedback"))?;
        body.map(|b| decode(incident.0, &b)).transpose()
    }

    fn all_feedback(&self) -> Result<Vec<Feedback>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT incident_id, body FROM feedback ORDER BY recorded_unix_ns")
            .map_err(backend("listing feedback"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(backend("listing feedback"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, body) = row.map_err(backend("listing feedback"))?;
            out.push(decode(id, &body)?);
        }
        Ok(out)
    }
}
