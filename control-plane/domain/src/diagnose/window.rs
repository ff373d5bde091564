//! The two stretches every tool compares: the window judged, and the quiet time before it.

use super::{ports::Sources, tool::Scope};
use crate::{
    event::{ports::EventQuery, StoredEvent},
    interval::{ports::SampleQuery, SampleKind, StoredSample},
    store::StoreError,
};

/// Most samples of one kind a tool reads for one entity (newest first from the store).
const MAX_SAMPLES: usize = 20_000;
const MAX_EVENTS: usize = 2_000;

/// Values split by when they were seen.
#[derive(Debug, Clone)]
pub struct Split<T> {
    pub before: Vec<T>,
    pub during: Vec<T>,
}

impl<T> Default for Split<T> {
    fn default() -> Self {
        Self {
            before: Vec::new(),
            during: Vec::new(),
        }
    }
}

/// The entity's samples of `kind` from the symptom's onset on, and before the window (the
/// lead between the two is neither: part healthy, part not).
pub fn samples(
    sources: &Sources,
    scope: &Scope,
    kind: SampleKind,
) -> Result<Split<StoredSample>, StoreError> {
    let rows = sources.samples.samples(&SampleQuery {
        kind: Some(kind),
        node: None,
        workload_key: Some(scope.entity.as_str().to_string()),
        since_unix_ns: Some(scope.before_from_unix_ns()),
        limit: MAX_SAMPLES,
    })?;
    let mut split = Split::default();
    for r in rows {
        if r.end_unix_ns > scope.to_unix_ns {
            continue;
        }
        if r.end_unix_ns >= scope.onset_unix_ns() {
            split.during.push(r);
        } else if r.end_unix_ns < scope.from_unix_ns {
            split.before.push(r);
        }
    }
    Ok(split)
}

/// Kernel events of the entity (or of every workload, `entity_only: false`) of `kind`, in
/// the window and before it, oldest first.
pub fn events(
    sources: &Sources,
    scope: &Scope,
    kind: Option<&str>,
    entity_only: bool,
) -> Result<Split<StoredEvent>, StoreError> {
    let mut rows = sources.events.list_events(&EventQuery {
        node: None,
        kind: kind.map(str::to_string),
        workload_key: entity_only.then(|| scope.entity.as_str().to_string()),
        since_unix_ns: Some(scope.before_from_unix_ns()),
        until_unix_ns: None,
        limit: MAX_EVENTS,
    })?;
    rows.sort_by_key(|e| e.event.time_unix_ns);
    let mut split = Split::default();
    for e in rows {
        let t = e.event.time_unix_ns;
        if t > scope.to_unix_ns {
            continue;
        }
        if t >= scope.from_unix_ns {
            split.during.push(e);
        } else {
            split.before.push(e);
        }
    }
    Ok(split)
}

/// A count of samples per second in each stretch (before, and from the onset on).
pub fn rates(scope: &Scope, before: f64, during: f64) -> (f64, f64) {
    (before / scope.before_secs(), during / scope.symptom_secs())
}
