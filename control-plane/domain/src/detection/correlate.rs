//! Correlation: anomalies that overlap in time and lie on one call path of the service graph,
//! with evidence of a kind that can be one fault, are one problem, so they become one group
//! (one incident).
//!
//! A group stays open while its entities keep firing; after `resolve_windows` quiet windows
//! it resolves. A recurrence within `cooldown_windows` — the same kind of cause on the same
//! call path — reopens the same group rather than paging anyone twice. A different kind of
//! cause nearby (DNS failing on a workload whose memory incident is open, permissions refused
//! minutes after a Redis outage) is a fault of its own and opens its own group: an open or
//! recently resolved incident must never swallow an unrelated fault.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{
    call_graph::CallGraph,
    kinds::{kinds_of, only_consequences, EvidenceKind},
    propagation::Changes,
};
use crate::{
    entity::{EdgeId, EntityId, Subject},
    incident::IncidentId,
};

/// One subject's anomaly in one window: the incident's own evidence type, so what
/// correlation groups is what the incident carries.
pub use crate::incident::evidence::AnomalyEvidence as Anomaly;

/// The graph nodes an anomaly touches: a workload itself, or both ends of an edge.
fn nodes(a: &Anomaly) -> Vec<EntityId> {
    a.entity.entities().into_iter().cloned().collect()
}

/// How much an anomaly implicates each node: an edge's trouble is mostly its server's (a
/// slow or failing dependency shows on the edge into it), a little its client's.
fn blame(a: &Anomaly) -> Vec<(EntityId, f64)> {
    match &a.entity {
        Subject::Workload(e) => vec![(e.clone(), a.score)],
        Subject::Edge(e) => vec![
            (e.server.clone(), a.score),
            (e.client.clone(), a.score * 0.3),
        ],
    }
}

/// An anomaly as correlation weighs it: where it is and what kind of trouble it shows.
struct Candidate<'a> {
    anomaly: &'a Anomaly,
    nodes: Vec<EntityId>,
    kinds: BTreeSet<EvidenceKind>,
}

impl Candidate<'_> {
    fn causes(&self) -> impl Iterator<Item = &EvidenceKind> {
        self.kinds.iter().filter(|k| !k.is_consequence())
    }

    /// Whether a fault at one of `episode`'s nodes would show as this: the workload, or the
    /// server an edge calls, is that node or calls it. (An edge's client is not enough: the
    /// client's own fault does not make its calls out fail.)
    fn upstream_of<'e>(
        &self,
        episode: impl IntoIterator<Item = &'e EntityId> + Clone,
        graph: &CallGraph,
    ) -> bool {
        let at = match &self.anomaly.entity {
            Subject::Workload(e) => e,
            Subject::Edge(e) => &e.server,
        };
        episode.into_iter().any(|e| graph.reaches(at, e))
    }

    fn on_path_with<'e>(
        &self,
        episode: impl IntoIterator<Item = &'e EntityId> + Clone,
        graph: &CallGraph,
    ) -> bool {
        self.nodes
            .iter()
            .any(|n| episode.clone().into_iter().any(|e| graph.on_one_path(n, e)))
    }
}

#[derive(Debug, Clone, Copy)]
pub struct CorrelateConfig {
    pub resolve_windows: i64,
    pub cooldown_windows: i64,
}

impl Default for CorrelateConfig {
    fn default() -> Self {
        Self {
            resolve_windows: 6,
            cooldown_windows: 60,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// Local id (stable for the process's life).
    pub id: u64,
    /// The incident this group is, once one was made for it.
    pub incident: Option<IncidentId>,
    /// Whether the incident belongs to a kernel-event rule (an OOM kill …): the group then
    /// only absorbs anomalies into it and never resolves it.
    pub anchored: bool,
    /// Graph nodes touched.
    pub nodes: BTreeSet<EntityId>,
    /// Node → strongest blame in the current episode (the root-cause ranking's input: a
    /// recurrence is ranked on its own evidence, not on what the last episode blamed).
    pub blame: BTreeMap<EntityId, f64>,
    /// The episode's changes in their units (how far one subject's explains another's).
    pub changes: Changes,
    /// The kinds of evidence in the current episode (the anchor's own, for a kernel rule's).
    pub episode_kinds: BTreeSet<EvidenceKind>,
    /// Window the current episode (open or reopen) began.
    pub episode_window: i64,
    /// When the current episode was reported, by the caller's clock.
    pub episode_reported_unix_ns: Option<i64>,
    /// Subject (workload or edge) → strongest anomaly score.
    pub entities: BTreeMap<Subject, f64>,
    /// Newest last; capped.
    pub timeline: Vec<Anomaly>,
    pub first_window: i64,
    pub last_window: i64,
    pub resolved_window: Option<i64>,
}

const TIMELINE_CAP: usize = 200;

impl Group {
    fn absorb(&mut self, a: &Anomaly, kinds: &BTreeSet<EvidenceKind>) {
        self.episode_kinds.extend(kinds.iter().copied());
        self.changes.record(a);
        self.nodes.extend(nodes(a));
        for (n, b) in blame(a) {
            let slot = self.blame.entry(n).or_insert(0.0);
            *slot = slot.max(b);
        }
        let slot = self.entities.entry(a.entity.clone()).or_insert(0.0);
        *slot = slot.max(a.score);
        self.last_window = self.last_window.max(a.window);
        self.timeline.push(a.clone());
        if self.timeline.len() > TIMELINE_CAP {
            // Keep the first anomalies (how it started) and the newest.
            self.timeline.remove(TIMELINE_CAP / 2);
        }
    }

    /// The nodes of the current episode (what blame it carries).
    fn episode_nodes(&self) -> impl Iterator<Item = &EntityId> + Clone {
        self.blame.keys()
    }

    fn episode_causes(&self) -> impl Iterator<Item = &EvidenceKind> {
        self.episode_kinds.iter().filter(|k| !k.is_consequence())
    }

    /// Whether an open group takes the anomaly in: it lies on a call path through the
    /// episode, and either only shows consequences upstream of it, or names a cause the
    /// episode already has, or names the first cause of an episode that so far had only
    /// symptoms (while that episode is young: the cause often surfaces a window or two after
    /// the errors it causes).
    fn takes(&self, c: &Candidate, graph: &CallGraph, window: i64, explain_windows: i64) -> bool {
        if only_consequences(&c.kinds) {
            return c.upstream_of(self.episode_nodes(), graph);
        }
        if !c.on_path_with(self.episode_nodes(), graph) {
            return false;
        }
        let shared = c.causes().any(|k| self.episode_kinds.contains(k));
        let unexplained = self.episode_causes().next().is_none()
            && window - self.episode_window <= explain_windows;
        shared || unexplained
    }

    /// Whether an open group whose episode has no cause yet takes symptoms anywhere on a call
    /// path through it, below it too: errors at the top of a chain come first as often as the
    /// failing call at its bottom, and both are the one fault until a cause says otherwise.
    /// (A weaker match than `takes`: a recurrence of a resolved fault comes first.)
    fn takes_symptoms_below(&self, c: &Candidate, graph: &CallGraph) -> bool {
        only_consequences(&c.kinds)
            && self.episode_causes().next().is_none()
            && c.on_path_with(self.episode_nodes(), graph)
    }

    /// Whether a resolved group is reopened by the anomaly: the same kind of cause on the
    /// same call path. Symptoms alone never reopen: errors at the top of a chain are what
    /// every later fault below it shows too (in the lab one incident was reopened by five
    /// different faults that way), so they open an incident of their own.
    fn recurs_with(&self, c: &Candidate, graph: &CallGraph) -> bool {
        c.on_path_with(self.episode_nodes(), graph)
            && c.causes().any(|k| self.episode_kinds.contains(k))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Opened(u64),
    Updated(u64),
    Reopened(u64),
    Resolved(u64),
}

impl Change {
    /// The group that changed.
    pub fn group(&self) -> u64 {
        match *self {
            Self::Opened(id) | Self::Updated(id) | Self::Reopened(id) | Self::Resolved(id) => id,
        }
    }
}

/// An incident opened by a kernel-event rule that anomalies on its workload belong to.
#[derive(Debug, Clone, PartialEq)]
pub struct Anchor {
    pub incident: IncidentId,
    pub workload: EntityId,
    /// What the rule saw (an OOM kill: memory, a process dying).
    pub kinds: Vec<EvidenceKind>,
}

impl Anchor {
    /// Whether an anomaly is part of the rule's incident: at or upstream of its workload, and
    /// showing either symptoms or the same kind of cause.
    fn takes(&self, c: &Candidate, graph: &CallGraph) -> bool {
        c.upstream_of([&self.workload], graph)
            && (only_consequences(&c.kinds) || c.causes().any(|k| self.kinds.contains(k)))
    }
}

#[derive(Debug, Default)]
pub struct Correlator {
    config: CorrelateConfig,
    groups: Vec<Group>,
    next_id: u64,
}

impl Correlator {
    pub fn new(config: CorrelateConfig) -> Self {
        Self {
            config,
            groups: Vec::new(),
            next_id: 1,
        }
    }

    /// How many groups are not resolved.
    pub fn open_groups(&self) -> usize {
        self.groups
            .iter()
            .filter(|g| g.resolved_window.is_none())
            .count()
    }

    pub fn group(&self, id: u64) -> Option<&Group> {
        self.groups.iter().find(|g| g.id == id)
    }

    pub fn group_mut(&mut self, id: u64) -> Option<&mut Group> {
        self.groups.iter_mut().find(|g| g.id == id)
    }

    /// Folds one window's anomalies in; returns what changed, each group at most once.
    pub fn observe(
        &mut self,
        window: i64,
        anomalies: &[Anomaly],
        edges: &[EdgeId],
        anchors: &[Anchor],
    ) -> Vec<Change> {
        let graph = CallGraph::new(edges);
        let mut changes: Vec<Change> = Vec::new();
        // Each group changes at most once per window.
        let note = |c: Change, changes: &mut Vec<Change>| {
            if !changes.iter().any(|x| x.group() == c.group()) {
                changes.push(c);
            }
        };
        // Causes first, strongest first: the symptoms of the same window then join the fault
        // that explains them rather than reopening an older one.
        let mut candidates: Vec<Candidate> = anomalies
            .iter()
            .map(|a| Candidate {
                anomaly: a,
                nodes: nodes(a),
                kinds: kinds_of(a),
            })
            .collect();
        candidates.sort_by(|x, y| {
            only_consequences(&x.kinds)
                .cmp(&only_consequences(&y.kinds))
                .then(y.anomaly.score.total_cmp(&x.anomaly.score))
        });
        let explain = self.config.resolve_windows;
        let cooldown = self.config.cooldown_windows;
        for c in &candidates {
            let a = c.anomaly;
            // An open group first (the newest episode of those that take it), then a recently
            // resolved one (a recurrence).
            let open = self
                .groups
                .iter_mut()
                .filter(|g| g.resolved_window.is_none() && g.takes(c, &graph, window, explain))
                .max_by_key(|g| g.episode_window);
            if let Some(g) = open {
                g.absorb(a, &c.kinds);
                let id = g.id;
                note(Change::Updated(id), &mut changes);
                continue;
            }
            let recent = self.groups.iter_mut().find(|g| {
                g.resolved_window.is_some_and(|r| window - r <= cooldown)
                    && !g.anchored
                    && g.recurs_with(c, &graph)
            });
            if let Some(g) = recent {
                g.resolved_window = None;
                g.blame.clear();
                g.changes.clear();
                g.episode_kinds.clear();
                g.episode_window = a.window;
                g.episode_reported_unix_ns = None;
                g.absorb(a, &c.kinds);
                let id = g.id;
                changes.retain(|c| *c != Change::Updated(id));
                note(Change::Reopened(id), &mut changes);
                continue;
            }
            // Symptoms below an open episode that has no cause yet.
            let below = self
                .groups
                .iter_mut()
                .filter(|g| g.resolved_window.is_none() && g.takes_symptoms_below(c, &graph))
                .max_by_key(|g| g.episode_window);
            if let Some(g) = below {
                g.absorb(a, &c.kinds);
                let id = g.id;
                note(Change::Updated(id), &mut changes);
                continue;
            }
            let anchor = anchors.iter().find(|x| x.takes(c, &graph));
            let id = self.next_id;
            self.next_id += 1;
            let mut g = Group {
                id,
                incident: anchor.map(|x| x.incident),
                anchored: anchor.is_some(),
                nodes: BTreeSet::new(),
                blame: BTreeMap::new(),
                changes: Changes::default(),
                episode_kinds: anchor
                    .map(|x| x.kinds.iter().copied().collect())
                    .unwrap_or_default(),
                episode_window: a.window,
                episode_reported_unix_ns: None,
                entities: BTreeMap::new(),
                timeline: Vec::new(),
                first_window: a.window,
                last_window: a.window,
                resolved_window: None,
            };
            g.absorb(a, &c.kinds);
            self.groups.push(g);
            note(Change::Opened(id), &mut changes);
        }
        for g in &mut self.groups {
            if g.resolved_window.is_none() && window - g.last_window >= self.config.resolve_windows
            {
                g.resolved_window = Some(window);
                let id = g.id;
                note(Change::Resolved(id), &mut changes);
            }
        }
        // Forget groups past their cooldown.
        self.groups
            .retain(|g| g.resolved_window.is_none_or(|r| window - r <= cooldown));
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{entity::SubjectClass, incident::evidence::FeatureEvidence};

    /// An anomaly whose one fired feature is `feature`.
    fn anomaly(entity: &str, feature: &str, window: i64, score: f64) -> Anomaly {
        let class = if entity.contains("->") {
            SubjectClass::Edge
        } else {
            SubjectClass::Workload
        };
        let entity = Subject::parse(class, entity).expect("subject");
        Anomaly {
            entity,
            class,
            window,
            time_unix_ns: window,
            score,
            tier: 1,
            features: vec![FeatureEvidence {
                feature: feature.into(),
                value: 10.0,
                median: 0.0,
                z: 10.0,
                score,
                crossed: true,
                fired: true,
            }],
            forest: None,
        }
    }

    fn edges() -> Vec<EdgeId> {
        [("web", "app"), ("app", "redis"), ("batch", "queue")]
            .iter()
            .map(|(a, b)| EdgeId::new((*a).into(), (*b).into()))
            .collect()
    }

    /// nginx → two app replicas → Redis, as the lab has it.
    fn replicas() -> Vec<EdgeId> {
        [
            ("web", "app1"),
            ("web", "app2"),
            ("app1", "redis"),
            ("app2", "redis"),
        ]
        .iter()
        .map(|(a, b)| EdgeId::new((*a).into(), (*b).into()))
        .collect()
    }

    const ERRORS: &str = "error_ratio";
    const SLOW: &str = "request_p99_us";

    #[test]
    fn connected_anomalies_make_one_group_unrelated_ones_another() {
        let mut c = Correlator::new(CorrelateConfig::default());
        let changes = c.observe(
            10,
            &[
                anomaly("app->redis", "connect_failures_per_s", 10, 0.9),
                anomaly("web->app", ERRORS, 10, 0.5),
                anomaly("app", "syscall_errors_network_per_s", 10, 0.6),
                anomaly("queue", SLOW, 10, 0.7),
            ],
            &edges(),
            &[],
        );
        assert_eq!(changes, vec![Change::Opened(1), Change::Opened(2)]);
        let g = c.group(1).expect("group");
        assert_eq!(g.entities.len(), 3);
        // The edge blames its server most.
        assert_eq!(g.blame.get("redis"), Some(&0.9));
        assert!(g.blame.get("app").is_some_and(|b| *b == 0.6));
    }

    #[test]
    fn resolves_after_quiet_windows_and_reopens_on_recurrence() {
        let cfg = CorrelateConfig {
            resolve_windows: 3,
            cooldown_windows: 10,
        };
        let mut c = Correlator::new(cfg);
        let lossy = "retransmits_per_s";
        c.observe(1, &[anomaly("app->redis", lossy, 1, 0.8)], &edges(), &[]);
        assert_eq!(c.observe(2, &[], &edges(), &[]), vec![]);
        assert_eq!(c.observe(4, &[], &edges(), &[]), vec![Change::Resolved(1)]);
        // The same cause on the same path within the cooldown: the same group reopens.
        let again = c.observe(6, &[anomaly("app->redis", lossy, 6, 0.7)], &edges(), &[]);
        assert_eq!(again, vec![Change::Reopened(1)]);
        let g = c.group(1).expect("group");
        assert_eq!(g.episode_window, 6);
        assert_eq!(
            g.blame.get("redis"),
            Some(&0.7),
            "the recurrence is ranked on its own evidence"
        );
        assert_eq!(g.timeline.len(), 2, "history kept");
        // Past the cooldown a new group opens.
        c.observe(10, &[], &edges(), &[]);
        c.observe(30, &[], &edges(), &[]);
        let later = c.observe(31, &[anomaly("web->app", lossy, 31, 0.8)], &edges(), &[]);
        assert_eq!(later, vec![Change::Opened(2)]);
    }

    #[test]
    fn anomalies_upstream_of_a_kernel_event_incident_join_it() {
        let mut c = Correlator::new(CorrelateConfig::default());
        let anchors = [Anchor {
            incident: IncidentId(7),
            workload: "app".into(),
            kinds: EvidenceKind::of_incident(crate::incident::IncidentKind::OomKill).to_vec(),
        }];
        let changes = c.observe(
            1,
            &[anomaly("web->app", ERRORS, 1, 0.8)],
            &edges(),
            &anchors,
        );
        assert_eq!(changes, vec![Change::Opened(1)]);
        let g = c.group(1).expect("group");
        assert!(g.anchored && g.incident == Some(IncidentId(7)));
        // A different cause beside it (DNS failing on the OOM-killed workload) is not the OOM.
        c.observe(
            2,
            &[anomaly("app", "dns_failures_per_s", 2, 0.8)],
            &edges(),
            &anchors,
        );
        let dns = c.group(2).expect("a group of its own");
        assert!(!dns.anchored && dns.incident.is_none());
    }

    /// The demo's case: a side anomaly on one replica opened a group that stayed open; a DNS
    /// failure on that replica much later is another fault and opens its own.
    #[test]
    fn a_different_cause_on_an_open_incidents_workload_opens_its_own() {
        let mut c = Correlator::new(CorrelateConfig::default());
        for w in 1..=20 {
            c.observe(w, &[anomaly("web->app2", SLOW, w, 0.6)], &replicas(), &[]);
        }
        let changes = c.observe(
            21,
            &[
                anomaly("app2", "dns_failures_per_s", 21, 0.9),
                anomaly("web->app2", ERRORS, 21, 0.7),
            ],
            &replicas(),
            &[],
        );
        assert!(changes.contains(&Change::Opened(2)), "{changes:?}");
        let dns = c.group(2).expect("dns group");
        assert!(dns.entities.contains_key(&Subject::Workload("app2".into())));
        assert!(
            dns.entities.len() == 2,
            "the same window's errors join the fault that explains them"
        );
        // Yet a cause that surfaces right after the symptoms it explains joins them.
        let mut young = Correlator::new(CorrelateConfig::default());
        young.observe(1, &[anomaly("web->app1", ERRORS, 1, 0.6)], &replicas(), &[]);
        let joined = young.observe(
            2,
            &[anomaly("app1", "syscall_errors_permission_per_s", 2, 0.9)],
            &replicas(),
            &[],
        );
        assert_eq!(joined, vec![Change::Updated(1)]);
        // And a sibling replica is not on the first one's call path.
        let sibling = young.observe(
            3,
            &[anomaly("app2", "dns_failures_per_s", 3, 0.9)],
            &replicas(),
            &[],
        );
        assert_eq!(sibling, vec![Change::Opened(2)]);
    }

    /// A failing dependency at the bottom of a chain shows as errors at every level, in no
    /// particular order: they are one incident.
    #[test]
    fn symptoms_up_and_down_one_chain_are_one_incident() {
        let mut c = Correlator::new(CorrelateConfig::default());
        let chain: Vec<EdgeId> = [("client", "web"), ("web", "app"), ("app", "db")]
            .iter()
            .map(|(a, b)| EdgeId::new((*a).into(), (*b).into()))
            .collect();
        let changes = c.observe(
            1,
            &[
                anomaly("web->app", ERRORS, 1, 0.95),
                anomaly("app->db", ERRORS, 1, 0.87),
                anomaly("client->web", ERRORS, 1, 0.6),
            ],
            &chain,
            &[],
        );
        assert_eq!(changes, vec![Change::Opened(1)]);
        assert_eq!(c.group(1).map(|g| g.entities.len()), Some(3));
    }

    /// The case seen outside the repo: permissions refused minutes after a Redis outage
    /// resolved must open its own incident, not reopen the outage's.
    #[test]
    fn a_different_cause_after_a_resolved_incident_does_not_reopen_it() {
        let mut c = Correlator::new(CorrelateConfig::default());
        for w in 1..=5 {
            c.observe(
                w,
                &[
                    anomaly("app1->redis", "connect_failures_per_s", w, 0.9),
                    anomaly("web->app1", ERRORS, w, 0.8),
                ],
                &replicas(),
                &[],
            );
        }
        assert_eq!(
            c.observe(12, &[], &replicas(), &[]),
            vec![Change::Resolved(1)]
        );
        let changes = c.observe(
            30,
            &[
                anomaly("web->app1", ERRORS, 30, 0.8),
                anomaly("app1", "syscall_errors_permission_per_s", 30, 0.7),
            ],
            &replicas(),
            &[],
        );
        assert_eq!(changes, vec![Change::Opened(2)]);
        assert!(c.group(1).is_some_and(|g| g.resolved_window.is_some()));
        assert_eq!(c.group(2).map(|g| g.entities.len()), Some(2));
        // Errors alone on that path later reopen neither: errors at a caller are what any
        // fault below it shows. They open an incident of their own.
        c.observe(40, &[], &replicas(), &[]);
        let symptoms = c.observe(
            50,
            &[anomaly("web->app1", ERRORS, 50, 0.8)],
            &replicas(),
            &[],
        );
        assert_eq!(symptoms, vec![Change::Opened(3)]);
        // Redis refusing again below those errors is their cause arriving: it joins them,
        // not the permissions incident.
        let back = c.observe(
            52,
            &[anomaly("app1->redis", "connect_failures_per_s", 52, 0.9)],
            &replicas(),
            &[],
        );
        assert_eq!(back, vec![Change::Updated(3)]);
    }
}
