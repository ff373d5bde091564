//! What to look up for an incident, and what it cites: the runbook of its class, and the
//! past incidents most like it (their postmortems). A citation names only a document the
//! corpus returned for this incident, so it exists.

use std::sync::Arc;

use tracing::{info, warn};

use super::{
    model::{DocKind, Hit, RetrievalQuery},
    ports::Corpus,
    postmortem,
};
use crate::{
    diagnose::{Citation, Diagnosis},
    entity::EntityId,
    incident::{Incident, IncidentStatus},
    observe::Observer,
};

/// Past incidents cited per diagnosis.
pub const SIMILAR: usize = 5;

pub struct Retriever {
    corpus: Arc<dyn Corpus>,
}

fn citation(h: Hit) -> Citation {
    Citation {
        id: h.id,
        title: h.title,
        kind: h.kind.as_str().to_string(),
        score: h.score,
    }
}

/// The words an incident is searched by: its class, what the class means, where, and what
/// the agreeing evidence said.
pub fn query_text(incident: &Incident, entity: &EntityId, d: &Diagnosis) -> String {
    let mut text = vec![incident.title.clone(), entity.to_string()];
    if let Some(c) = d.class {
        text.push(c.id().replace('_', " "));
        text.push(c.about().to_string());
    }
    text.extend(
        d.breakdown
            .iter()
            .filter(|b| b.agrees)
            .map(|b| b.reason.clone()),
    );
    text.join(" ")
}

impl Retriever {
    pub fn new(corpus: Arc<dyn Corpus>) -> Self {
        Self { corpus }
    }

    pub fn corpus(&self) -> &Arc<dyn Corpus> {
        &self.corpus
    }

    /// The class's runbook first (or, with no class, the runbook closest to the evidence),
    /// then up to `SIMILAR` postmortems of other incidents, this entity's before other
    /// services', most similar first. A corpus that fails is logged and cites nothing: the
    /// diagnosis stands on its evidence.
    pub fn citations(
        &self,
        incident: &Incident,
        entity: &EntityId,
        d: &Diagnosis,
    ) -> Vec<Citation> {
        let text = query_text(incident, entity, d);
        let own = postmortem::id_of(incident.id);
        // (kind, how many to cite); one more postmortem is asked for in case it is this
        // incident's own draft.
        // Postmortems of this entity (or of none in particular) come before the same fault
        // elsewhere: the same fault on the same service is the most similar past incident,
        // whatever the index's notion of text similarity.
        let wanted = [
            (DocKind::Runbook, None, 1),
            (DocKind::Postmortem, Some(entity.to_string()), SIMILAR),
            (DocKind::Postmortem, None, SIMILAR),
        ];
        let mut out: Vec<Citation> = Vec::new();
        for (kind, service, keep) in wanted {
            let q = RetrievalQuery {
                text: text.clone(),
                kind: Some(kind),
                class: d.class,
                service,
                limit: keep + 1,
            };
            let already = out.iter().filter(|c| c.kind == kind.as_str()).count();
            match self.corpus.search(&q) {
                Ok(hits) => {
                    let fresh: Vec<Citation> = hits
                        .into_iter()
                        .filter(|h| h.id != own && !out.iter().any(|c| c.id == h.id))
                        .take(keep.saturating_sub(already))
                        .map(citation)
                        .collect();
                    out.extend(fresh);
                }
                Err(e) => {
                    warn!(incident = %incident.id, error = %e, "retrieval failed; the diagnosis cites nothing")
                }
            }
        }
        out
    }
}

/// The learn step: a resolved incident's final diagnosis leaves a postmortem draft in the
/// corpus.
pub struct Learner {
    corpus: Arc<dyn Corpus>,
}

impl Learner {
    pub fn new(corpus: Arc<dyn Corpus>) -> Self {
        Self { corpus }
    }
}

impl Observer for Learner {
    fn diagnosed(&self, incident: &Incident, diagnosis: &Diagnosis, _took_secs: f64) {
        if incident.status != IncidentStatus::Resolved {
            return;
        }
        let draft = postmortem::draft(incident, diagnosis);
        match self.corpus.put(&draft) {
            Ok(()) => info!(incident = %incident.id, id = %draft.id, "postmortem draft written"),
            Err(e) => {
                warn!(incident = %incident.id, error = %e, "cannot write the postmortem draft")
            }
        }
    }
}
