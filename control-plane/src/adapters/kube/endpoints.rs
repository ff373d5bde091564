//! Kubernetes endpoint resolution: which Service or Pod is behind an ip:port, from watches
//! of Services, Pods and EndpointSlices (kube-rs reflectors).
//!
//! Clients connect to a Service's ClusterIP (kube-proxy rewrites the destination below the
//! socket, so the kernel reports the ClusterIP): that resolves to `k8s-svc/<ns>/<name>`. A Pod
//! IP resolves to `k8s-pod/<uid>`, the same key the agents give the pod's workload, so both
//! ends of a pod-to-pod edge meet. Endpoints listed only in an EndpointSlice (no Pod behind,
//! e.g. an external database) resolve to the slice's Service.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::api::{
    core::v1::{Pod, Service},
    discovery::v1::EndpointSlice,
};
use kube::{
    runtime::{
        reflector::{self, Store},
        watcher, WatchStreamExt,
    },
    Api, Client, Resource,
};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::domain::{
    entity::{EntityId, EntityKind},
    graph::ports::{EndpointResolver, ResolvedEndpoint},
    interval::Endpoint,
};

/// How stale the lookup index may get before it is rebuilt from the reflector stores.
const INDEX_TTL: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Index {
    /// (ClusterIP, port) → Service entity; port 0 → any port of that address.
    services: HashMap<(IpAddr, u16), EntityId>,
    /// Pod IP → pod entity (host-network pods share the node's address and are left out).
    pods: HashMap<IpAddr, EntityId>,
    /// (endpoint IP, port) → Service entity, from EndpointSlices.
    slice_endpoints: HashMap<(IpAddr, u16), EntityId>,
}

pub struct KubeEndpoints {
    pods: Store<Pod>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    index: Mutex<(Option<Instant>, Arc<Index>)>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts a reflector for `K` across all namespaces; its task logs watch errors and retries
/// with backoff.
pub(super) fn reflect<K>(client: &Client) -> (Store<K>, JoinHandle<()>)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let api: Api<K> = Api::all(client.clone());
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                warn!(%kind, error = %e, "kubernetes watch failed; retrying");
            }
        }
    });
    (reader, task)
}

fn ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

impl KubeEndpoints {
    pub fn start(client: Client) -> Self {
        let (pods, a) = reflect::<Pod>(&client);
        let (services, b) = reflect::<Service>(&client);
        let (slices, c) = reflect::<EndpointSlice>(&client);
        Self {
            pods,
            services,
            slices,
            index: Mutex::new((None, Arc::default())),
            tasks: vec![a, b, c],
        }
    }

    /// The Pods the resolver watches, for the other readers of the cluster (one watch each).
    pub fn pods(&self) -> Store<Pod> {
        self.pods.clone()
    }

    /// Waits until every watch has listed once.
    pub async fn wait_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.pods.wait_until_ready().await?;
        self.services.wait_until_ready().await?;
        self.slices.wait_until_ready().await
    }

    fn build(&self) -> Index {
        let mut index = Index::default();
        for svc in self.services.state() {
            let (Some(ns), Some(name)) = (
                svc.metadata.namespace.as_deref(),
                svc.metadata.name.as_deref(),
            ) else {
                continue;
            };
            let entity = EntityId::service(ns, name);
            let Some(spec) = &svc.spec else { continue };
            let ips = spec.cluster_ips.clone().unwrap_or_default();
            let ports: Vec<u16> = spec
                .ports
                .iter()
                .flatten()
                .filter_map(|p| u16::try_from(p.port).ok())
                .collect();
            for addr in ips.iter().filter_map(|s| ip(s)) {
                index.services.insert((addr, 0), entity.clone());
                for &port in &ports {
                    index.services.insert((addr, port), entity.clone());
                }
            }
        }
        for pod in self.pods.state() {
            let Some(uid) = pod.metadata.uid.as_deref() else {
                continue;
            };
            if pod
                .spec
                .as_ref()
                .and_then(|s| s.host_network)
                .unwrap_or(false)
            {
                continue;
            }
            for addr in pod
                .status
                .iter()
                .flat_map(|s| s.pod_ips.iter().flatten())
                .filter_map(|p| ip(&p.ip))
            {
                index.pods.insert(addr, EntityId::pod(uid));
            }
        }
        for slice in self.slices.state() {
            let ns = slice.metadata.namespace.as_deref().unwrap_or("default");
            let Some(service) = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
            else {
                continue;
            };
            let entity = EntityId::service(ns, service);
            let ports: Vec<u16> = slice
                .ports
                .iter()
                .flatten()
                .filter_map(|p| p.port.and_then(|p| u16::try_from(p).ok()))
                .collect();
            for addr in slice
                .endpoints
                .iter()
                .flat_map(|e| e.addresses.iter())
                .filter_map(|a| ip(a))
            {
                index.slice_endpoints.insert((addr, 0), entity.clone());
                for &port in &ports {
                    index.slice_endpoints.insert((addr, port), entity.clone());
                }
            }
        }
        index
    }

    fn index(&self) -> Arc<Index> {
        let mut guard = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = guard.0.is_some_and(|built| built.elapsed() < INDEX_TTL);
        if !fresh {
            *guard = (Some(Instant::now()), Arc::new(self.build()));
        }
        guard.1.clone()
    }
}

impl Drop for KubeEndpoints {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl EndpointResolver for KubeEndpoints {
    fn resolve(&self, e: &Endpoint) -> Option<ResolvedEndpoint> {
        let index = self.index();
        if let Some(svc) = index.services.get(&(e.ip, e.port)) {
            return Some(ResolvedEndpoint {
                entity: svc.clone(),
                kind: EntityKind::Service,
            });
        }
        if let Some(pod) = index.pods.get(&e.ip) {
            return Some(ResolvedEndpoint {
                entity: pod.clone(),
                kind: EntityKind::Pod,
            });
        }
        index
            .slice_endpoints
            .get(&(e.ip, e.port))
            .map(|svc| ResolvedEndpoint {
                entity: svc.clone(),
                kind: EntityKind::Service,
            })
    }
}
