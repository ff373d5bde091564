//! Earlier incidents of the same episode as witnesses. An anomaly on an entity that a kernel
//! event's incident, still showing, already explains (a replica stopped, then its callers'
//! connects refused; a process killed, then its edges failing) would otherwise be diagnosed
//! without the event that caused it: that event is the earlier incident's evidence, not this
//! one's. What the earlier incident was confidently diagnosed as is one more voter here.
//!
//! Only that way round: symptoms follow their cause. A kernel event's own incident (an exec
//! that fails after an OOM kill) stands on its own evidence, and one anomaly does not vouch
//! for the next.

use super::{model::Route, ports::DiagnosisStore, tool::Vote, votes::Voter};
use crate::{
    entity::EntityId,
    incident::{Details, Incident},
    store::StoreError,
};

/// What an earlier incident's confidence is worth as a witness here: it saw the cause, but
/// this incident's symptoms might have another.
const WITNESS_FACTOR: f64 = 0.9;

/// Whether the incident was about this entity: its workload, or its first root cause.
pub fn concerns(incident: &Incident, entity: &EntityId) -> bool {
    incident.workload_key == *entity
        || matches!(incident.details(), Details::ServiceAnomaly(a)
            if a.root_causes.first().is_some_and(|r| r.entity == *entity))
}

/// One voter per incident of `earlier` (the latest, newest first) on `entity` that last
/// showed within `lead_ns` of this incident's `onset` (the same episode) and was diagnosed
/// with confidence.
pub fn voters(
    earlier: &[Incident],
    diagnoses: &dyn DiagnosisStore,
    incident: &Incident,
    entity: &EntityId,
    onset: i64,
    lead_ns: i64,
) -> Result<Vec<Voter>, StoreError> {
    let mut out = Vec::new();
    if !matches!(incident.details(), Details::ServiceAnomaly(_)) {
        return Ok(out);
    }
    let since = onset.saturating_sub(lead_ns);
    for i in earlier {
        let same_episode =
            i.updated_unix_ns >= since && i.resolved_unix_ns.is_none_or(|r| r >= since);
        if i.id == incident.id
            || matches!(i.details(), Details::ServiceAnomaly(_))
            || i.opened_unix_ns >= incident.opened_unix_ns
            || !same_episode
            || !concerns(i, entity)
        {
            continue;
        }
        let Some(d) = diagnoses.diagnosis(i.id)? else {
            continue;
        };
        let (Some(class), Route::Remediation) = (d.class, d.route) else {
            continue;
        };
        out.push(Voter {
            name: format!("incident #{}", i.id),
            votes: vec![Vote::new(
                class,
                d.confidence * WITNESS_FACTOR,
                format!(
                    "#{} ({}) on {entity}, shown {:.1} s before this one's first symptom, was diagnosed {class} at {:.2}",
                    i.id,
                    i.kind.as_str(),
                    (onset - i.updated_unix_ns) as f64 / 1e9,
                    d.confidence
                ),
            )],
        });
    }
    Ok(out)
}
