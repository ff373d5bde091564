//! What Vigil writes to the audit log on its own: each verdict on an incident (a first
//! diagnosis, or a changed class or route), with the evidence it stood on.

use std::sync::Arc;

use serde_json::json;
use tracing::warn;

use super::{AuditEntry, AuditKind, AuditLog};
use crate::{diagnose::model::Diagnosis, incident::Incident, observe::Observer};

/// Appends diagnoses to the log as observers hear of them.
pub struct AuditTrail {
    log: Arc<AuditLog>,
}

impl AuditTrail {
    pub fn new(log: Arc<AuditLog>) -> Self {
        Self { log }
    }
}

/// The record of a diagnosis: the verdict, each voter's ballot and each tool's summary and
/// votes (the observations themselves stay with the stored diagnosis).
pub fn diagnosis_entry(incident: &Incident, d: &Diagnosis) -> AuditEntry {
    let class = d.class.map_or("none", |c| c.id());
    AuditEntry {
        kind: AuditKind::Diagnosis,
        incident: Some(incident.id),
        actor: "vigil".into(),
        summary: format!(
            "incident {} diagnosed as {class} ({:.2}, {}){}",
            incident.id,
            d.confidence,
            d.route.as_str(),
            if d.llm {
                " with an LLM's second opinion"
            } else {
                ""
            }
        ),
        body: json!({
            "class": d.class,
            "confidence": d.confidence,
            "gate": d.gate,
            "route": d.route,
            "explanation": d.explanation,
            "ballots": d.breakdown,
            "evidence": d.evidence.iter().map(|t| json!({
                "tool": t.tool, "entity": t.entity, "summary": t.summary, "votes": t.votes,
            })).collect::<Vec<_>>(),
            "citations": d.citations.iter().map(|c| &c.id).collect::<Vec<_>>(),
            "llm": d.llm,
            "fingerprint": d.fingerprint,
        }),
    }
}

impl Observer for AuditTrail {
    fn diagnosed(&self, incident: &Incident, diagnosis: &Diagnosis, _took_secs: f64) {
        if let Err(e) = self.log.append(diagnosis_entry(incident, diagnosis)) {
            warn!(incident = %incident.id, error = %e, "the diagnosis could not be written to the audit log");
        }
    }
}
