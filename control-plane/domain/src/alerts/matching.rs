//! Which entity an alert is about. Its labels name the workload in the vocabulary of whoever
//! wrote the rule (`service`, `pod`, `job`, `container`, …); they are matched against the
//! entities Vigil knows (service graph, kernel-event workloads), exactly or by the entity's
//! last path segment, so `service="redis"` finds `cgroup/vigil-lab/redis` or
//! `k8s-svc/shop/redis`.

use std::collections::BTreeMap;

use crate::entity::EntityId;

/// Labels that name a workload, most specific first.
const WORKLOAD_LABELS: &[&str] = &[
    "vigil_entity",
    "workload",
    "service",
    "pod",
    "container",
    "deployment",
    "statefulset",
    "daemonset",
    "app",
    "job",
    "name",
];

/// The entity an alert is about: an exact id, else the entity whose last path segment is a
/// workload label's value; `None` when Vigil knows nothing by that name.
pub fn match_entity<'a>(
    labels: &BTreeMap<String, String>,
    known: impl IntoIterator<Item = &'a EntityId> + Clone,
) -> Option<EntityId> {
    for key in WORKLOAD_LABELS {
        let Some(value) = labels.get(*key).filter(|v| !v.is_empty()) else {
            continue;
        };
        if let Some(e) = known.clone().into_iter().find(|e| *e == value.as_str()) {
            return Some(e.clone());
        }
        if let Some(e) = known
            .clone()
            .into_iter()
            .find(|e| e.last_segment() == value.as_str())
        {
            return Some(e.clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_match_entities_exactly_or_by_last_segment() {
        let known: Vec<EntityId> = ["cgroup/vigil-lab/redis", "k8s-svc/shop/cart", "host"]
            .map(EntityId::from)
            .to_vec();
        let l = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            match_entity(&l(&[("service", "redis")]), &known),
            Some("cgroup/vigil-lab/redis".into())
        );
        assert_eq!(
            match_entity(&l(&[("job", "cart"), ("vigil_entity", "host")]), &known),
            Some("host".into()),
            "the explicit label wins"
        );
        assert_eq!(match_entity(&l(&[("service", "edis")]), &known), None);
    }
}
