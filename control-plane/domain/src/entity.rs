//! Typed identities: what the service graph, detection and incidents name.
//!
//! An `EntityId` is a node of the service graph: a workload (its key as the agent attributed
//! it, e.g. `cgroup/vigil-lab/redis` or `k8s-pod/<uid>`), a Kubernetes Service, or an external
//! address. A `Subject` is what detection judges: a workload, or an edge between two entities.
//! Both serialise as the strings the API has always shown (`client->server` for an edge);
//! parsing those strings back happens only where they come in from outside (stored baselines).

use std::{borrow::Borrow, fmt};

use node_agent_common::entity::{POD_PREFIX, SERVICE_PREFIX, UNATTRIBUTED};
use serde::{Deserialize, Serialize};

/// A node of the service graph.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EntityId(String);

impl EntityId {
    /// An id as given: a workload key from an agent, or one read back from the store.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// A Kubernetes Service.
    pub fn service(namespace: &str, name: &str) -> Self {
        Self(format!("{SERVICE_PREFIX}{namespace}/{name}"))
    }

    /// A Kubernetes Pod: the same id the agents give the pod's workload.
    pub fn pod(uid: &str) -> Self {
        Self(format!("{POD_PREFIX}{uid}"))
    }

    /// The pod's uid, if this is a Kubernetes pod's workload.
    pub fn pod_uid(&self) -> Option<&str> {
        self.0.strip_prefix(POD_PREFIX)
    }

    /// An address Vigil knows no workload or Service behind (`ip:port` or `ip`).
    pub fn external(address: impl fmt::Display) -> Self {
        Self(address.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last path segment (`redis` of `cgroup/vigil-lab/redis`): how people name it.
    pub fn last_segment(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The agent's bucket for processes it could not attribute (`…/unknown`): a mix of
    /// unrelated short-lived tools, nothing one can act on.
    pub fn is_unattributed(&self) -> bool {
        self.0
            .strip_suffix(UNATTRIBUTED)
            .is_some_and(|rest| rest.ends_with('/'))
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl Borrow<str> for EntityId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for EntityId {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for EntityId {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl PartialEq<str> for EntityId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for EntityId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// What an entity of the service graph is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// A workload an agent attributed (pod, container, systemd unit, cgroup, host process).
    Workload,
    /// A Kubernetes Service.
    Service,
    /// A Kubernetes Pod seen only by its address.
    Pod,
    /// An address Vigil knows nothing behind.
    External,
}

impl EntityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Workload => "workload",
            Self::Service => "service",
            Self::Pod => "pod",
            Self::External => "external",
        }
    }
}

/// A call edge of the service graph, caller → callee.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeId {
    pub client: EntityId,
    pub server: EntityId,
}

/// How an edge is written where a string is needed (API, baselines' keys).
const EDGE_SEPARATOR: &str = "->";

impl EdgeId {
    pub fn new(client: EntityId, server: EntityId) -> Self {
        Self { client, server }
    }
}

impl fmt::Display for EdgeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{EDGE_SEPARATOR}{}", self.client, self.server)
    }
}

/// What detection judges: a workload, or an edge between two entities.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    Workload(EntityId),
    Edge(EdgeId),
}

/// The two kinds of subject, each with its own features and forest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectClass {
    Workload,
    Edge,
}

impl SubjectClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Workload => "workload",
            Self::Edge => "edge",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "workload" => Some(Self::Workload),
            "edge" => Some(Self::Edge),
            _ => None,
        }
    }
}

impl Subject {
    pub fn edge(client: EntityId, server: EntityId) -> Self {
        Self::Edge(EdgeId::new(client, server))
    }

    pub fn class(&self) -> SubjectClass {
        match self {
            Self::Workload(_) => SubjectClass::Workload,
            Self::Edge(_) => SubjectClass::Edge,
        }
    }

    /// The graph nodes it touches: the workload itself, or both ends of the edge.
    pub fn entities(&self) -> Vec<&EntityId> {
        match self {
            Self::Workload(e) => vec![e],
            Self::Edge(e) => vec![&e.client, &e.server],
        }
    }

    /// Whether it names something one can act on (no end is the unattributed bucket).
    pub fn attributable(&self) -> bool {
        self.entities().iter().all(|e| !e.is_unattributed())
    }

    /// Reads a subject written by `Display` when its class is not stored beside it.
    pub fn from_key(key: &str) -> Self {
        let class = if key.contains(EDGE_SEPARATOR) {
            SubjectClass::Edge
        } else {
            SubjectClass::Workload
        };
        Self::parse(class, key).unwrap_or_else(|| Self::Workload(EntityId::new(key)))
    }

    /// Reads a subject written by `Display` (a stored baseline's key) for its class.
    pub fn parse(class: SubjectClass, key: &str) -> Option<Self> {
        match class {
            SubjectClass::Workload => Some(Self::Workload(EntityId::new(key))),
            SubjectClass::Edge => key
                .split_once(EDGE_SEPARATOR)
                .map(|(a, b)| Self::edge(EntityId::new(a), EntityId::new(b))),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Workload(e) => e.fmt(f),
            Self::Edge(e) => e.fmt(f),
        }
    }
}

impl Serialize for Subject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Read back from a stored incident's evidence: the key says which class it is.
impl<'de> Deserialize<'de> for Subject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let key = String::deserialize(d)?;
        Ok(Self::from_key(&key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_written_as_the_agents_write_them() {
        assert_eq!(EntityId::pod("5c5a").as_str(), "k8s-pod/5c5a");
        assert_eq!(
            EntityId::service("shop", "cart").as_str(),
            "k8s-svc/shop/cart"
        );
        assert_eq!(EntityId::new("cgroup/lab/redis").last_segment(), "redis");
    }

    #[test]
    fn edges_round_trip_through_their_key() {
        let e = Subject::edge("cgroup/app".into(), "10.0.0.1:6379".into());
        assert_eq!(e.to_string(), "cgroup/app->10.0.0.1:6379");
        assert_eq!(Subject::parse(SubjectClass::Edge, &e.to_string()), Some(e));
        assert_eq!(Subject::parse(SubjectClass::Edge, "no-arrow"), None);
    }

    #[test]
    fn the_unattributed_bucket_is_not_attributable() {
        assert!(!Subject::Workload("host/unknown".into()).attributable());
        assert!(!Subject::edge("cgroup/a".into(), "cgroup/unknown".into()).attributable());
        assert!(Subject::Workload("cgroup/unknownish".into()).attributable());
    }
}
