//! What the cluster knows about a pod that diagnosis asks for: its containers' logs (the
//! `pods/log` subresource, the previous run's too when a container restarted) and the
//! revisions of the Deployment behind it (its ReplicaSets, from a watch).
//!
//! An agent names a pod's workload `k8s-pod/<uid>`; the pod is found by that uid in the Pods
//! the endpoint resolver already watches, so the cluster is watched once.

use std::{sync::Arc, time::Duration};

use k8s_openapi::{
    api::{apps::v1::ReplicaSet, core::v1::Pod},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{
    api::LogParams,
    runtime::reflector::{self, Store},
    Api, Client,
};
use tokio::task::JoinHandle;

use super::endpoints::reflect;
use crate::{
    adapters::{logs::dated, outbound},
    domain::{
        diagnose::ports::{ChangeSource, LogSource, Rollout},
        entity::EntityId,
        store::StoreError,
    },
};

/// How long one log read may take before diagnosis goes on without it.
const LOG_TIMEOUT: Duration = Duration::from_secs(5);
/// The annotation the Deployment controller numbers its ReplicaSets with.
const REVISION: &str = "deployment.kubernetes.io/revision";

pub struct KubeWorkloads {
    client: Client,
    pods: Store<Pod>,
    replicasets: Store<ReplicaSet>,
    task: JoinHandle<()>,
}

impl KubeWorkloads {
    /// Watches ReplicaSets; `pods` is the Pod store already watched.
    pub fn start(client: Client, pods: Store<Pod>) -> Self {
        let (replicasets, task) = reflect::<ReplicaSet>(&client);
        Self {
            client,
            pods,
            replicasets,
            task,
        }
    }

    /// Waits until the ReplicaSets have been listed once.
    pub async fn wait_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.replicasets.wait_until_ready().await
    }

    /// The pod an agent's workload key names.
    fn pod(&self, entity: &EntityId) -> Option<Arc<Pod>> {
        let uid = entity.pod_uid()?;
        self.pods.find(|p| p.metadata.uid.as_deref() == Some(uid))
    }

    fn replicaset(&self, namespace: &str, name: &str) -> Option<Arc<ReplicaSet>> {
        self.replicasets.find(|rs| {
            rs.metadata.namespace.as_deref() == Some(namespace)
                && rs.metadata.name.as_deref() == Some(name)
        })
    }
}

impl Drop for KubeWorkloads {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The owner of `kind` that controls the object.
fn controller<'a>(meta: &'a ObjectMeta, kind: &str) -> Option<&'a OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == kind && o.controller.unwrap_or(false))
}

fn unix_ns(meta: &ObjectMeta) -> Option<i64> {
    let t = meta.creation_timestamp.as_ref()?;
    i64::try_from(t.0.as_nanosecond()).ok()
}

/// The revision the Deployment controller numbered `rs` with.
pub fn revision(rs: &ReplicaSet) -> Option<u64> {
    rs.metadata
        .annotations
        .as_ref()?
        .get(REVISION)?
        .parse()
        .ok()
}

fn images(rs: &ReplicaSet) -> Vec<String> {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .map(|p| {
            p.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default()
}

impl ChangeSource for KubeWorkloads {
    fn rollouts(&self, entity: &EntityId, since_unix_ns: i64) -> Result<Vec<Rollout>, StoreError> {
        let Some(pod) = self.pod(entity) else {
            return Ok(Vec::new());
        };
        let Some(namespace) = pod.metadata.namespace.as_deref() else {
            return Ok(Vec::new());
        };
        let Some(own) = controller(&pod.metadata, "ReplicaSet")
            .and_then(|o| self.replicaset(namespace, &o.name))
        else {
            return Ok(Vec::new());
        };
        let Some(deployment) = controller(&own.metadata, "Deployment") else {
            return Ok(Vec::new());
        };
        // Every revision of that Deployment, oldest first.
        let mut revisions: Vec<(u64, Arc<ReplicaSet>)> = self
            .replicasets
            .state()
            .into_iter()
            .filter(|rs| {
                rs.metadata.namespace.as_deref() == Some(namespace)
                    && controller(&rs.metadata, "Deployment")
                        .is_some_and(|d| d.uid == deployment.uid)
            })
            .filter_map(|rs| revision(&rs).map(|r| (r, rs)))
            .collect();
        revisions.sort_by_key(|(r, _)| *r);
        let name = format!("Deployment {namespace}/{}", deployment.name);
        let mut out = Vec::new();
        for (i, (number, rs)) in revisions.iter().enumerate() {
            let Some(at) = unix_ns(&rs.metadata).filter(|at| *at >= since_unix_ns) else {
                continue;
            };
            out.push(Rollout {
                controller: name.clone(),
                revision: *number,
                at_unix_ns: at,
                images: images(rs),
                previous_images: i
                    .checked_sub(1)
                    .map(|p| images(&revisions[p].1))
                    .unwrap_or_default(),
                runs_it: rs.metadata.uid == own.metadata.uid,
            });
        }
        Ok(out)
    }
}

/// One container's log to read: its current run, or the run before its last restart.
struct LogRead {
    container: String,
    previous: bool,
}

/// What of the pod's logs to read: every container's current run, and the previous run of
/// those that restarted (a crash's last words are there, not in the fresh run).
fn reads(pod: &Pod) -> Vec<LogRead> {
    let restarted = |name: &str| {
        pod.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.name == name))
            .is_some_and(|c| c.restart_count > 0)
    };
    let mut out = Vec::new();
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        if restarted(&c.name) {
            out.push(LogRead {
                container: c.name.clone(),
                previous: true,
            });
        }
        out.push(LogRead {
            container: c.name.clone(),
            previous: false,
        });
    }
    out
}

impl LogSource for KubeWorkloads {
    fn tail(
        &self,
        entity: &EntityId,
        since_unix_ns: i64,
        max_lines: usize,
    ) -> Result<Vec<String>, StoreError> {
        let Some(pod) = self.pod(entity) else {
            return Ok(Vec::new());
        };
        let (Some(namespace), Some(name)) =
            (pod.metadata.namespace.clone(), pod.metadata.name.clone())
        else {
            return Ok(Vec::new());
        };
        let reads = reads(&pod);
        let tag = reads.len() > 1;
        // The API filters by whole seconds; lines are dated and filtered exactly below.
        let since_time = jiff::Timestamp::from_nanosecond(i128::from(since_unix_ns)).ok();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let fetched = outbound::block_on(async move {
            let mut lines: Vec<(i64, String)> = Vec::new();
            for read in reads {
                let params = LogParams {
                    container: Some(read.container.clone()),
                    previous: read.previous,
                    since_time,
                    tail_lines: Some(i64::try_from(max_lines).unwrap_or(i64::MAX)),
                    timestamps: true,
                    ..LogParams::default()
                };
                let text = tokio::time::timeout(LOG_TIMEOUT, api.logs(&name, &params))
                    .await
                    .map_err(|_| {
                        StoreError::backend(
                            "reading pod logs from the Kubernetes API",
                            format!("no answer within {LOG_TIMEOUT:?}"),
                        )
                    })?
                    .map_err(|e| {
                        StoreError::backend("reading pod logs from the Kubernetes API", e)
                    })?;
                let label = match (tag, read.previous) {
                    (_, true) => format!("[{}, previous run] ", read.container),
                    (true, false) => format!("[{}] ", read.container),
                    (false, false) => String::new(),
                };
                for line in text.lines() {
                    let Some(at) = dated(line) else { continue };
                    if at < since_unix_ns {
                        continue;
                    }
                    // Keep the timestamp first: it is what dates the line for every reader.
                    let (stamp, rest) = line.split_once(' ').unwrap_or((line, ""));
                    lines.push((at, format!("{stamp} {label}{rest}")));
                }
            }
            Ok::<_, StoreError>(lines)
        })
        .map_err(|e| StoreError::backend("reading pod logs from the Kubernetes API", e))??;
        let mut lines = fetched;
        lines.sort_by_key(|(at, _)| *at);
        let skip = lines.len().saturating_sub(max_lines);
        Ok(lines.into_iter().skip(skip).map(|(_, l)| l).collect())
    }
}
