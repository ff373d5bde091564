//! The operator's word on a diagnosis: confirmed, or corrected to another class. It is kept
//! beside the diagnosis (which stays as Vigil made it), so what Vigil got right and wrong can
//! be counted, and learned from, on incidents it did not see in the lab.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{model::Diagnosis, ports::DiagnosisStore, taxonomy::FaultClass};
use crate::{
    audit::{AuditEntry, AuditKind, AuditLog},
    clock::Clock,
    incident::{ports::IncidentStore, IncidentId},
    store::StoreError,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The diagnosed class is right.
    Confirmed,
    /// The class was another.
    Corrected,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Corrected => "corrected",
        }
    }
}

/// One operator's verdict on an incident's diagnosis (the latest replaces the last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    pub incident: IncidentId,
    pub verdict: Verdict,
    /// The class the incident really was.
    pub class: FaultClass,
    /// What Vigil had said, and how sure it was, when the operator judged it.
    pub diagnosed: Option<FaultClass>,
    pub confidence: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub recorded_unix_ns: i64,
}

/// Where feedback is kept.
pub trait FeedbackStore: Send + Sync {
    fn save_feedback(&self, feedback: &Feedback) -> Result<(), StoreError>;
    fn feedback(&self, incident: IncidentId) -> Result<Option<Feedback>, StoreError>;
    /// Every incident's latest feedback, oldest first.
    fn all_feedback(&self) -> Result<Vec<Feedback>, StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    #[error("incident {0} not found")]
    NoSuchIncident(IncidentId),
    #[error("incident {0} has no diagnosis yet: wait a few seconds, then judge it")]
    NotDiagnosed(IncidentId),
    #[error("incident {0}'s diagnosis names no class, so there is nothing to confirm: use `correct --class <id>`")]
    NothingToConfirm(IncidentId),
    #[error("confirm agrees with the diagnosis ({diagnosed}); to say it was {given}, use `correct --class {given}`")]
    ConfirmedAnotherClass {
        diagnosed: FaultClass,
        given: FaultClass,
    },
    #[error(
        "a correction needs the class it really was: --class <id>, one of {}",
        FaultClass::ids()
    )]
    NoClass,
    #[error("{given:?} is not a fault class; use one of {}", FaultClass::ids())]
    UnknownClass { given: String },
    #[error("the class is {0} already: use `confirm`")]
    CorrectedToTheSame(FaultClass),
    #[error("the note is {0} characters; keep it under {MAX_NOTE}")]
    NoteTooLong(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Longest note kept, in characters.
pub const MAX_NOTE: usize = 2_000;

/// What an operator asked to record.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    pub verdict: Verdict,
    #[serde(default)]
    pub class: Option<String>,
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

/// Records feedback, checked against the incident's diagnosis.
pub struct FeedbackService {
    pub incidents: Arc<dyn IncidentStore>,
    pub diagnoses: Arc<dyn DiagnosisStore>,
    pub store: Arc<dyn FeedbackStore>,
    pub clock: Arc<dyn Clock>,
    /// Every verdict is an operator's step on the incident: it goes to the audit log.
    pub audit: Arc<AuditLog>,
}

impl FeedbackService {
    pub fn record(
        &self,
        id: IncidentId,
        request: &FeedbackRequest,
    ) -> Result<Feedback, FeedbackError> {
        let verdict = request.verdict;
        self.incidents
            .get(id)?
            .ok_or(FeedbackError::NoSuchIncident(id))?;
        let d: Diagnosis = self
            .diagnoses
            .diagnosis(id)?
            .ok_or(FeedbackError::NotDiagnosed(id))?;
        let given = request
            .class
            .as_deref()
            .map(|c| {
                FaultClass::parse(c.trim()).ok_or_else(|| FeedbackError::UnknownClass {
                    given: c.to_string(),
                })
            })
            .transpose()?;
        let class = match verdict {
            Verdict::Confirmed => {
                let diagnosed = d.class.ok_or(FeedbackError::NothingToConfirm(id))?;
                match given {
                    Some(g) if g != diagnosed => {
                        return Err(FeedbackError::ConfirmedAnotherClass {
                            diagnosed,
                            given: g,
                        })
                    }
                    _ => diagnosed,
                }
            }
            Verdict::Corrected => {
                let given = given.ok_or(FeedbackError::NoClass)?;
                if d.class == Some(given) {
                    return Err(FeedbackError::CorrectedToTheSame(given));
                }
                given
            }
        };
        if let Some(n) = request
            .note
            .as_ref()
            .filter(|n| n.chars().count() > MAX_NOTE)
        {
            return Err(FeedbackError::NoteTooLong(n.chars().count()));
        }
        let feedback = Feedback {
            incident: id,
            verdict,
            class,
            diagnosed: d.class,
            confidence: d.confidence,
            by: request.by.clone().filter(|b| !b.trim().is_empty()),
            note: request.note.clone().filter(|n| !n.trim().is_empty()),
            recorded_unix_ns: self.clock.now_unix_ns(),
        };
        self.store.save_feedback(&feedback)?;
        self.audit.append(AuditEntry {
            kind: AuditKind::Feedback,
            incident: Some(id),
            actor: feedback.by.clone().unwrap_or_else(|| "operator".into()),
            summary: format!(
                "incident {id}: the operator {} the diagnosis ({})",
                verdict.as_str(),
                class.id()
            ),
            body: serde_json::to_value(&feedback).unwrap_or_default(),
        })?;
        Ok(feedback)
    }
}
