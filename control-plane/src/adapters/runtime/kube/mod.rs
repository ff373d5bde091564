//! The Kubernetes runtime: actions on the workload behind a pod an incident names
//! (`k8s-pod/<uid>`), each with its inverse recorded.
//!
//! - evict the pod through the Eviction API, so PodDisruptionBudgets are honoured: a 429 is
//!   the budget saying no, taken as a refusal and never retried;
//! - rollout-restart, scale (or raise the HPA's minimum when one owns the replica count),
//!   raise a container's memory or CPU limit, cordon the pod's node: server-side apply under
//!   the field manager `vigil`, touching only the fields the action sets;
//! - roll a Deployment back to its previous ReplicaSet's template: a replace conditioned on
//!   the resource version read, since apply would merge the old template into fields other
//!   managers own rather than restore it.
//!
//! An undo writes the old value back only while the object still holds what Vigil set: a
//! change made since by someone else stands.

mod actions;
pub mod quantity;
pub mod target;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::{runtime::reflector::Store, Client};

use crate::{
    adapters::outbound,
    domain::{
        entity::EntityId,
        remediate::{
            ports::{Runtime, RuntimeError},
            ActionClass, Applied, Step,
        },
    },
};

/// The field manager of every write, so `kubectl get -o yaml --show-managed-fields` says
/// which fields remediation set.
pub const FIELD_MANAGER: &str = "vigil";

/// Why a call did not do what it should.
#[derive(Debug)]
pub enum KubeFailure {
    /// The cluster said no on purpose (a PodDisruptionBudget's 429).
    Refused(String),
    Failed(String),
}

impl From<kube::Error> for KubeFailure {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) if s.code == 429 => Self::Refused(format!(
                "the API server answered 429 {}: {} (not retried: the budget protects the workload)",
                s.reason, s.message
            )),
            kube::Error::Api(s) => Self::Failed(format!(
                "the API server answered {} {}: {}",
                s.code, s.reason, s.message
            )),
            other => Self::Failed(other.to_string()),
        }
    }
}

pub struct KubeRuntime {
    client: Client,
    /// The pods the endpoint resolver already watches: an incident's pod is found by uid.
    pods: Store<Pod>,
}

impl KubeRuntime {
    /// A client of its own on `config`, without the client's default retries: they would
    /// answer a PodDisruptionBudget's 429 with up to fifteen more evictions.
    pub fn new(mut config: kube::Config, pods: Store<Pod>) -> Result<Self, kube::Error> {
        config.default_retry = false;
        Ok(Self {
            client: Client::try_from(config)?,
            pods,
        })
    }

    /// The workload behind `target`'s pod and the container an action on it changes: what a
    /// GitOps commit edits.
    pub fn workload_of(
        &self,
        class: ActionClass,
        target: &EntityId,
    ) -> Result<(target::Workload, String), RuntimeError> {
        let pod = self.pod(class, target)?;
        let client = self.client.clone();
        call(class, target, async move {
            Ok((
                target::workload(&client, &pod).await?,
                target::container(&pod)?,
            ))
        })
    }

    fn pod(&self, class: ActionClass, target: &EntityId) -> Result<Arc<Pod>, RuntimeError> {
        let uid = target.pod_uid().ok_or_else(|| RuntimeError::Unsupported {
            runtime: "kubernetes",
            action: class.as_str(),
            why: format!("{target} is not a pod (k8s-pod/<uid>)"),
        })?;
        self.pods
            .find(|p| p.metadata.uid.as_deref() == Some(uid))
            .ok_or_else(|| RuntimeError::Failed {
                action: class.as_str(),
                target: target.clone(),
                why: format!("no pod with uid {uid} in the cluster (deleted since?)"),
            })
    }
}

fn error(class: ActionClass, target: &EntityId, f: KubeFailure) -> RuntimeError {
    match f {
        KubeFailure::Refused(why) => RuntimeError::Refused {
            action: class.as_str(),
            target: target.clone(),
            why,
        },
        KubeFailure::Failed(why) => RuntimeError::Failed {
            action: class.as_str(),
            target: target.clone(),
            why,
        },
    }
}

/// Runs a call on a runtime of its own (remediation runs on a blocking thread).
fn call<T: Send>(
    class: ActionClass,
    target: &EntityId,
    fut: impl std::future::Future<Output = Result<T, KubeFailure>> + Send,
) -> Result<T, RuntimeError> {
    outbound::block_on(fut)
        .map_err(KubeFailure::Failed)
        .and_then(|r| r)
        .map_err(|f| error(class, target, f))
}

impl Runtime for KubeRuntime {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn supports(&self, class: ActionClass) -> bool {
        actions::supported(class)
    }

    fn apply(&self, target: &EntityId, step: &Step) -> Result<Applied, RuntimeError> {
        let class = step.action;
        if !actions::supported(class) {
            return Err(RuntimeError::Unsupported {
                runtime: "kubernetes",
                action: class.as_str(),
                why: "it evicts, restarts, scales, patches limits, rolls back and cordons".into(),
            });
        }
        let pod = self.pod(class, target)?;
        call(class, target, actions::apply(&self.client, &pod, step))
    }

    fn undo(&self, target: &EntityId, applied: &Applied) -> Result<(), RuntimeError> {
        let inverse: actions::Inverse =
            serde_json::from_value(applied.inverse.clone()).map_err(|e| RuntimeError::Failed {
                action: "undo",
                target: target.clone(),
                why: format!("the recorded inverse is not one this runtime wrote: {e}"),
            })?;
        let class = inverse.class();
        call(class, target, actions::undo(&self.client, inverse))
    }
}
