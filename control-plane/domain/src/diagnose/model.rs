//! A diagnosis: the class, how sure Vigil is and why (which tool voted what, on which
//! evidence), what to do, and where it goes next (remediation, or a human's review).

use serde::{Deserialize, Serialize};

use super::{evidence::ToolOutput, llm::verdict::LlmReview, taxonomy::FaultClass};
use crate::{entity::EntityId, incident::IncidentId};

/// Where a diagnosis goes: remediation acts only on confident ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Remediation,
    /// Confidence below the gate, or the evidence disagrees: a human decides.
    Review,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Remediation => "remediation",
            Self::Review => "review",
        }
    }
}

/// How one voter stood on the chosen class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ballot {
    pub voter: String,
    /// Its strongest vote, if it voted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<FaultClass>,
    pub strength: f64,
    /// Whether its vote is consistent with the chosen class (the class, or a symptom the
    /// class explains).
    pub agrees: bool,
    pub reason: String,
}

/// A document retrieval returned for this incident, cited by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    pub id: String,
    pub title: String,
    pub kind: String,
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub incident: IncidentId,
    /// `None`: no tool found evidence for any class.
    pub class: Option<FaultClass>,
    /// Where the strongest evidence for the class places the fault, when it names a workload
    /// other than the incident's (the server refusing its clients' credentials, the resolver
    /// failing their lookups): where remediation acts. `None`: on the incident's workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<EntityId>,
    /// In [0, 1]: the evidence's strength for the class times the voters' agreement.
    pub confidence: f64,
    /// The gate it was judged against.
    pub gate: f64,
    pub route: Route,
    /// What failed and why, in a sentence or two.
    pub explanation: String,
    pub breakdown: Vec<Ballot>,
    /// What the tools returned (bounded each).
    pub evidence: Vec<ToolOutput>,
    pub citations: Vec<Citation>,
    pub recommended_actions: Vec<String>,
    /// Whether an LLM took part (and was checked against the evidence).
    pub llm: bool,
    /// What it did and how its answer was judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_review: Option<LlmReview>,
    pub diagnosed_unix_ns: i64,
    /// The earliest time a tool said its judgement may change with no new evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revisit_unix_ns: Option<i64>,
    /// What the diagnosis depends on: the same fingerprint, the same diagnosis (cache key).
    pub fingerprint: String,
}
