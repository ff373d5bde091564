//! From the pod an incident names (`k8s-pod/<uid>`) to what an action changes: the pod
//! itself, its node, or the workload that owns it (a Deployment through its ReplicaSet, or a
//! StatefulSet), read fresh from the API server so a decision never rests on a stale cache.

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, ReplicaSet, StatefulSet},
        core::v1::{Container, Pod, PodTemplateSpec},
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{Api, Client};

use super::KubeFailure;

/// The object that owns a pod and whose template makes it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
}

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
        }
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.kind.as_str().to_lowercase(),
            self.namespace,
            self.name
        )
    }
}

/// The owner reference that controls `meta`'s object.
pub fn controller(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
}

pub fn namespace(pod: &Pod) -> Result<String, KubeFailure> {
    pod.metadata
        .namespace
        .clone()
        .ok_or_else(|| KubeFailure::Failed("the pod has no namespace".into()))
}

pub fn name(meta: &ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// The Deployment or StatefulSet that owns `pod`.
pub async fn workload(client: &Client, pod: &Pod) -> Result<Workload, KubeFailure> {
    let ns = namespace(pod)?;
    let owner = controller(&pod.metadata).ok_or_else(|| {
        KubeFailure::Failed(format!(
            "pod {ns}/{} has no controller: nothing would make it again",
            name(&pod.metadata)
        ))
    })?;
    match owner.kind.as_str() {
        "StatefulSet" => Ok(Workload {
            kind: WorkloadKind::StatefulSet,
            namespace: ns,
            name: owner.name.clone(),
        }),
        "ReplicaSet" => {
            let rs = Api::<ReplicaSet>::namespaced(client.clone(), &ns)
                .get(&owner.name)
                .await?;
            match controller(&rs.metadata) {
                Some(d) if d.kind == "Deployment" => Ok(Workload {
                    kind: WorkloadKind::Deployment,
                    namespace: ns,
                    name: d.name.clone(),
                }),
                _ => Err(KubeFailure::Failed(format!(
                    "ReplicaSet {ns}/{} belongs to no Deployment",
                    owner.name
                ))),
            }
        }
        other => Err(KubeFailure::Failed(format!(
            "pod {ns}/{} is run by a {other}, which this runtime does not change",
            name(&pod.metadata)
        ))),
    }
}

/// The workload's pod template as the API server has it now, with its resource version.
pub async fn template(
    client: &Client,
    w: &Workload,
) -> Result<(PodTemplateSpec, Option<i32>, String), KubeFailure> {
    let (template, replicas, version) = match w.kind {
        WorkloadKind::Deployment => {
            let d = Api::<Deployment>::namespaced(client.clone(), &w.namespace)
                .get(&w.name)
                .await?;
            let spec = d.spec.unwrap_or_default();
            (spec.template, spec.replicas, d.metadata.resource_version)
        }
        WorkloadKind::StatefulSet => {
            let s = Api::<StatefulSet>::namespaced(client.clone(), &w.namespace)
                .get(&w.name)
                .await?;
            let spec = s.spec.unwrap_or_default();
            (spec.template, spec.replicas, s.metadata.resource_version)
        }
    };
    Ok((template, replicas, version.unwrap_or_default()))
}

/// The container an action on `pod` changes: the pod's only one, else the one the kernel
/// last OOM-killed.
pub fn container(pod: &Pod) -> Result<String, KubeFailure> {
    let containers: Vec<&Container> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().collect())
        .unwrap_or_default();
    if let [only] = containers.as_slice() {
        return Ok(only.name.clone());
    }
    let oom_killed: Vec<String> = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| {
            c.last_state
                .as_ref()
                .and_then(|l| l.terminated.as_ref())
                .is_some_and(|t| t.reason.as_deref() == Some("OOMKilled"))
        })
        .map(|c| c.name.clone())
        .collect();
    match oom_killed.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(KubeFailure::Failed(format!(
            "the pod has {} containers and no single one was OOM-killed last: Vigil cannot tell which to change",
            containers.len()
        ))),
    }
}
