//! Earlier incidents of the same episode as witnesses. An anomaly on an entity that a kernel
//! event's incident, still showing, already explains (a replica stopped, then its callers'
//! connects refused; a process killed, then its edges failing) would otherwise be diagnosed
//! without the event that caused it: that event is the earlier incident's evidence, not this
//! one's. What the earlier incident was confidently diagnosed as is one more voter here.
//!
//! An alert, or a report someone handed Vigil, is a symptom too, seen by a person or another
//! tool, later and with a lag Vigil cannot know: an earlier incident on its entity that was
//! still open when it came is its witness however long ago it last showed.
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

/// One voter per incident of `earlier` (the latest, newest first) on `entity` of the same
/// episode and diagnosed with confidence. For an anomaly the same episode is one that last
/// showed within `lead_ns` of its `onset`; for an alert, one still open when it came.
pub fn voters(
    earlier: &[Incident],
    diagnoses: &dyn DiagnosisStore,
    incident: &Incident,
    entity: &EntityId,
    onset: i64,
    lead_ns: i64,
) -> Result<Vec<Voter>, StoreError> {
    let mut out = Vec::new();
    let since = match incident.details() {
        Details::ServiceAnomaly(_) => Some(onset.saturating_sub(lead_ns)),
        Details::Alert(_) => None,
        _ => return Ok(out),
    };
    for i in earlier {
        let same_episode = match since {
            Some(since) => {
                i.updated_unix_ns >= since && i.resolved_unix_ns.is_none_or(|r| r >= since)
            }
            None => i
                .resolved_unix_ns
                .is_none_or(|r| r >= incident.opened_unix_ns),
        };
        if i.id == incident.id
            || matches!(i.details(), Details::ServiceAnomaly(_) | Details::Alert(_))
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
                    "#{} ({}) on {entity}, {}, was diagnosed {class} at {:.2}",
                    i.id,
                    i.kind.as_str(),
                    if onset >= i.updated_unix_ns {
                        format!(
                            "shown {:.1} s before this one's first symptom",
                            (onset - i.updated_unix_ns) as f64 / 1e9
                        )
                    } else {
                        "still showing".to_string()
                    },
                    d.confidence
                ),
            )],
        });
    }
    Ok(out)
}
