//! What the corpus holds and answers.

use serde::{Deserialize, Serialize};

use crate::diagnose::FaultClass;

/// What a document is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    /// What to do for a class of fault (or for Vigil itself).
    Runbook,
    /// What happened in one incident, how it was diagnosed and how it ended.
    Postmortem,
}

impl DocKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Runbook => "runbook",
            Self::Postmortem => "postmortem",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "runbook" => Some(Self::Runbook),
            "postmortem" => Some(Self::Postmortem),
            _ => None,
        }
    }
}

/// One markdown document with its front matter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Unique in the corpus; what a citation names.
    pub id: String,
    pub kind: DocKind,
    pub title: String,
    /// The fault classes it is about (none: general, e.g. operating Vigil).
    #[serde(default)]
    pub classes: Vec<FaultClass>,
    /// Services it concerns, as Vigil names entities or by plain name.
    #[serde(default)]
    pub services: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    pub body: String,
}

/// A search: free text, narrowed by metadata.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RetrievalQuery {
    pub text: String,
    pub kind: Option<DocKind>,
    pub class: Option<FaultClass>,
    /// Only documents naming this service (or naming none) when set.
    pub service: Option<String>,
    pub limit: usize,
}

/// A document found, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    pub id: String,
    pub kind: DocKind,
    pub title: String,
    pub score: f64,
    /// The passage that matched best, short.
    pub snippet: String,
}
