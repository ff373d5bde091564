//! The detection use case: closed windows of metric intervals are judged, correlated and
//! localized, and incidents opened, updated, resolved or reopened. Baselines are saved to the
//! store every few windows and loaded on start.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex, MutexGuard},
};

use serde::Serialize;
use tracing::{info, instrument, warn};

use super::{
    config::DetectionConfig,
    correlate::{Anchor, Change, Correlator, Group},
    features::{window_features, FeatureError, WindowFeatures},
    judge::Tiers,
    kinds::EvidenceKind,
    ports::{BaselineStore, GraphView},
    report::{self, Timing},
    rootcause::{rank_with, RankConfig},
    shed::ReplicaGroups,
};
use crate::{
    clock::Clock,
    entity::{EdgeId, Subject, SubjectClass},
    incident::{
        ports::{IncidentQuery, IncidentStore},
        IncidentId,
    },
    interval::{ports::IntervalSink, MetricInterval},
    observe::{NoObserver, Observer},
    store::StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(transparent)]
    Features(#[from] FeatureError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TickOutcome {
    pub windows: usize,
    pub entities: usize,
    pub anomalies: usize,
    pub opened: Vec<IncidentId>,
    pub resolved: Vec<IncidentId>,
    /// Intervals that arrived after their window had been judged.
    pub late_intervals: usize,
}

/// A baseline's state as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineStatus {
    pub entity: Subject,
    pub class: SubjectClass,
    pub learning: bool,
    pub last_window: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DetectionStats {
    pub windows: u64,
    pub samples: u64,
    pub anomalies: u64,
    pub late_intervals: u64,
    pub workload_forest_trained: bool,
    pub edge_forest_trained: bool,
    /// Episodes the correlator holds open (anomalies still joining them, or not yet quiet
    /// for `resolve_windows`), whether or not they opened an incident of their own.
    pub open_episodes: usize,
}

struct State {
    /// Highest window judged.
    closed: i64,
    tiers: Tiers,
    correlator: Correlator,
    /// Each caller's replicas, remembered across windows (a shed one gets no requests).
    replicas: ReplicaGroups,
    since_save: u64,
    stats: DetectionStats,
}

pub struct DetectionService {
    config: DetectionConfig,
    incidents: Arc<dyn IncidentStore>,
    store: Arc<dyn BaselineStore>,
    graph: Arc<dyn GraphView>,
    clock: Arc<dyn Clock>,
    observer: Arc<dyn Observer>,
    /// Intervals waiting for their window, under their own lock: ingest must never wait
    /// for a detection pass.
    pending: Mutex<Vec<MetricInterval>>,
    state: Mutex<State>,
}

/// What detection is built from: its settings and the ports it uses.
pub struct DetectionParts {
    pub config: DetectionConfig,
    pub incidents: Arc<dyn IncidentStore>,
    pub baselines: Arc<dyn BaselineStore>,
    pub graph: Arc<dyn GraphView>,
    pub clock: Arc<dyn Clock>,
}

impl DetectionService {
    /// Loads persisted baselines; subjects whose state no longer reads start learning again
    /// (logged, not fatal: a format change must not stop the control plane).
    pub fn new(parts: DetectionParts) -> Result<Self, StoreError> {
        let DetectionParts {
            config,
            incidents,
            baselines: store,
            graph,
            clock,
        } = parts;
        let mut baselines = HashMap::new();
        for stored in store.load_baselines()? {
            match stored.state {
                Ok((subject, b)) => {
                    baselines.insert(subject, b);
                }
                Err(e) => {
                    // Recorded as an error value: the subscriber prints its sources too.
                    let error: &(dyn std::error::Error + 'static) = &e;
                    warn!(entity = %stored.key, error, "stored baseline unreadable; relearning it");
                }
            }
        }
        if !baselines.is_empty() {
            info!(entities = baselines.len(), "detection baselines loaded");
        }
        let closed = baselines
            .values()
            .map(|b| b.last_window)
            .max()
            .unwrap_or(i64::MIN);
        Ok(Self {
            pending: Mutex::new(Vec::new()),
            state: Mutex::new(State {
                closed,
                tiers: Tiers::new(&config, baselines),
                correlator: Correlator::new(config.correlate),
                replicas: ReplicaGroups::default(),
                since_save: 0,
                stats: DetectionStats::default(),
            }),
            config,
            incidents,
            store,
            graph,
            clock,
            observer: Arc::new(NoObserver),
        })
    }

    /// Reports each window's subject scores to `observer` (exporters).
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn config(&self) -> &DetectionConfig {
        &self.config
    }

    /// Queues a newly stored interval for its window.
    pub fn push(&self, interval: MetricInterval) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(interval);
    }

    pub fn baselines(&self) -> Vec<BaselineStatus> {
        let state = self.state();
        let mut out: Vec<BaselineStatus> = state
            .tiers
            .baselines
            .iter()
            .map(|(entity, b)| BaselineStatus {
                entity: entity.clone(),
                class: b.class,
                learning: b.learning(),
                last_window: b.last_window,
            })
            .collect();
        out.sort_by_key(|b| b.entity.to_string());
        out
    }

    pub fn stats(&self) -> DetectionStats {
        let s = self.state();
        let (workload, edge) = s.tiers.forests_trained();
        DetectionStats {
            workload_forest_trained: workload,
            edge_forest_trained: edge,
            open_episodes: s.correlator.open_groups(),
            ..s.stats.clone()
        }
    }

    /// Saves the baselines changed since the last save. If the store refuses them (or cannot
    /// encode one), every one stays marked changed for the next attempt: nothing is dropped.
    #[instrument(skip(self))]
    pub fn persist(&self) -> Result<usize, StoreError> {
        let batch: Vec<(Subject, _)> = {
            let mut state = self.state();
            let dirty: Vec<Subject> = state.tiers.dirty.drain().collect();
            dirty
                .into_iter()
                .filter_map(|s| {
                    let b = state.tiers.baselines.get(&s)?.clone();
                    Some((s, b))
                })
                .collect()
        };
        if let Err(e) = self.store.save_baselines(&batch) {
            let mut state = self.state();
            state
                .tiers
                .dirty
                .extend(batch.into_iter().map(|(subject, _)| subject));
            return Err(e);
        }
        Ok(batch.len())
    }

    /// Judges every window that has closed by now.
    #[instrument(skip(self), fields(windows, anomalies))]
    pub fn tick(&self) -> Result<TickOutcome, DetectError> {
        let now_unix_ns = self.clock.now_unix_ns();
        let w_ns = self.config.window_ns;
        // The last window whose intervals should all have arrived.
        let closable = (now_unix_ns - self.config.grace_ns).div_euclid(w_ns) - 1;
        let mut outcome = TickOutcome::default();
        let pending = {
            let mut queue = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let (ready, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut *queue)
                .into_iter()
                .partition(|i| i.end_unix_ns.div_euclid(w_ns) <= closable);
            *queue = keep;
            ready
        };
        let ready = {
            let mut state = self.state();
            let closed = state.closed;
            let (late, ready): (Vec<_>, Vec<_>) = pending
                .into_iter()
                .partition(|i| i.end_unix_ns.div_euclid(w_ns) <= closed);
            outcome.late_intervals = late.len();
            state.stats.late_intervals += late.len() as u64;
            ready
        };
        if ready.is_empty() {
            return Ok(outcome);
        }
        let graph = self.graph.as_ref();
        let resolve = |node: &str, ep: &_| graph.server_entity(node, ep);
        let vectors = window_features(&ready, w_ns, &resolve, &mut self.state().replicas)?;
        // Subjects with traffic in these windows: the witnesses localization may call on.
        let active: BTreeSet<Subject> = vectors.iter().map(|v| v.entity.clone()).collect();
        let edges = graph.call_edges(now_unix_ns);
        let recent = self.config.correlate.resolve_windows.max(1) * w_ns;
        let anchors = self.anchors(now_unix_ns - recent)?;
        let mut by_window: BTreeMap<i64, Vec<WindowFeatures>> = BTreeMap::new();
        for v in vectors {
            by_window.entry(v.window).or_default().push(v);
        }
        let mut changes = Vec::new();
        let mut scores = Vec::new();
        let mut due_save = false;
        {
            let mut state = self.state();
            for (window, vectors) in by_window {
                outcome.windows += 1;
                outcome.entities += vectors.len();
                let (anomalies, samples) = state.tiers.judge(&self.config, &vectors, &mut scores);
                for a in &anomalies {
                    let crossed: Vec<_> = a.features.iter().map(|f| f.feature.as_str()).collect();
                    tracing::debug!(window, entity = %a.entity, tier = a.tier, score = a.score, ?crossed, "anomaly");
                }
                outcome.anomalies += anomalies.len();
                state.stats.samples += samples;
                state.stats.windows += 1;
                state.stats.anomalies += anomalies.len() as u64;
                let judged = self.clock.now_unix_ns();
                let c = state
                    .correlator
                    .observe(window, &anomalies, &edges, &anchors);
                let correlated = self.clock.now_unix_ns();
                for change in c {
                    if let Some(g) = state.correlator.group(change.group()).cloned() {
                        changes.push((change, g, (judged, correlated)));
                    }
                }
                state.closed = state.closed.max(window);
                state.since_save += 1;
                if state.since_save >= self.config.persist_every {
                    state.since_save = 0;
                    due_save = true;
                }
            }
        }
        tracing::Span::current()
            .record("windows", outcome.windows)
            .record("anomalies", outcome.anomalies);
        self.observer.anomaly_scores(&scores);
        for (change, group, timing) in changes {
            // Incidents carry when Vigil knew, not when the window ended.
            match self.apply(&change, &group, (&edges, &active), now_unix_ns, timing)? {
                Some((id, true)) => outcome.opened.push(id),
                Some((id, false)) if matches!(change, Change::Resolved(_)) => {
                    outcome.resolved.push(id)
                }
                _ => {}
            }
        }
        if due_save {
            self.persist()?;
        }
        Ok(outcome)
    }

    /// Open incidents from kernel-event rules with evidence since `since_unix_ns`: anomalies
    /// at or upstream of their workloads, showing symptoms or the rule's own kind of cause, are part of them. (A rule's incident stays open long
    /// after its last evidence; a later, different fault nearby is not part of it.)
    fn anchors(&self, since_unix_ns: i64) -> Result<Vec<Anchor>, StoreError> {
        Ok(self
            .incidents
            .list(&IncidentQuery::open(1000))?
            .into_iter()
            .filter(|i| i.kind.is_kernel_rule() && i.updated_unix_ns >= since_unix_ns)
            .map(|i| Anchor {
                incident: i.id,
                workload: i.workload_key,
                kinds: EvidenceKind::of_incident(i.kind).to_vec(),
            })
            .collect())
    }

    /// Writes a group's change to the incident store. Returns (incident, newly created).
    fn apply(
        &self,
        change: &Change,
        group: &Group,
        (edges, active): (&[EdgeId], &BTreeSet<Subject>),
        at: i64,
        (judged, correlated): (i64, i64),
    ) -> Result<Option<(IncidentId, bool)>, StoreError> {
        if group.anchored {
            // Part of a kernel-event incident: its rule owns it.
            return Ok(None);
        }
        if let Change::Resolved(_) = change {
            let Some(id) = group.incident else {
                return Ok(None);
            };
            self.incidents.resolve(id, at)?;
            info!(%id, "anomaly incident resolved: signals back at baseline");
            return Ok(Some((id, false)));
        }
        let localize_start = self.clock.now_unix_ns();
        let ranked = rank_with(
            edges,
            &group.blame,
            &group.changes,
            active,
            RankConfig::default(),
        );
        let timing = Timing {
            first_window_unix_ns: group.first_window * self.config.window_ns,
            judged,
            correlated,
            localize_start,
            localize_end: self.clock.now_unix_ns(),
        };
        let episode = match change {
            Change::Opened(_) | Change::Reopened(_) => at,
            _ => group.episode_reported_unix_ns.unwrap_or(at),
        };
        if let Some(g) = self.state().correlator.group_mut(group.id) {
            g.episode_reported_unix_ns = Some(episode);
        }
        let finding = report::finding(group, &ranked, at, episode)
            .with_stages(report::stages(group, &ranked, timing));
        match group.incident {
            Some(id) => {
                if matches!(change, Change::Reopened(_)) {
                    self.incidents.reopen(id, at)?;
                    info!(%id, "anomaly incident reopened: it recurred within its cooldown");
                }
                self.incidents.add_occurrence(id, &finding)?;
                Ok(Some((id, false)))
            }
            None => {
                let incident = self.incidents.create(&finding)?;
                info!(id = %incident.id, root_cause = %finding.workload_key, "incident opened: {}", finding.title);
                if let Some(g) = self.state().correlator.group_mut(group.id) {
                    g.incident = Some(incident.id);
                }
                Ok(Some((incident.id, true)))
            }
        }
    }
}

impl IntervalSink for DetectionService {
    fn accept(&self, interval: &MetricInterval) {
        self.push(interval.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::{
        clock::ManualClock,
        detection::baseline::EntityBaseline,
        detection::ports::StoredBaseline,
        entity::EntityId,
        interval::Endpoint,
        synthetic::{Fleet, SEC},
        testing::MemoryIncidents,
    };

    /// A baseline store that refuses saves while `down` is set.
    #[derive(Default)]
    struct FlakyBaselines {
        down: AtomicBool,
        saved: Mutex<Vec<Subject>>,
    }

    impl BaselineStore for FlakyBaselines {
        fn load_baselines(&self) -> Result<Vec<StoredBaseline>, StoreError> {
            Ok(Vec::new())
        }
        fn save_baselines(&self, b: &[(Subject, EntityBaseline)]) -> Result<(), StoreError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError::backend(
                    "saving baselines",
                    std::io::Error::other("disk full"),
                ));
            }
            let mut saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
            saved.extend(b.iter().map(|(s, _)| s.clone()));
            Ok(())
        }
    }

    /// Every server is external: the synthetic chain's edges are still edges.
    struct FlatGraph;

    impl GraphView for FlatGraph {
        fn server_entity(&self, _: &str, endpoint: &Endpoint) -> EntityId {
            EntityId::external(endpoint)
        }
        fn call_edges(&self, _: i64) -> Vec<EdgeId> {
            Vec::new()
        }
    }

    #[test]
    fn baselines_a_save_refused_stay_changed_until_a_save_succeeds() {
        let clock = Arc::new(ManualClock::at(0));
        let store = Arc::new(FlakyBaselines::default());
        let config = DetectionConfig {
            window_ns: SEC,
            grace_ns: 0,
            persist_every: u64::MAX,
            ..DetectionConfig::default()
        };
        let d = DetectionService::new(DetectionParts {
            config,
            incidents: Arc::new(MemoryIncidents::default()),
            baselines: store.clone(),
            graph: Arc::new(FlatGraph),
            clock: clock.clone(),
        })
        .expect("detection");
        let fleet = Fleet::new(1);
        let start = 1_000 * SEC;
        for seq in 1..=5u64 {
            let end = start + seq as i64 * SEC;
            d.push(fleet.interval(seq, end, None));
            clock.set(end + 2 * SEC);
            d.tick().expect("tick");
        }
        let judged = d.baselines().len();
        assert!(judged > 0, "the fleet's subjects have baselines");

        store.down.store(true, Ordering::SeqCst);
        assert!(d.persist().is_err(), "the refusal is surfaced");
        store.down.store(false, Ordering::SeqCst);
        assert_eq!(
            d.persist().expect("saved"),
            judged,
            "every baseline the refused save carried is saved by the next"
        );
        let saved = store.saved.lock().unwrap_or_else(|p| p.into_inner()).len();
        assert_eq!(saved, judged);
        assert_eq!(d.persist().expect("nothing changed"), 0);
    }
}
