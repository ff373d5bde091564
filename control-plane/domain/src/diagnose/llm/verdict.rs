//! What the second opinion came to, as stored with the diagnosis (the judging is `review`).

use serde::{Deserialize, Serialize};

use super::session::Investigation;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Judgement {
    /// Its class is the evidence's (or a symptom the evidence's class explains).
    Agreed,
    /// Its class contradicts the evidence: confidence lowered, routed to review.
    Disagreed,
    /// Its answer never fit the schema: ignored.
    Rejected,
    /// A bound stopped it: escalated to review with the evidence's diagnosis.
    Stopped,
    /// The provider failed: the evidence's diagnosis stands.
    Failed,
}

/// What the LLM did and how Vigil judged it, stored with the diagnosis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmReview {
    pub judgement: Judgement,
    pub investigation: Investigation,
    /// Cited ids retrieval did not return for this incident.
    #[serde(default)]
    pub rejected_citations: Vec<String>,
    /// Reused from an earlier investigation of the same evidence.
    #[serde(default)]
    pub cached: bool,
}
