//! The fleet as the cluster shows it: the live service graph's workloads and dependents, with
//! a pod's real replica count and health (the pods of its controller — its ReplicaSet,
//! StatefulSet or DaemonSet — and how many of them are Ready), its namespace and its labels,
//! from the pods the endpoint resolver already watches. The guardrails' blast radius, last
//! healthy endpoint and allow/deny lists then judge what the cluster holds, not a guess.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::Store;

use crate::domain::{
    entity::EntityId,
    remediate::{ports::FleetView, GraphFleet, Workload},
    store::StoreError,
};

pub struct KubeFleet {
    pub graph: GraphFleet,
    pub pods: Store<Pod>,
}

fn controller_uid(pod: &Pod) -> Option<&str> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

fn ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

impl KubeFleet {
    /// What the cluster says of `pod`'s workload, keeping what `w` knew (its dependents).
    fn fill(&self, uid: &str, w: &mut Workload, pods: &[Arc<Pod>]) -> bool {
        let Some(pod) = pods.iter().find(|p| p.metadata.uid.as_deref() == Some(uid)) else {
            return false;
        };
        let siblings: Vec<&Arc<Pod>> = match controller_uid(pod) {
            Some(owner) => pods
                .iter()
                .filter(|p| controller_uid(p) == Some(owner))
                .collect(),
            None => vec![pod],
        };
        w.replicas = u32::try_from(siblings.len()).unwrap_or(u32::MAX);
        w.healthy = u32::try_from(siblings.iter().filter(|p| ready(p)).count()).unwrap_or(0);
        w.down = !ready(pod);
        w.namespace = pod.metadata.namespace.clone();
        w.labels = pod.metadata.labels.clone().unwrap_or_default();
        true
    }
}

impl FleetView for KubeFleet {
    fn fleet(&self) -> Result<BTreeMap<EntityId, Workload>, StoreError> {
        let mut fleet = self.graph.fleet()?;
        let pods = self.pods.state();
        for (id, w) in fleet.iter_mut() {
            if let Some(uid) = id.pod_uid() {
                self.fill(uid, w, &pods);
            }
        }
        Ok(fleet)
    }

    /// A pod the graph has not seen call or be called: its controller's pods say the rest;
    /// a pod the cluster no longer has is unknown (refused); anything else as the graph says.
    fn unlisted(&self, target: &EntityId) -> Option<Workload> {
        let Some(uid) = target.pod_uid() else {
            return self.graph.unlisted(target);
        };
        let mut w = Workload::default();
        self.fill(uid, &mut w, &self.pods.state()).then_some(w)
    }
}
