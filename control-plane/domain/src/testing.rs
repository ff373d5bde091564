//! In-memory fakes of the domain's ports for its unit tests.

use std::sync::Mutex;

use ed25519_dalek::{Signer as _, SigningKey};

use crate::{
    audit::{
        ports::{AuditStore, Signer},
        AuditRecord, Checkpoint,
    },
    incident::{
        ports::{IncidentQuery, IncidentStore},
        EvidenceRef, Finding, Incident, IncidentId, IncidentKind, IncidentStatus,
    },
    store::StoreError,
};

/// Incidents in memory: each finding opens one; enough for use cases that only create and
/// list them.
#[derive(Default)]
pub struct MemoryIncidents {
    pub findings: Mutex<Vec<Finding>>,
    incidents: Mutex<Vec<Incident>>,
}

impl MemoryIncidents {
    pub fn findings(&self) -> Vec<Finding> {
        self.findings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl IncidentStore for MemoryIncidents {
    fn find_open(&self, _: IncidentKind, _: &str, _: &str) -> Result<Option<Incident>, StoreError> {
        Ok(None)
    }

    fn create(&self, f: &Finding) -> Result<Incident, StoreError> {
        self.findings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(f.clone());
        let mut incidents = self.incidents.lock().unwrap_or_else(|p| p.into_inner());
        let incident = Incident {
            id: IncidentId(incidents.len() as i64 + 1),
            kind: f.kind(),
            status: IncidentStatus::Open,
            severity: f.severity,
            node: f.node.clone(),
            workload_key: f.workload_key.clone(),
            title: f.title.clone(),
            summary: f.summary.clone(),
            opened_unix_ns: f.time_unix_ns,
            updated_unix_ns: f.time_unix_ns,
            resolved_unix_ns: None,
            occurrences: 1,
            attributes: f.attributes(),
        };
        incidents.push(incident.clone());
        Ok(incident)
    }

    fn add_occurrence(&self, id: IncidentId, _: &Finding) -> Result<Incident, StoreError> {
        Err(StoreError::NoSuchIncident(id))
    }

    fn resolve(&self, id: IncidentId, _: i64) -> Result<(), StoreError> {
        Err(StoreError::NoSuchIncident(id))
    }

    fn reopen(&self, id: IncidentId, _: i64) -> Result<(), StoreError> {
        Err(StoreError::NoSuchIncident(id))
    }

    fn list(&self, _: &IncidentQuery) -> Result<Vec<Incident>, StoreError> {
        Ok(self
            .incidents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone())
    }

    fn get(&self, id: IncidentId) -> Result<Option<Incident>, StoreError> {
        Ok(self
            .list(&IncidentQuery::default())?
            .into_iter()
            .find(|i| i.id == id))
    }

    fn evidence(&self, _: IncidentId) -> Result<Vec<EvidenceRef>, StoreError> {
        Ok(Vec::new())
    }
}

/// An audit log's records and checkpoints in memory.
#[derive(Default)]
pub struct MemoryAudit {
    pub records: Mutex<Vec<AuditRecord>>,
    pub checkpoints: Mutex<Vec<Checkpoint>>,
}

impl AuditStore for MemoryAudit {
    fn append_record(&self, record: &AuditRecord) -> Result<(), StoreError> {
        let mut r = self.records.lock().expect("lock");
        if r.iter().any(|x| x.seq == record.seq) {
            return Err(StoreError::backend("appending", "seq taken"));
        }
        r.push(record.clone());
        Ok(())
    }
    fn records(&self, after_seq: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let r = self.records.lock().expect("lock");
        Ok(r.iter()
            .filter(|x| x.seq > after_seq)
            .take(limit)
            .cloned()
            .collect())
    }
    fn last_record(&self) -> Result<Option<AuditRecord>, StoreError> {
        Ok(self
            .records
            .lock()
            .expect("lock")
            .iter()
            .max_by_key(|x| x.seq)
            .cloned())
    }
    fn save_checkpoint(&self, c: &Checkpoint) -> Result<(), StoreError> {
        self.checkpoints.lock().expect("lock").push(c.clone());
        Ok(())
    }
    fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        Ok(self.checkpoints.lock().expect("lock").clone())
    }
}

/// A fixed Ed25519 key for checkpoints.
pub struct Key(pub SigningKey);

impl Signer for Key {
    fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }
    fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}
