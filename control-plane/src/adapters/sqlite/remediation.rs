//! Remediation's actions: one row each, whole as JSON, with what is queried (incident,
//! target, state, decision time) in columns. Cooldowns, rate limits, locks and approvals are
//! read from here, so they hold across a restart.

use rusqlite::{params, OptionalExtension};

use super::{
    errors::{backend, corrupt, json_err},
    SqliteStore,
};
use crate::domain::{
    incident::IncidentId,
    remediate::{ports::RemediationStore, ActionId, ActionRecord, ActionState},
    store::StoreError,
};

fn decode(id: i64, json: &str) -> Result<ActionRecord, StoreError> {
    let mut r: ActionRecord =
        serde_json::from_str(json).map_err(|e| corrupt("remediation action", id.to_string(), e))?;
    r.id = ActionId(id);
    Ok(r)
}

fn rows(
    stmt: &mut rusqlite::Statement<'_>,
    args: impl rusqlite::Params,
) -> Result<Vec<ActionRecord>, StoreError> {
    let rows = stmt
        .query_map(args, |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .map_err(backend("reading remediation actions"))?;
    let mut out = Vec::new();
    for row in rows {
        let (id, json) = row.map_err(backend("reading remediation actions"))?;
        out.push(decode(id, &json)?);
    }
    Ok(out)
}

impl RemediationStore for SqliteStore {
    fn insert_action(&self, r: &ActionRecord) -> Result<ActionId, StoreError> {
        let json = serde_json::to_string(r).map_err(json_err("encoding a remediation action"))?;
        let conn = self.conn();
        conn.execute(
            "INSERT INTO remediation_actions (incident_id, target, state, decided_unix_ns, record) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                r.request.incident.0,
                r.request.target.as_str(),
                r.state.as_str(),
                r.decided_unix_ns,
                json
            ],
        )
        .map_err(backend("storing a remediation action"))?;
        Ok(ActionId(conn.last_insert_rowid()))
    }

    fn update_action(&self, r: &ActionRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(r).map_err(json_err("encoding a remediation action"))?;
        let n = self
            .conn()
            .execute(
                "UPDATE remediation_actions SET state = ?2, record = ?3 WHERE id = ?1",
                params![r.id.0, r.state.as_str(), json],
            )
            .map_err(backend("updating a remediation action"))?;
        if n == 0 {
            return Err(StoreError::backend(
                "updating a remediation action",
                format!("action {} is not stored", r.id),
            ));
        }
        Ok(())
    }

    fn action(&self, id: ActionId) -> Result<Option<ActionRecord>, StoreError> {
        let json: Option<String> = self
            .conn()
            .query_row(
                "SELECT record FROM remediation_actions WHERE id = ?1",
                params![id.0],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend("reading a remediation action"))?;
        json.map(|j| decode(id.0, &j)).transpose()
    }

    fn actions(
        &self,
        incident: Option<IncidentId>,
        since_unix_ns: i64,
    ) -> Result<Vec<ActionRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id, record FROM remediation_actions \
                 WHERE decided_unix_ns >= ?1 AND (?2 IS NULL OR incident_id = ?2) ORDER BY id",
            )
            .map_err(backend("reading remediation actions"))?;
        rows(&mut stmt, params![since_unix_ns, incident.map(|i| i.0)])
    }

    fn actions_in(&self, states: &[ActionState]) -> Result<Vec<ActionRecord>, StoreError> {
        let conn = self.conn();
        let list: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
        // The states are the enum's own names, never input: safe to inline.
        let mut stmt = conn
            .prepare(&format!(
                "SELECT id, record FROM remediation_actions WHERE state IN ({}) ORDER BY id",
                list.join(", ")
            ))
            .map_err(backend("reading remediation actions"))?;
        rows(&mut stmt, [])
    }
}
