//! How workloads and cluster objects are named: the prefixes of entity ids. The agent writes
//! workload keys with them and the control plane builds the same ids for what it resolves
//! through the Kubernetes API (a Pod IP resolves to the pod's workload key), so both sides
//! read them from here rather than each spelling them.

/// A process in the root cgroup: `host/<comm>`.
pub const HOST_PREFIX: &str = "host/";
/// A Kubernetes pod's containers: `k8s-pod/<pod uid>`.
pub const POD_PREFIX: &str = "k8s-pod/";
/// A Kubernetes Service: `k8s-svc/<namespace>/<name>`.
pub const SERVICE_PREFIX: &str = "k8s-svc/";
/// A container outside Kubernetes: `container/<id>`.
pub const CONTAINER_PREFIX: &str = "container/";
/// A systemd unit: `systemd/<unit>`.
pub const SYSTEMD_PREFIX: &str = "systemd/";
/// Any other cgroup: `cgroup/<path>`.
pub const CGROUP_PREFIX: &str = "cgroup/";
/// The last segment of the agent's bucket for processes it could not attribute.
pub const UNATTRIBUTED: &str = "unknown";
