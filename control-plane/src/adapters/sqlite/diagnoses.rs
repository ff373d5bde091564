//! Diagnoses: the latest per incident, kept whole as JSON (nothing filters inside one), with
//! its class, confidence and route in columns for the queries that do.

use rusqlite::{params, OptionalExtension};

use super::{
    errors::{backend, corrupt, json_err},
    SqliteStore,
};
use crate::domain::{
    diagnose::{ports::DiagnosisStore, Diagnosis},
    incident::IncidentId,
    store::StoreError,
};

impl DiagnosisStore for SqliteStore {
    fn save_diagnosis(&self, d: &Diagnosis) -> Result<(), StoreError> {
        let body = serde_json::to_string(d).map_err(json_err("encoding a diagnosis"))?;
        self.conn()
            .execute(
                "INSERT INTO diagnoses (incident_id, class, confidence, route, diagnosed_unix_ns, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (incident_id) DO UPDATE SET class = excluded.class, \
                   confidence = excluded.confidence, route = excluded.route, \
                   diagnosed_unix_ns = excluded.diagnosed_unix_ns, body = excluded.body",
                params![
                    d.incident.0,
                    d.class.map(|c| c.id()),
                    d.confidence,
                    d.route.as_str(),
                    d.diagnosed_unix_ns,
                    body
                ],
            )
            .map_err(backend("saving a diagnosis"))?;
        Ok(())
    }

    fn diagnosis(&self, incident: IncidentId) -> Result<Option<Diagnosis>, StoreError> {
        let body: Option<String> = self
            .conn()
            .query_row(
                "SELECT body FROM diagnoses WHERE incident_id = ?1",
                params![incident.0],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend("reading a diagnosis"))?;
        body.map(|b| {
            serde_json::from_str(&b)
                .map_err(|e| corrupt("diagnosis of incident", incident.to_string(), e))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::diagnose::{FaultClass, Route};

    fn diagnosis(id: i64, class: FaultClass) -> Diagnosis {
        Diagnosis {
            incident: IncidentId(id),
            class: Some(class),
            subject: None,
            confidence: 0.8,
            gate: 0.6,
            route: Route::Remediation,
            explanation: "x".into(),
            breakdown: vec![],
            evidence: vec![],
            citations: vec![],
            recommended_actions: vec![],
            llm: false,
            llm_review: None,
            revisit_unix_ns: None,
            diagnosed_unix_ns: 1,
            fingerprint: "f".into(),
        }
    }

    #[test]
    fn the_latest_diagnosis_replaces_the_last_and_a_corrupt_one_is_named() {
        let store = SqliteStore::in_memory().expect("store");
        assert_eq!(store.diagnosis(IncidentId(1)).expect("read"), None);
        // A diagnosis belongs to an incident that exists (the foreign key says so).
        let orphan = store.save_diagnosis(&diagnosis(1, FaultClass::NetworkLoss));
        assert!(orphan.is_err(), "a diagnosis of no incident was kept");
        store
            .conn()
            .execute(
                "INSERT INTO incidents (id, kind, status, severity, node, workload_key, title, \
                 summary, opened_unix_ns, updated_unix_ns, occurrences, attributes) \
                 VALUES (1, 'oom_kill', 'open', 'critical', 'n', 'w', 't', 's', 1, 1, 1, '{}')",
                [],
            )
            .expect("an incident");
        store
            .save_diagnosis(&diagnosis(1, FaultClass::NetworkLoss))
            .expect("save");
        store
            .save_diagnosis(&diagnosis(1, FaultClass::Partition))
            .expect("save");
        let back = store.diagnosis(IncidentId(1)).expect("read").expect("some");
        assert_eq!(back.class, Some(FaultClass::Partition));
        store
            .conn()
            .execute("UPDATE diagnoses SET body = '{' WHERE incident_id = 1", [])
            .expect("corrupt it");
        let err = store.diagnosis(IncidentId(1)).expect_err("corrupt");
        assert!(err.to_string().contains("diagnosis of incident 1"), "{err}");
    }
}
