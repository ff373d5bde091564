//! Correlation: anomalies that overlap in time and touch connected entities of the service
//! graph are one problem, so they become one group (one incident).
//!
//! A group stays open while its entities keep firing; after `resolve_windows` quiet windows
//! it resolves. A related anomaly within `cooldown_windows` of that reopens the same group
//! rather than paging anyone twice.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;

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
    fn absorb(&mut self, a: &Anomaly) {
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

    fn touches(
        &self,
        nodes: &[EntityId],
        neighbours: &HashMap<EntityId, HashSet<EntityId>>,
    ) -> bool {
        nodes.iter().any(|n| {
            self.nodes.contains(n)
                || neighbours
                    .get(n)
                    .is_some_and(|adj| adj.iter().any(|m| self.nodes.contains(m)))
        })
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
}

#[derive(Debug, Default)]
pub struct Correlator {
    config: CorrelateConfig,
    groups: Vec<Group>,
    next_id: u64,
}

/// Undirected adjacency of the call graph.
pub fn neighbours(edges: &[EdgeId]) -> HashMap<EntityId, HashSet<EntityId>> {
    let mut adj: HashMap<EntityId, HashSet<EntityId>> = HashMap::new();
    for e in edges {
        adj.entry(e.client.clone())
            .or_default()
            .insert(e.server.clone());
        adj.entry(e.server.clone())
            .or_default()
            .insert(e.client.clone());
    }
    adj
}

impl Correlator {
    pub fn new(config: CorrelateConfig) -> Self {
        Self {
            config,
            groups: Vec::new(),
            next_id: 1,
        }
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
        let adj = neighbours(edges);
        let mut changes: Vec<Change> = Vec::new();
        // Each group changes at most once per window.
        let note = |c: Change, changes: &mut Vec<Change>| {
            if !changes.iter().any(|x| x.group() == c.group()) {
                changes.push(c);
            }
        };
        for a in anomalies {
            let nodes = nodes(a);
            // An open group first, then a recently resolved one (a recurrence).
            let open = self
                .groups
                .iter_mut()
                .find(|g| g.resolved_window.is_none() && g.touches(&nodes, &adj));
            if let Some(g) = open {
                g.absorb(a);
                let id = g.id;
                note(Change::Updated(id), &mut changes);
                continue;
            }
            let cooldown = self.config.cooldown_windows;
            let recent = self.groups.iter_mut().find(|g| {
                g.resolved_window.is_some_and(|r| window - r <= cooldown)
                    && !g.anchored
                    && g.touches(&nodes, &adj)
            });
            if let Some(g) = recent {
                g.resolved_window = None;
                g.blame.clear();
                g.episode_window = a.window;
                g.episode_reported_unix_ns = None;
                g.absorb(a);
                let id = g.id;
                changes.retain(|c| *c != Change::Updated(id));
                note(Change::Reopened(id), &mut changes);
                continue;
            }
            let anchor = anchors.iter().find(|x| {
                nodes.contains(&x.workload)
                    || nodes
                        .iter()
                        .any(|n| adj.get(n).is_some_and(|s| s.contains(&x.workload)))
            });
            let id = self.next_id;
            self.next_id += 1;
            let mut g = Group {
                id,
                incident: anchor.map(|x| x.incident),
                anchored: anchor.is_some(),
                nodes: BTreeSet::new(),
                blame: BTreeMap::new(),
                episode_window: a.window,
                episode_reported_unix_ns: None,
                entities: BTreeMap::new(),
                timeline: Vec::new(),
                first_window: a.window,
                last_window: a.window,
                resolved_window: None,
            };
            g.absorb(a);
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
        let cooldown = self.config.cooldown_windows;
        self.groups
            .retain(|g| g.resolved_window.is_none_or(|r| window - r <= cooldown));
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::SubjectClass;

    fn anomaly(entity: &str, class: SubjectClass, window: i64, score: f64) -> Anomaly {
        let entity = Subject::parse(class, entity).expect("subject");
        Anomaly {
            entity,
            class,
            window,
            time_unix_ns: window,
            score,
            tier: 1,
            features: Vec::new(),
            forest: None,
        }
    }

    fn edges() -> Vec<EdgeId> {
        [("web", "app"), ("app", "redis"), ("batch", "queue")]
            .iter()
            .map(|(a, b)| EdgeId::new((*a).into(), (*b).into()))
            .collect()
    }

    #[test]
    fn connected_anomalies_make_one_group_unrelated_ones_another() {
        let mut c = Correlator::new(CorrelateConfig::default());
        let w = SubjectClass::Workload;
        let changes = c.observe(
            10,
            &[
                anomaly("app->redis", SubjectClass::Edge, 10, 0.9),
                anomaly("web", w, 10, 0.5),
                anomaly("app", w, 10, 0.6),
                anomaly("queue", w, 10, 0.7),
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
        let w = SubjectClass::Workload;
        c.observe(1, &[anomaly("app", w, 1, 0.8)], &edges(), &[]);
        assert_eq!(c.observe(2, &[], &edges(), &[]), vec![]);
        assert_eq!(c.observe(4, &[], &edges(), &[]), vec![Change::Resolved(1)]);
        // A neighbour fires again within the cooldown: the same group reopens.
        let again = c.observe(6, &[anomaly("web", w, 6, 0.8)], &edges(), &[]);
        assert_eq!(again, vec![Change::Reopened(1)]);
        let g = c.group(1).expect("group");
        assert_eq!(g.episode_window, 6);
        assert_eq!(
            g.blame.keys().collect::<Vec<_>>(),
            ["web"],
            "the recurrence is ranked on its own evidence"
        );
        assert!(
            g.entities.contains_key(&Subject::Workload("app".into())),
            "history kept"
        );
        // Past the cooldown a new group opens.
        c.observe(10, &[], &edges(), &[]);
        c.observe(30, &[], &edges(), &[]);
        let later = c.observe(31, &[anomaly("web", w, 31, 0.8)], &edges(), &[]);
        assert_eq!(later, vec![Change::Opened(2)]);
    }

    #[test]
    fn anomalies_next_to_a_kernel_event_incident_join_it() {
        let mut c = Correlator::new(CorrelateConfig::default());
        let anchors = [Anchor {
            incident: IncidentId(7),
            workload: "app".into(),
        }];
        let changes = c.observe(
            1,
            &[anomaly("web", SubjectClass::Workload, 1, 0.8)],
            &edges(),
            &anchors,
        );
        assert_eq!(changes, vec![Change::Opened(1)]);
        let g = c.group(1).expect("group");
        assert!(g.anchored && g.incident == Some(IncidentId(7)));
    }
}
