//! Root-cause ranking: a personalized PageRank on the anomalous part of the service graph.
//!
//! Faults travel against the call direction: a slow database makes its callers slow, and
//! theirs. So the walk moves from an anomalous entity towards its dependencies, preferring
//! the anomalous ones, and restarts at entities in proportion to their own anomaly. An entity
//! whose dependencies are healthy keeps the walk (a self-loop): it is where the trail ends.
//! A weak backward step lets an entity with no anomalous callee but anomalous callers still
//! collect mass. (The scheme follows MicroRCA and its relatives.)

use std::collections::{BTreeMap, BTreeSet};

use super::propagation::Changes;
use crate::entity::{EdgeId, EntityId, Subject};
pub use crate::incident::evidence::RootCause;

#[derive(Debug, Clone, Copy)]
pub struct RankConfig {
    /// Probability of following an edge rather than restarting.
    pub damping: f64,
    /// Weight of stepping back to an anomalous caller, relative to a dependency.
    pub backward: f64,
    pub iterations: usize,
}

impl Default for RankConfig {
    fn default() -> Self {
        Self {
            damping: 0.85,
            backward: 0.2,
            iterations: 100,
        }
    }
}

/// Ranks the anomalous entities of `anomaly` (entity → score in (0, 1]) given the call edges
/// (`caller → callee`). Entities without an anomaly are stepping stones, never candidates.
#[cfg(test)]
pub fn rank(
    edges: &[EdgeId],
    anomaly: &BTreeMap<EntityId, f64>,
    config: RankConfig,
) -> Vec<RootCause> {
    rank_with(
        edges,
        anomaly,
        &Changes::default(),
        &std::collections::BTreeSet::new(),
        config,
    )
}

/// [`rank`], with the episode's changes in their units: a step to a dependency is weighted
/// by how much of the caller's change the dependency's explains, and the endpoint most
/// anomalous links share (a host's network) ranks first.
pub fn rank_with(
    edges: &[EdgeId],
    anomaly: &BTreeMap<EntityId, f64>,
    changes: &Changes,
    active: &BTreeSet<Subject>,
    config: RankConfig,
) -> Vec<RootCause> {
    // A server its other callers reach as usual passes its blame to the callers that fail on
    // it, and explains none of their trouble.
    let exonerated = changes.exonerated(edges, active);
    let mut anomaly = anomaly.clone();
    for (server, callers) in &exonerated {
        let s = anomaly.get(server).copied().unwrap_or(0.0);
        for c in callers {
            let slot = anomaly.entry(c.clone()).or_insert(0.0);
            *slot = slot.max(s);
        }
        if let Some(v) = anomaly.get_mut(server) {
            *v *= 0.3;
        }
    }
    let mut ranked = walk(edges, &anomaly, changes, &exonerated, config);
    if let Some(suspect) = changes.link_suspect() {
        promote(&mut ranked, suspect, &anomaly);
    }
    ranked
}

/// Puts the link suspect first, with the top score (an entity that only calls the slow
/// links joins the candidates so).
fn promote(ranked: &mut Vec<RootCause>, suspect: EntityId, anomaly: &BTreeMap<EntityId, f64>) {
    let top = ranked.first().map_or(1.0, |r| r.score);
    let mut entry = match ranked.iter().position(|r| r.entity == suspect) {
        Some(i) => ranked.remove(i),
        None => RootCause {
            anomaly: anomaly.get(&suspect).copied().unwrap_or(0.0),
            entity: suspect,
            score: 0.0,
        },
    };
    entry.score = entry.score.max(top);
    ranked.insert(0, entry);
    let total: f64 = ranked.iter().map(|r| r.score).sum();
    for r in ranked.iter_mut() {
        r.score /= total.max(f64::MIN_POSITIVE);
    }
}

fn walk(
    edges: &[EdgeId],
    anomaly: &BTreeMap<EntityId, f64>,
    changes: &Changes,
    exonerated: &BTreeMap<EntityId, Vec<EntityId>>,
    config: RankConfig,
) -> Vec<RootCause> {
    let score = |e: &str| anomaly.get(e).copied().unwrap_or(0.0);
    // The anomalous entities and their direct dependencies.
    let mut nodes: BTreeSet<&str> = anomaly.keys().map(EntityId::as_str).collect();
    for e in edges {
        if anomaly.contains_key(e.client.as_str()) {
            nodes.insert(e.server.as_str());
        }
    }
    let nodes: Vec<&str> = nodes.into_iter().collect();
    if nodes.is_empty() {
        return Vec::new();
    }
    let index: BTreeMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let n = nodes.len();
    let mut callees = vec![Vec::new(); n];
    let mut callers = vec![Vec::new(); n];
    for e in edges {
        if let (Some(&a), Some(&b)) = (index.get(e.client.as_str()), index.get(e.server.as_str())) {
            if a != b {
                callees[a].push(b);
                callers[b].push(a);
            }
        }
    }
    // Transition weights out of each node.
    let eps = 1e-3;
    let mut out: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    for u in 0..n {
        let su = score(nodes[u]);
        // A dependency pulls as far as its anomaly explains the caller's.
        let pull: Vec<(usize, f64)> = callees[u]
            .iter()
            .map(|&v| {
                let callee = EntityId::from(nodes[v]);
                let explains = if exonerated.contains_key(&callee) {
                    0.0
                } else {
                    changes.explains(&nodes[u].into(), &callee)
                };
                (v, score(nodes[v]) * explains)
            })
            .collect();
        let worst_callee = pull.iter().map(|(_, p)| *p).fold(0.0, f64::max);
        for &(v, p) in &pull {
            out[u].push((v, p + eps));
        }
        for &c in &callers[u] {
            out[u].push((c, config.backward * score(nodes[c])));
        }
        out[u].push((u, su * (1.0 - worst_callee) + eps));
        let total: f64 = out[u].iter().map(|(_, w)| w).sum();
        for (_, w) in &mut out[u] {
            *w /= total;
        }
    }
    let restart: Vec<f64> = {
        let raw: Vec<f64> = nodes.iter().map(|e| score(e)).collect();
        let total: f64 = raw.iter().sum();
        if total > 0.0 {
            raw.iter().map(|s| s / total).collect()
        } else {
            vec![1.0 / n as f64; n]
        }
    };
    let mut mass = restart.clone();
    for _ in 0..config.iterations {
        let mut next: Vec<f64> = restart.iter().map(|r| (1.0 - config.damping) * r).collect();
        for u in 0..n {
            for &(v, w) in &out[u] {
                next[v] += config.damping * mass[u] * w;
            }
        }
        mass = next;
    }
    let mut ranked: Vec<RootCause> = nodes
        .iter()
        .zip(&mass)
        .filter(|(e, _)| score(e) > 0.0)
        .map(|(e, &m)| RootCause {
            entity: EntityId::new(*e),
            score: m,
            anomaly: score(e),
        })
        .collect();
    let total: f64 = ranked.iter().map(|r| r.score).sum();
    for r in &mut ranked {
        r.score /= total.max(f64::MIN_POSITIVE);
    }
    ranked.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.anomaly.total_cmp(&a.anomaly))
            .then(a.entity.cmp(&b.entity))
    });
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges(list: &[(&str, &str)]) -> Vec<EdgeId> {
        list.iter()
            .map(|(a, b)| EdgeId::new((*a).into(), (*b).into()))
            .collect()
    }

    fn scores(list: &[(&str, f64)]) -> BTreeMap<EntityId, f64> {
        list.iter().map(|(e, s)| ((*e).into(), *s)).collect()
    }

    /// load → web → app → {redis, postgres}
    fn chain() -> Vec<EdgeId> {
        edges(&[
            ("load", "web"),
            ("web", "app"),
            ("app", "redis"),
            ("app", "postgres"),
        ])
    }

    #[test]
    fn the_deepest_anomalous_dependency_ranks_first_even_when_its_callers_look_worse() {
        // The slow database's callers show larger anomalies than the database itself.
        let s = scores(&[("web", 0.9), ("app", 0.95), ("redis", 0.6)]);
        let ranked = rank(&chain(), &s, RankConfig::default());
        assert_eq!(ranked[0].entity, "redis", "{ranked:?}");
        assert_eq!(ranked.len(), 3, "postgres (healthy) is no candidate");
        let total: f64 = ranked.iter().map(|r| r.score).sum();
        assert!((total - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_faulty_caller_with_healthy_dependencies_keeps_the_blame() {
        // app itself fails (e.g. permission errors); web suffers; redis and postgres are fine.
        let s = scores(&[("web", 0.7), ("app", 0.9)]);
        let ranked = rank(&chain(), &s, RankConfig::default());
        assert_eq!(ranked[0].entity, "app", "{ranked:?}");
    }

    #[test]
    fn a_dependency_that_moved_too_little_to_explain_its_caller_keeps_no_blame() {
        use crate::{
            entity::{Subject, SubjectClass},
            incident::evidence::{AnomalyEvidence, FeatureEvidence},
        };
        let anomaly = |a: &str, b: &str, f: &str, median: f64, value: f64| AnomalyEvidence {
            entity: Subject::Edge(EdgeId::new(a.into(), b.into())),
            class: SubjectClass::Edge,
            window: 1,
            time_unix_ns: 0,
            score: 0.9,
            tier: 1,
            features: vec![FeatureEvidence {
                feature: f.into(),
                value,
                median,
                z: 10.0,
                score: 0.9,
                crossed: true,
                fired: true,
            }],
            forest: None,
        };
        // app is cut off: web's calls to it take 2 s; its postgres calls are 26 ms slower.
        let s = scores(&[("web", 0.3), ("app", 0.95), ("postgres", 0.9)]);
        assert_eq!(
            rank(&chain(), &s, RankConfig::default())[0].entity,
            "postgres"
        );
        let mut changes = Changes::default();
        changes.record(&anomaly("web", "app", "request_p99_us", 17e3, 2.1e6));
        changes.record(&anomaly("app", "postgres", "request_p99_us", 8e3, 34e3));
        let ranked = rank_with(
            &chain(),
            &s,
            &changes,
            &BTreeSet::new(),
            RankConfig::default(),
        );
        assert_eq!(ranked[0].entity, "app", "{ranked:?}");
    }

    #[test]
    fn unconnected_anomalies_rank_by_their_own_scores() {
        let s = scores(&[("a", 0.3), ("b", 0.8)]);
        let ranked = rank(&[], &s, RankConfig::default());
        assert_eq!(ranked[0].entity, "b");
        assert!(rank(&chain(), &BTreeMap::new(), RankConfig::default()).is_empty());
    }
}
