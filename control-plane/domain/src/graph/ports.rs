//! What the service graph needs from the outside: who is behind an address in the cluster.

use crate::{
    entity::{EntityId, EntityKind},
    interval::Endpoint,
};

/// Who is behind an address in the cluster: implemented against the Kubernetes API (Pods,
/// Services, EndpointSlices) where there is one.
pub trait EndpointResolver: Send + Sync {
    /// The Service or Pod serving `endpoint` (port 0: any port of that address).
    fn resolve(&self, endpoint: &Endpoint) -> Option<ResolvedEndpoint>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedEndpoint {
    /// Graph entity id, e.g. `EntityId::service("default", "redis")` or `EntityId::pod(uid)`.
    pub entity: EntityId,
    /// `Service` or `Pod`.
    pub kind: EntityKind,
}

/// No cluster: endpoints resolve through the listeners the agents report.
pub struct NoCluster;

impl EndpointResolver for NoCluster {
    fn resolve(&self, _: &Endpoint) -> Option<ResolvedEndpoint> {
        None
    }
}
