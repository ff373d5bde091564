//! Who calls whom, transitively: a fault propagates from a dependency up to its callers, so
//! two anomalies can share a cause only if one lies on a call path through the other.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::entity::{EdgeId, EntityId};

#[derive(Debug, Default)]
pub struct CallGraph {
    /// Client → the servers it calls directly.
    calls: HashMap<EntityId, HashSet<EntityId>>,
}

impl CallGraph {
    pub fn new(edges: &[EdgeId]) -> Self {
        let mut calls: HashMap<EntityId, HashSet<EntityId>> = HashMap::new();
        for e in edges {
            calls
                .entry(e.client.clone())
                .or_default()
                .insert(e.server.clone());
        }
        Self { calls }
    }

    /// Whether `from` is `to` or calls it, directly or through others.
    pub fn reaches(&self, from: &EntityId, to: &EntityId) -> bool {
        if from == to {
            return true;
        }
        let mut seen: HashSet<&EntityId> = HashSet::from([from]);
        let mut queue: VecDeque<&EntityId> = VecDeque::from([from]);
        while let Some(n) = queue.pop_front() {
            for m in self.calls.get(n).into_iter().flatten() {
                if m == to {
                    return true;
                }
                if seen.insert(m) {
                    queue.push_back(m);
                }
            }
        }
        false
    }

    /// Whether one of the two lies on a call path through the other (either could be the
    /// cause of the other's trouble).
    pub fn on_one_path(&self, a: &EntityId, b: &EntityId) -> bool {
        self.reaches(a, b) || self.reaches(b, a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_reach_their_dependencies_siblings_do_not_reach_each_other() {
        let edges: Vec<EdgeId> = [
            ("web", "app1"),
            ("web", "app2"),
            ("app1", "db"),
            ("app2", "db"),
        ]
        .iter()
        .map(|(a, b)| EdgeId::new((*a).into(), (*b).into()))
        .collect();
        let g = CallGraph::new(&edges);
        assert!(g.reaches(&"web".into(), &"db".into()));
        assert!(!g.reaches(&"db".into(), &"web".into()));
        assert!(g.on_one_path(&"db".into(), &"web".into()));
        assert!(!g.on_one_path(&"app1".into(), &"app2".into()));
    }
}
