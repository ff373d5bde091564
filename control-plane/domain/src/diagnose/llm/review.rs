//! The second opinion, judged: the model's class must agree with the evidence's, or the
//! confidence drops and the incident goes to review; a citation must be one retrieval returned
//! for this incident, or it is rejected and logged. The model never raises the confidence and
//! never picks the class: it can only confirm, doubt, or fail.

use tracing::warn;

use super::{
    session::{Ending, Investigation},
    verdict::{Judgement, LlmReview},
};
use crate::diagnose::{
    model::{Diagnosis, Route},
    taxonomy::FaultClass,
};

/// What a disagreement with the evidence leaves of the confidence.
pub const DISAGREEMENT_FACTOR: f64 = 0.5;

/// What the model's opinion depends on: the incident, the evidence's class and route, and
/// which voters voted what.
pub fn fingerprint(d: &Diagnosis) -> String {
    let mut votes: Vec<String> = d
        .breakdown
        .iter()
        .filter_map(|b| b.class.map(|c| format!("{}={}", b.voter, c.id())))
        .collect();
    votes.sort();
    format!(
        "{}|{}|{}|{}",
        d.incident,
        d.class.map_or("none", |c| c.id()),
        d.route.as_str(),
        votes.join(",")
    )
}

fn consistent(evidence: Option<FaultClass>, llm: Option<FaultClass>) -> bool {
    match (evidence, llm) {
        (Some(e), Some(l)) => e.explains(l),
        (None, None) => true,
        _ => false,
    }
}

/// Folds the investigation into `d`, and says how it was judged.
pub fn apply(d: &mut Diagnosis, inv: Investigation, cached: bool) -> LlmReview {
    d.llm = true;
    let mut rejected_citations = Vec::new();
    let judgement = match &inv.ending {
        Ending::Answered { answer } => {
            for id in &answer.citations {
                if !d.citations.iter().any(|c| c.id == *id) {
                    warn!(incident = %d.incident, model = %inv.model, citation = %id,
                        "the LLM cited a document retrieval did not return for this incident; rejected");
                    rejected_citations.push(id.clone());
                }
            }
            let said = answer.class.map_or("none", FaultClass::id);
            if consistent(d.class, answer.class) {
                d.explanation.push_str(&format!(
                    " Second opinion ({}): agrees ({said}): {}",
                    inv.model, answer.explanation
                ));
                Judgement::Agreed
            } else {
                d.confidence *= DISAGREEMENT_FACTOR;
                d.route = Route::Review;
                d.explanation.push_str(&format!(
                    " Second opinion ({}) says {said}, against the evidence: confidence lowered to {:.2}, routed to a human's review. It said: {}",
                    inv.model, d.confidence, answer.explanation
                ));
                Judgement::Disagreed
            }
        }
        Ending::Rejected { error } => {
            d.explanation.push_str(&format!(
                " Second opinion ({}) rejected: its answer did not fit the schema twice ({error}).",
                inv.model
            ));
            Judgement::Rejected
        }
        Ending::Stopped { bound } => {
            d.route = Route::Review;
            d.explanation.push_str(&format!(
                " Second opinion ({}) stopped at its {} bound after {} steps: escalated to a human's review with the evidence above.",
                inv.model,
                bound.as_str(),
                inv.steps
            ));
            Judgement::Stopped
        }
        Ending::Failed { error } => {
            d.explanation.push_str(&format!(
                " Second opinion ({}) unavailable: {error}.",
                inv.model
            ));
            Judgement::Failed
        }
    };
    if !rejected_citations.is_empty() {
        d.explanation.push_str(&format!(
            " Rejected citations (not retrieved for this incident): {}.",
            rejected_citations.join(", ")
        ));
    }
    LlmReview {
        judgement,
        investigation: inv,
        rejected_citations,
        cached,
    }
}
