//! Kubernetes adapters (kube-rs): endpoint resolution from watches, pods' logs and their
//! Deployments' revisions for diagnosis, the `IncidentReport` custom resource, its status
//! (the incident, the diagnosis and what it cited, every step of its remediation) and its
//! mirror of Vigil's incidents, the controller for reports others create, and Lease-based
//! leader election between control-plane replicas, and a Lease per remediation target so
//! that only one of them acts on it.

pub mod book;
pub mod endpoints;
pub mod fleet;
pub mod leader;
pub mod mirror;
pub mod reconcile;
pub mod report;
pub mod status;
pub mod target_lock;
pub mod workloads;

pub use endpoints::KubeEndpoints;
pub use workloads::KubeWorkloads;
