//! The detection use case: metric intervals in, deduplicated incidents with a ranked root
//! cause out.
//!
//! Every window (`window_ns`, 5 s by default) that has closed: features per entity (polars)
//! → tier 1 against each entity's baseline → tier 2 isolation forest (confirms tier-1
//! signals, finds joint deviations on its own) → correlation over the service graph →
//! root-cause ranking → incidents opened, updated, resolved or reopened. Baselines are saved
//! to the store every few windows and loaded on start.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard},
};

use serde::Serialize;
use serde_json::json;
use tracing::{info, warn};

use super::{
    detect::{
        baseline::{EntityBaseline, EntityReading, ThresholdRule},
        correlate::{Anchor, Anomaly, Change, CorrelateConfig, Correlator, Group},
        features::{
            window_features, EntityClass, FeatureError, EDGE_DIM, EDGE_FEATURES, WORKLOAD_DIM,
            WORKLOAD_FEATURES,
        },
        forest::{ClassForest, ForestConfig, ForestVerdict},
        rootcause::{rank, RankConfig, RootCause},
        univariate::UnivariateConfig,
    },
    incident::{Finding, IncidentKind, Severity, Stage},
    ingest::now_unix_ns as wall_clock_ns,
    telemetry::{Endpoint, MetricInterval},
};
use crate::ports::{
    BaselineStore, EntityScore, IncidentQuery, IncidentStore, NoObserver, Observer, StoreError,
};

#[derive(Debug, Clone, Copy)]
pub struct DetectionConfig {
    pub window_ns: i64,
    /// How long after a window ends its intervals may still arrive.
    pub grace_ns: i64,
    pub univariate: UnivariateConfig,
    pub rule: ThresholdRule,
    pub forest: ForestConfig,
    /// Isolation score under which the forest vetoes a modest tier-1 signal.
    pub forest_confirm: f64,
    /// Isolation score at which the forest alone (for `rule.consecutive` windows) is an
    /// anomaly.
    pub forest_alone: f64,
    pub correlate: CorrelateConfig,
    /// Windows between saves of the baselines.
    pub persist_every: u64,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        Self {
            window_ns: 5_000_000_000,
            grace_ns: 2_000_000_000,
            univariate: UnivariateConfig::default(),
            rule: ThresholdRule::default(),
            forest: ForestConfig::default(),
            forest_confirm: 0.55,
            forest_alone: 0.8,
            correlate: CorrelateConfig::default(),
            persist_every: 12,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(transparent)]
    Features(#[from] FeatureError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What detection needs from the service graph.
pub trait GraphView: Send + Sync {
    /// The entity serving `endpoint`, as seen from `node`.
    fn server_entity(&self, node: &str, endpoint: &Endpoint) -> String;
    /// Current call edges, caller → callee.
    fn call_edges(&self, now_unix_ns: i64) -> Vec<(String, String)>;
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TickOutcome {
    pub windows: usize,
    pub entities: usize,
    pub anomalies: usize,
    pub opened: Vec<i64>,
    pub resolved: Vec<i64>,
    /// Intervals that arrived after their window had been judged.
    pub late_intervals: usize,
}

/// A baseline's state as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineStatus {
    pub entity: String,
    pub class: EntityClass,
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
}

struct State {
    /// Highest window judged.
    closed: i64,
    baselines: HashMap<String, EntityBaseline>,
    dirty: HashSet<String>,
    workload_forest: ClassForest<WORKLOAD_DIM>,
    edge_forest: ClassForest<EDGE_DIM>,
    /// Windows in a row the forest alone found an entity odd.
    forest_streak: HashMap<String, u32>,
    correlator: Correlator,
    since_save: u64,
    stats: DetectionStats,
}

pub struct DetectionService {
    config: DetectionConfig,
    incidents: Arc<dyn IncidentStore>,
    store: Arc<dyn BaselineStore>,
    observer: Arc<dyn Observer>,
    /// Intervals waiting for their window, under their own lock: ingest must never wait
    /// for a detection pass.
    pending: Mutex<Vec<MetricInterval>>,
    state: Mutex<State>,
}

fn names<const N: usize>(features: &[super::detect::features::Feature; N]) -> [&'static str; N] {
    features.map(|f| f.name)
}

/// Whether an entity names something one can act on. `…/unknown` is the agent's bucket for
/// processes it could not attribute: a mix of unrelated short-lived tools whose anomalies
/// mean nothing, and which — connected to much of the graph — would otherwise pull
/// unrelated anomalies into one incident.
fn attributable(entity: &str) -> bool {
    !entity.split("->").any(|e| e.ends_with("/unknown"))
}

/// A reading's anomaly score from its strongest crossed feature: 0.5 at k σ, → 1.
fn tier1_score(reading: &EntityReading, k: f64) -> f64 {
    let z = reading
        .features
        .iter()
        .filter(|f| f.crossed)
        .map(|f| f.z)
        .fold(0.0, f64::max);
    z / (z + k)
}

impl DetectionService {
    /// Loads persisted baselines; entities whose state no longer parses start learning again
    /// (logged, not fatal: a format change must not stop the control plane).
    pub fn new(
        config: DetectionConfig,
        incidents: Arc<dyn IncidentStore>,
        store: Arc<dyn BaselineStore>,
    ) -> Result<Self, StoreError> {
        let mut baselines = HashMap::new();
        for (entity, state) in store.load_baselines()? {
            match serde_json::from_str::<EntityBaseline>(&state) {
                Ok(b) => {
                    baselines.insert(entity, b);
                }
                Err(e) => {
                    warn!(%entity, error = %e, "stored baseline unreadable; relearning it")
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
                baselines,
                dirty: HashSet::new(),
                workload_forest: ClassForest::new(config.forest, names(&WORKLOAD_FEATURES)),
                edge_forest: ClassForest::new(config.forest, names(&EDGE_FEATURES)),
                forest_streak: HashMap::new(),
                correlator: Correlator::new(config.correlate),
                since_save: 0,
                stats: DetectionStats::default(),
            }),
            config,
            incidents,
            store,
            observer: Arc::new(NoObserver),
        })
    }

    /// Reports each window's entity scores to `observer` (exporters).
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
            .baselines
            .iter()
            .map(|(entity, b)| BaselineStatus {
                entity: entity.clone(),
                class: b.class,
                learning: b.learning(),
                last_window: b.last_window,
            })
            .collect();
        out.sort_by(|a, b| a.entity.cmp(&b.entity));
        out
    }

    pub fn stats(&self) -> DetectionStats {
        let s = self.state();
        DetectionStats {
            workload_forest_trained: s.workload_forest.trained(),
            edge_forest_trained: s.edge_forest.trained(),
            ..s.stats.clone()
        }
    }

    /// Saves the baselines changed since the last save.
    pub fn persist(&self) -> Result<usize, StoreError> {
        let batch: Vec<(String, String)> = {
            let mut state = self.state();
            let dirty: Vec<String> = state.dirty.drain().collect();
            dirty
                .into_iter()
                .filter_map(|e| {
                    let b = state.baselines.get(&e)?;
                    serde_json::to_string(b).ok().map(|s| (e, s))
                })
                .collect()
        };
        self.store.save_baselines(&batch)?;
        Ok(batch.len())
    }

    /// Judges every window that has closed by `now_unix_ns`.
    pub fn tick(
        &self,
        now_unix_ns: i64,
        graph: &dyn GraphView,
    ) -> Result<TickOutcome, DetectError> {
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
        let resolve = |node: &str, ep: &Endpoint| graph.server_entity(node, ep);
        let vectors = window_features(&ready, w_ns, &resolve)?;
        let edges = graph.call_edges(now_unix_ns);
        let recent = self.config.correlate.resolve_windows.max(1) * w_ns;
        let anchors = self.anchors(now_unix_ns - recent)?;
        let mut by_window: BTreeMap<i64, Vec<_>> = BTreeMap::new();
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
                let anomalies = self.judge(&mut state, &vectors, &mut scores);
                outcome.anomalies += anomalies.len();
                state.stats.windows += 1;
                state.stats.anomalies += anomalies.len() as u64;
                let judged = wall_clock_ns();
                let c = state
                    .correlator
                    .observe(window, &anomalies, &edges, &anchors);
                let correlated = wall_clock_ns();
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
        self.observer.anomaly_scores(&scores);
        for (change, group, timing) in changes {
            // Incidents carry when Vigil knew, not when the window ended.
            let at = now_unix_ns;
            match self.apply(&change, &group, &edges, at, timing)? {
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
    /// on or next to their workloads are part of them. (A rule's incident stays open long
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
            })
            .collect())
    }

    /// Tier 1 and tier 2 over one window's vectors.
    fn judge(
        &self,
        state: &mut State,
        vectors: &[super::detect::features::WindowFeatures],
        scores: &mut Vec<EntityScore>,
    ) -> Vec<Anomaly> {
        let c = &self.config;
        let mut anomalies = Vec::new();
        for v in vectors.iter().filter(|v| attributable(&v.entity)) {
            state.stats.samples += v.values.iter().filter(|x| !x.is_nan()).count() as u64;
            let baseline = state
                .baselines
                .entry(v.entity.clone())
                .or_insert_with(|| EntityBaseline::new(v.class));
            let reading = baseline.observe(v, &c.univariate, &c.rule);
            state.dirty.insert(v.entity.clone());
            if reading.learning {
                continue;
            }
            let z = reading.z_vector();
            let verdict = match v.class {
                EntityClass::Workload => state.workload_forest.judge(&z),
                EntityClass::Edge => state.edge_forest.judge(&z),
            };
            scores.push(EntityScore {
                entity: v.entity.clone(),
                class: v.class,
                max_z: reading.features.iter().map(|f| f.z).fold(0.0, f64::max),
                forest: verdict.as_ref().map(|f| f.score),
            });
            let fired = reading.fired().count() > 0;
            let crossed = reading.features.iter().any(|f| f.crossed);
            let max_z = reading
                .features
                .iter()
                .filter(|f| f.crossed)
                .map(|f| f.z)
                .fold(0.0, f64::max);
            let streak = state.forest_streak.entry(v.entity.clone()).or_insert(0);
            *streak = match &verdict {
                Some(f) if f.score >= c.forest_alone => *streak + 1,
                _ => 0,
            };
            let forest_alone = *streak >= c.rule.consecutive;
            if !crossed && !forest_alone {
                match v.class {
                    EntityClass::Workload => state.workload_forest.learn(&z),
                    EntityClass::Edge => state.edge_forest.learn(&z),
                }
            }
            // Tier 2 confirms modest tier-1 signals; strong ones stand on their own.
            let confirmed = verdict
                .as_ref()
                .is_none_or(|f| f.score >= c.forest_confirm || max_z >= 2.0 * c.rule.k);
            let anomaly = if fired && confirmed {
                Some((1, tier1_score(&reading, c.rule.k)))
            } else if forest_alone {
                verdict.as_ref().map(|f| (2, f.score))
            } else {
                None
            };
            if let Some((tier, score)) = anomaly {
                anomalies.push(to_anomaly(&reading, tier, score, verdict, c.window_ns));
            }
        }
        anomalies
    }

    /// Writes a group's change to the incident store. Returns (incident, newly created).
    fn apply(
        &self,
        change: &Change,
        group: &Group,
        edges: &[(String, String)],
        at: i64,
        (judged, correlated): (i64, i64),
    ) -> Result<Option<(i64, bool)>, StoreError> {
        if group.anchored {
            // Part of a kernel-event incident: its rule owns it.
            return Ok(None);
        }
        match change {
            Change::Resolved(_) => {
                if let Some(id) = group.incident {
                    self.incidents.resolve(id, at)?;
                    info!(id, "anomaly incident resolved: signals back at baseline");
                    return Ok(Some((id, false)));
                }
                Ok(None)
            }
            Change::Opened(_) | Change::Updated(_) | Change::Reopened(_) => {
                let localizing = wall_clock_ns();
                let ranked = rank(edges, &group.blame, RankConfig::default());
                let stages = [
                    Stage::new("detect", group.first_window * self.config.window_ns, judged)
                        .with("windows_anomalous", group.timeline.len())
                        .with(
                            "tier",
                            group.timeline.iter().map(|a| a.tier).min().unwrap_or(1),
                        ),
                    Stage::new("correlate", judged, correlated)
                        .with("entities", group.entities.len())
                        .with("anchored", group.anchored),
                    Stage::new("localize", localizing, wall_clock_ns())
                        .with("method", "personalized PageRank on the anomalous subgraph")
                        .with(
                            "root_cause",
                            ranked.first().map(|r| r.entity.clone()).unwrap_or_default(),
                        )
                        .with("confidence", ranked.first().map_or(0.0, |r| r.score)),
                ];
                let episode = match change {
                    Change::Opened(_) | Change::Reopened(_) => at,
                    _ => group.episode_reported_unix_ns.unwrap_or(at),
                };
                if let Some(g) = self.state().correlator.group_mut(group.id) {
                    g.episode_reported_unix_ns = Some(episode);
                }
                let finding = finding(group, &ranked, at, episode).with_stages(&stages);
                match group.incident {
                    Some(id) => {
                        if matches!(change, Change::Reopened(_)) {
                            self.incidents.reopen(id, at)?;
                            info!(
                                id,
                                "anomaly incident reopened: it recurred within its cooldown"
                            );
                        }
                        self.incidents.add_occurrence(id, &finding)?;
                        Ok(Some((id, false)))
                    }
                    None => {
                        let incident = self.incidents.create(&finding)?;
                        info!(id = incident.id, root_cause = %finding.workload_key, "incident opened: {}", finding.title);
                        let mut state = self.state();
                        if let Some(g) = state.correlator.group_mut(group.id) {
                            g.incident = Some(incident.id);
                        }
                        Ok(Some((incident.id, true)))
                    }
                }
            }
        }
    }
}

fn to_anomaly(
    reading: &EntityReading,
    tier: u8,
    score: f64,
    forest: Option<ForestVerdict>,
    window_ns: i64,
) -> Anomaly {
    let mut features: Vec<_> = reading
        .features
        .iter()
        .filter(|f| f.crossed)
        .cloned()
        .collect();
    features.sort_by(|a, b| b.z.total_cmp(&a.z));
    Anomaly {
        entity: reading.entity.clone(),
        class: reading.class,
        window: reading.window,
        time_unix_ns: (reading.window + 1) * window_ns,
        score,
        tier,
        features,
        forest,
    }
}

/// The incident text and attributes for a group.
fn finding(group: &Group, ranked: &[RootCause], at: i64, episode_unix_ns: i64) -> Finding {
    let top = ranked
        .first()
        .map_or_else(|| "unknown".to_string(), |r| r.entity.clone());
    // The strongest symptoms across the group, one per (entity, feature).
    let mut symptoms: BTreeMap<(String, &'static str), f64> = BTreeMap::new();
    for a in &group.timeline {
        for f in &a.features {
            let slot = symptoms.entry((a.entity.clone(), f.feature)).or_insert(0.0);
            *slot = slot.max(f.z);
        }
    }
    let mut symptoms: Vec<_> = symptoms.into_iter().collect();
    symptoms.sort_by(|a, b| b.1.total_cmp(&a.1));
    let headline = symptoms
        .iter()
        .take(3)
        .map(|((e, f), z)| format!("{e} {f} +{z:.0}σ"))
        .collect::<Vec<_>>()
        .join(", ");
    let failing = symptoms
        .iter()
        .any(|((_, f), _)| f.contains("errors") || f.contains("failures") || f.contains("resets"));
    let first = group.timeline.first();
    Finding {
        kind: IncidentKind::ServiceAnomaly,
        severity: if failing { Severity::Critical } else { Severity::Warning },
        node: String::new(),
        workload_key: top.clone(),
        title: format!("Anomaly around {top}: {headline}"),
        summary: format!(
            "{} entities anomalous since window {}; likely root cause {top} (confidence {:.2}); ranked: {}",
            group.entities.len(),
            group.first_window,
            ranked.first().map_or(0.0, |r| r.score),
            ranked
                .iter()
                .take(5)
                .map(|r| format!("{} {:.2}", r.entity, r.score))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        time_unix_ns: at,
        evidence: Vec::new(),
        attributes: json!({
            "root_causes": ranked,
            "entities": group.entities,
            "first_anomaly_unix_ns": first.map(|a| a.time_unix_ns),
            // When the current episode (the opening, or the latest reopening) was reported.
            "episode_started_unix_ns": episode_unix_ns,
            "symptoms": symptoms.iter().take(20).map(|((e, f), z)| json!({"entity": e, "feature": f, "z": z})).collect::<Vec<_>>(),
            "timeline": group.timeline,
        }),
    }
}
