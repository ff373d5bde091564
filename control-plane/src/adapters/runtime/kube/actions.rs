//! Each action's write and the inverse it records.

use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet},
    autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::{Node, Pod, PodTemplateSpec},
};
use kube::{
    api::{ApiResource, DynamicObject, EvictParams, ListParams, Patch, PatchParams, PostParams},
    Api, Client, Resource,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{
    quantity,
    target::{self, Workload, WorkloadKind},
    KubeFailure, FIELD_MANAGER,
};
use crate::{
    adapters::kube::workloads::revision,
    domain::remediate::{ActionClass, Applied, Step},
};

/// The annotation `kubectl rollout restart` sets; the controller rolls every pod when it
/// changes.
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// The label the Deployment controller adds to a ReplicaSet's template; not part of the
/// Deployment's own.
const POD_TEMPLATE_HASH: &str = "pod-template-hash";

pub fn supported(class: ActionClass) -> bool {
    matches!(
        class,
        ActionClass::EvictPod
            | ActionClass::RestartProcess
            | ActionClass::RolloutRestart
            | ActionClass::Scale
            | ActionClass::AddReplica
            | ActionClass::RaiseMemoryLimit
            | ActionClass::PatchLimits
            | ActionClass::ChangeCpuQuota
            | ActionClass::Rollback
            | ActionClass::CordonNode
    )
}

/// How to take an action back, as recorded with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Inverse {
    /// A container's limit: `value` (none: unset) written back while it is still `set`.
    Limit {
        class: ActionClass,
        workload: Workload,
        container: String,
        resource: String,
        value: Option<String>,
        set: String,
    },
    Replicas {
        class: ActionClass,
        workload: Workload,
        value: i32,
        set: i32,
    },
    HpaMinimum {
        class: ActionClass,
        namespace: String,
        name: String,
        value: i32,
        set: i32,
    },
    /// The template before a rollback, put back while the rolled-back one is still there.
    Template {
        class: ActionClass,
        workload: Workload,
        value: Box<PodTemplateSpec>,
        set: Box<PodTemplateSpec>,
    },
    Uncordon {
        class: ActionClass,
        node: String,
    },
    /// Nothing to take back: the controller replaces an evicted pod; a restart changes no
    /// desired state.
    Nothing {
        class: ActionClass,
        why: String,
    },
}

impl Inverse {
    pub fn class(&self) -> ActionClass {
        match self {
            Self::Limit { class, .. }
            | Self::Replicas { class, .. }
            | Self::HpaMinimum { class, .. }
            | Self::Template { class, .. }
            | Self::Uncordon { class, .. }
            | Self::Nothing { class, .. } => *class,
        }
    }
}

fn applied(detail: String, inverse: &Inverse) -> Result<Applied, KubeFailure> {
    Ok(Applied {
        detail,
        inverse: serde_json::to_value(inverse)
            .map_err(|e| KubeFailure::Failed(format!("recording the inverse: {e}")))?,
    })
}

/// The workload's API, for either kind.
fn workload_api(client: &Client, w: &Workload) -> Api<DynamicObject> {
    let resource = match w.kind {
        WorkloadKind::Deployment => ApiResource::erase::<Deployment>(&()),
        WorkloadKind::StatefulSet => {
            ApiResource::erase::<k8s_openapi::api::apps::v1::StatefulSet>(&())
        }
    };
    Api::namespaced_with(client.clone(), &w.namespace, &resource)
}

/// Server-side apply of `fields` (a partial object) to the workload, as `vigil`.
async fn apply_workload(client: &Client, w: &Workload, fields: Value) -> Result<(), KubeFailure> {
    let mut body = json!({
        "apiVersion": "apps/v1",
        "kind": w.kind.as_str(),
        "metadata": {"name": w.name, "namespace": w.namespace},
    });
    if let (Some(b), Some(f)) = (body.as_object_mut(), fields.as_object()) {
        b.extend(f.clone());
    }
    workload_api(client, w)
        .patch(&w.name, &ssa(), &Patch::Apply(&body))
        .await?;
    Ok(())
}

fn ssa() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

pub async fn apply(client: &Client, pod: &Pod, step: &Step) -> Result<Applied, KubeFailure> {
    let class = step.action;
    match class {
        ActionClass::EvictPod | ActionClass::RestartProcess => evict(client, pod, class).await,
        ActionClass::RolloutRestart => restart(client, pod, class).await,
        ActionClass::Scale | ActionClass::AddReplica => {
            let by = step.number("by").unwrap_or(1.0).round().max(1.0) as i32;
            scale(client, pod, class, by).await
        }
        ActionClass::RaiseMemoryLimit | ActionClass::PatchLimits => {
            limit(client, pod, step, "memory").await
        }
        ActionClass::ChangeCpuQuota => limit(client, pod, step, "cpu").await,
        ActionClass::Rollback => rollback(client, pod, class).await,
        ActionClass::CordonNode => cordon(client, pod, class).await,
        other => Err(KubeFailure::Failed(format!(
            "{} is not a Kubernetes action",
            other.as_str()
        ))),
    }
}

async fn evict(client: &Client, pod: &Pod, class: ActionClass) -> Result<Applied, KubeFailure> {
    let ns = target::namespace(pod)?;
    let name = target::name(&pod.metadata);
    // Only a pod something makes again: a bare pod evicted is gone for good.
    let owner = target::workload(client, pod).await?;
    Api::<Pod>::namespaced(client.clone(), &ns)
        .evict(&name, &EvictParams::default())
        .await?;
    applied(
        format!("evicted pod {ns}/{name}; {owner} replaces it"),
        &Inverse::Nothing {
            class,
            why: format!("{owner} replaces an evicted pod"),
        },
    )
}

async fn restart(client: &Client, pod: &Pod, class: ActionClass) -> Result<Applied, KubeFailure> {
    let w = target::workload(client, pod).await?;
    let now = jiff::Timestamp::now().to_string();
    apply_workload(
        client,
        &w,
        json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}),
    )
    .await?;
    applied(
        format!("restarted {w}'s pods (rollout at {now})"),
        &Inverse::Nothing {
            class,
            why: "a restart changes no desired state".into(),
        },
    )
}

/// The HPA that owns `w`'s replica count, if one does.
async fn hpa(
    client: &Client,
    w: &Workload,
) -> Result<Option<HorizontalPodAutoscaler>, KubeFailure> {
    let list = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &w.namespace)
        .list(&ListParams::default())
        .await?;
    Ok(list.items.into_iter().find(|h| {
        h.spec.as_ref().is_some_and(|s| {
            s.scale_target_ref.kind == w.kind.as_str() && s.scale_target_ref.name == w.name
        })
    }))
}

async fn scale(
    client: &Client,
    pod: &Pod,
    class: ActionClass,
    by: i32,
) -> Result<Applied, KubeFailure> {
    let w = target::workload(client, pod).await?;
    if let Some(h) = hpa(client, &w).await? {
        // The HPA would undo a direct scale: raise its floor instead, within its ceiling.
        let name = target::name(&h.metadata);
        let spec = h.spec.unwrap_or_default();
        let value = spec.min_replicas.unwrap_or(1);
        let set = (value + by).min(spec.max_replicas);
        if set <= value {
            return Err(KubeFailure::Failed(format!(
                "HorizontalPodAutoscaler {}/{name} is at its maximum ({}) already",
                w.namespace, spec.max_replicas
            )));
        }
        set_hpa_minimum(client, &w.namespace, &name, set).await?;
        return applied(
            format!(
                "raised HorizontalPodAutoscaler {}/{name}'s minReplicas for {w}: {value} -> {set}",
                w.namespace
            ),
            &Inverse::HpaMinimum {
                class,
                namespace: w.namespace.clone(),
                name,
                value,
                set,
            },
        );
    }
    let (_, replicas, _) = target::template(client, &w).await?;
    let value = replicas.unwrap_or(1);
    let set = value + by;
    apply_workload(client, &w, json!({"spec": {"replicas": set}})).await?;
    applied(
        format!("scaled {w}: {value} -> {set} replicas"),
        &Inverse::Replicas {
            class,
            workload: w,
            value,
            set,
        },
    )
}

async fn set_hpa_minimum(
    client: &Client,
    namespace: &str,
    name: &str,
    min: i32,
) -> Result<(), KubeFailure> {
    let body = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"minReplicas": min},
    });
    Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), namespace)
        .patch(name, &ssa(), &Patch::Apply(&body))
        .await?;
    Ok(())
}

/// A container's limit in the workload's template now.
fn current_limit(template: &PodTemplateSpec, container: &str, resource: &str) -> Option<String> {
    template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == container)?
        .resources
        .as_ref()?
        .limits
        .as_ref()?
        .get(resource)
        .map(|q| q.0.clone())
}

async fn set_limit(
    client: &Client,
    w: &Workload,
    container: &str,
    resource: &str,
    value: Option<&str>,
) -> Result<(), KubeFailure> {
    // Without the limit, apply drops the field Vigil owned: the limit is as it was unset.
    let limits = value.map_or_else(|| json!({}), |v| json!({ resource: v }));
    apply_workload(
        client,
        w,
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": container, "resources": {"limits": limits}}
        ]}}}}),
    )
    .await
}

async fn limit(
    client: &Client,
    pod: &Pod,
    step: &Step,
    resource: &str,
) -> Result<Applied, KubeFailure> {
    let w = target::workload(client, pod).await?;
    let container = target::container(pod)?;
    let (template, _, _) = target::template(client, &w).await?;
    let value = current_limit(&template, &container, resource).ok_or_else(|| {
        KubeFailure::Failed(format!(
            "container {container} of {w} sets no {resource} limit to raise"
        ))
    })?;
    let old = quantity::parse(&value).ok_or_else(|| {
        KubeFailure::Failed(format!("{w}'s {resource} limit {value:?} is no quantity"))
    })?;
    // Checked at load: a factor within the playbook's safe range.
    let factor = step.number("factor").unwrap_or(1.0);
    let set = if resource == "memory" {
        let mut bytes = old * factor;
        if let Some(max) = step.number("max_bytes") {
            bytes = bytes.min(max);
        }
        quantity::memory(bytes)
    } else {
        quantity::cpu(old * factor)
    };
    if quantity::parse(&set).unwrap_or(0.0) <= old {
        return Err(KubeFailure::Failed(format!(
            "container {container} of {w} is at its {resource} ceiling ({value})"
        )));
    }
    set_limit(client, &w, &container, resource, Some(&set)).await?;
    applied(
        format!("{resource} limit of container {container} of {w}: {value} -> {set}"),
        &Inverse::Limit {
            class: step.action,
            workload: w,
            container,
            resource: resource.to_string(),
            value: Some(value),
            set,
        },
    )
}

/// The template a ReplicaSet runs, as its Deployment would carry it.
fn deployment_template(rs: &ReplicaSet) -> PodTemplateSpec {
    let mut t = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH);
    }
    t
}

async fn rollback(client: &Client, pod: &Pod, class: ActionClass) -> Result<Applied, KubeFailure> {
    let w = target::workload(client, pod).await?;
    if w.kind != WorkloadKind::Deployment {
        return Err(KubeFailure::Failed(format!(
            "{w} keeps no ReplicaSets to roll back to (only Deployments do)"
        )));
    }
    let deployments = Api::<Deployment>::namespaced(client.clone(), &w.namespace);
    let mut deployment = deployments.get(&w.name).await?;
    let uid = deployment.meta().uid.clone();
    let mut owned: Vec<(u64, ReplicaSet)> =
        Api::<ReplicaSet>::namespaced(client.clone(), &w.namespace)
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|rs| {
                target::controller(&rs.metadata).is_some_and(|o| Some(&o.uid) == uid.as_ref())
            })
            .filter_map(|rs| Some((revision(&rs)?, rs)))
            .collect();
    owned.sort_by_key(|(r, _)| *r);
    // Sorted ascending: the last is the current revision, the one before it the previous.
    let [.., (to, previous), (from, _)] = owned.as_slice() else {
        return Err(KubeFailure::Failed(format!(
            "{w} has no earlier revision to roll back to"
        )));
    };
    let value = deployment
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let set = deployment_template(previous);
    replace_template(&deployments, &mut deployment, set.clone()).await?;
    applied(
        format!("rolled {w} back from revision {from} to revision {to}"),
        &Inverse::Template {
            class,
            workload: w,
            value: Box::new(value),
            set: Box::new(set),
        },
    )
}

/// Replaces the Deployment's template, conditioned on the resource version it was read at
/// (a change made in between answers 409 and nothing is written).
async fn replace_template(
    api: &Api<Deployment>,
    deployment: &mut Deployment,
    template: PodTemplateSpec,
) -> Result<(), KubeFailure> {
    let name = target::name(&deployment.metadata);
    if let Some(spec) = deployment.spec.as_mut() {
        spec.template = template;
    }
    deployment.metadata.managed_fields = None;
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    api.replace(&name, &params, deployment).await?;
    Ok(())
}

async fn cordon(client: &Client, pod: &Pod, class: ActionClass) -> Result<Applied, KubeFailure> {
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .ok_or_else(|| KubeFailure::Failed("the pod is on no node yet".into()))?;
    let nodes = Api::<Node>::all(client.clone());
    if unschedulable(&nodes.get(&node).await?) {
        return Err(KubeFailure::Failed(format!(
            "node {node} is cordoned already: someone else's cordon is not Vigil's to undo"
        )));
    }
    set_unschedulable(&nodes, &node, true).await?;
    applied(
        format!("cordoned node {node}"),
        &Inverse::Uncordon { class, node },
    )
}

fn unschedulable(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

async fn set_unschedulable(api: &Api<Node>, node: &str, to: bool) -> Result<(), KubeFailure> {
    let body = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node},
                      "spec": {"unschedulable": to}});
    api.patch(node, &ssa(), &Patch::Apply(&body)).await?;
    Ok(())
}

/// Someone changed what Vigil set: theirs now, left as it is.
fn changed_since(
    what: String,
    now: impl std::fmt::Debug,
    set: impl std::fmt::Debug,
) -> KubeFailure {
    KubeFailure::Failed(format!(
        "{what} is {now:?}, not the {set:?} Vigil set: someone changed it since; left as it is"
    ))
}

pub async fn undo(client: &Client, inverse: Inverse) -> Result<(), KubeFailure> {
    match inverse {
        Inverse::Nothing { .. } => Ok(()),
        Inverse::Limit {
            workload,
            container,
            resource,
            value,
            set,
            ..
        } => {
            let (template, _, _) = target::template(client, &workload).await?;
            let now = current_limit(&template, &container, &resource);
            if now.as_deref() != Some(set.as_str()) {
                return Err(changed_since(
                    format!("the {resource} limit of container {container} of {workload}"),
                    now,
                    set,
                ));
            }
            set_limit(client, &workload, &container, &resource, value.as_deref()).await
        }
        Inverse::Replicas {
            workload,
            value,
            set,
            ..
        } => {
            let (_, now, _) = target::template(client, &workload).await?;
            if now != Some(set) {
                return Err(changed_since(format!("{workload}'s replicas"), now, set));
            }
            apply_workload(client, &workload, json!({"spec": {"replicas": value}})).await
        }
        Inverse::HpaMinimum {
            namespace,
            name,
            value,
            set,
            ..
        } => {
            let h = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &namespace)
                .get(&name)
                .await?;
            let now = h.spec.and_then(|s| s.min_replicas);
            if now != Some(set) {
                return Err(changed_since(
                    format!("HorizontalPodAutoscaler {namespace}/{name}'s minReplicas"),
                    now,
                    set,
                ));
            }
            set_hpa_minimum(client, &namespace, &name, value).await
        }
        Inverse::Template {
            workload,
            value,
            set,
            ..
        } => {
            let api = Api::<Deployment>::namespaced(client.clone(), &workload.namespace);
            let mut deployment = api.get(&workload.name).await?;
            let now = deployment.spec.as_ref().map(|s| &s.template);
            if now != Some(&*set) {
                return Err(KubeFailure::Failed(format!(
                    "{workload}'s template changed since Vigil rolled it back; left as it is"
                )));
            }
            replace_template(&api, &mut deployment, *value).await
        }
        Inverse::Uncordon { node, .. } => {
            let nodes = Api::<Node>::all(client.clone());
            if !unschedulable(&nodes.get(&node).await?) {
                return Ok(());
            }
            set_unschedulable(&nodes, &node, false).await
        }
    }
}
