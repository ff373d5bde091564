//! Workload identity from a cgroup path.
//!
//! Kubernetes kubelets lay cgroups out in two ways depending on the cgroup driver:
//! - systemd: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/
//!   cri-containerd-<id>.scope` (pod uid with `_` for `-`; `crio-<id>.scope` for cri-o,
//!   `docker-<id>.scope` for dockershim);
//! - cgroupfs: `/kubepods/burstable/pod<uid>/<id>` (`/kubepods/pod<uid>/<id>` for Guaranteed).
//!
//! Outside Kubernetes: `/system.slice/docker-<id>.scope`, `/docker/<id>`, systemd units
//! (`/system.slice/nginx.service`), or any other path.
//!
//! The key prefixes are shared with the control plane (`node_agent_common::entity`), which
//! names pods it resolves through the Kubernetes API with the same keys.

use node_agent_common::entity::{
    CGROUP_PREFIX, CONTAINER_PREFIX, HOST_PREFIX, POD_PREFIX, SYSTEMD_PREFIX,
};

/// What kind of thing owns a cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    /// The root cgroup: processes not in any workload. Grouped by command name.
    Host,
    KubernetesContainer,
    Container,
    SystemdUnit,
    Cgroup,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub kind: WorkloadKind,
    /// Stable identity used for grouping (restarts of a Kubernetes container keep the pod).
    pub key: String,
    pub pod_uid: Option<String>,
    pub container_id: Option<String>,
    pub container_runtime: Option<&'static str>,
    pub systemd_unit: Option<String>,
    pub cgroup_path: String,
}

impl Workload {
    fn new(kind: WorkloadKind, key: String, cgroup_path: &str) -> Self {
        Self {
            kind,
            key,
            pod_uid: None,
            container_id: None,
            container_runtime: None,
            systemd_unit: None,
            cgroup_path: cgroup_path.to_string(),
        }
    }
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `pod<uid>` or `kubepods[-qos]-pod<uid_with_underscores>.slice` → the pod uid.
fn pod_uid(segment: &str) -> Option<String> {
    let raw = if let Some(slice) = segment.strip_suffix(".slice") {
        slice.rsplit_once("-pod").map(|(_, uid)| uid)?
    } else {
        segment.strip_prefix("pod")?
    };
    let uid = raw.replace('_', "-");
    let valid = uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    valid.then_some(uid)
}

/// A container scope or directory → (runtime, id).
fn container_id(segment: &str) -> Option<(&'static str, String)> {
    const SCOPES: &[(&str, &str)] = &[
        ("cri-containerd-", "containerd"),
        ("crio-", "cri-o"),
        ("docker-", "docker"),
    ];
    if let Some(scope) = segment.strip_suffix(".scope") {
        for (prefix, runtime) in SCOPES {
            if let Some(id) = scope.strip_prefix(prefix) {
                // `crio-conmon-<id>.scope` is the monitor, not the container.
                if is_container_id(id) {
                    return Some((runtime, id.to_string()));
                }
            }
        }
        return None;
    }
    is_container_id(segment).then(|| ("", segment.to_string()))
}

/// Derives the workload owning `path`. `comm` names host (root-cgroup) processes.
pub fn workload_from_cgroup_path(path: &str, comm: &str) -> Workload {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments.is_empty() {
        return Workload::new(WorkloadKind::Host, format!("{HOST_PREFIX}{comm}"), path);
    }
    let in_kubepods = segments.iter().any(|s| s.starts_with("kubepods"));
    let pod = if in_kubepods {
        segments.iter().find_map(|s| pod_uid(s))
    } else {
        None
    };
    let container = segments.iter().rev().find_map(|s| container_id(s));

    if let Some(uid) = pod {
        let mut w = Workload::new(
            WorkloadKind::KubernetesContainer,
            format!("{POD_PREFIX}{uid}"),
            path,
        );
        if let Some((runtime, id)) = container {
            w.container_runtime = (!runtime.is_empty()).then_some(runtime);
            w.container_id = Some(id);
        }
        w.pod_uid = Some(uid);
        return w;
    }
    if let Some((runtime, id)) = container {
        let mut w = Workload::new(
            WorkloadKind::Container,
            format!("{CONTAINER_PREFIX}{id}"),
            path,
        );
        w.container_runtime = Some(if runtime.is_empty() {
            "docker"
        } else {
            runtime
        });
        w.container_id = Some(id);
        return w;
    }
    // The innermost systemd unit: `.service` names a unit; `.scope` a transient one.
    if let Some(unit) = segments
        .iter()
        .rev()
        .find(|s| s.ends_with(".service") || s.ends_with(".scope"))
    {
        let mut w = Workload::new(
            WorkloadKind::SystemdUnit,
            format!("{SYSTEMD_PREFIX}{unit}"),
            path,
        );
        w.systemd_unit = Some((*unit).to_string());
        return w;
    }
    let normalized = format!("/{}", segments.join("/"));
    Workload::new(
        WorkloadKind::Cgroup,
        format!("{}{}", CGROUP_PREFIX.trim_end_matches('/'), normalized),
        path,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f6a0c4b1e1a5d5c3b2a19080706050403020100ffeeddccbbaa998877665544";

    #[test]
    fn kubepods_systemd_driver_containerd() {
        let p = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5c5a9b2e_1f3d_4c7e_9a0b_0123456789ab.slice/cri-containerd-{ID}.scope"
        );
        let w = workload_from_cgroup_path(&p, "app");
        assert_eq!(w.kind, WorkloadKind::KubernetesContainer);
        assert_eq!(
            w.pod_uid.as_deref(),
            Some("5c5a9b2e-1f3d-4c7e-9a0b-0123456789ab")
        );
        assert_eq!(w.container_id.as_deref(), Some(ID));
        assert_eq!(w.container_runtime, Some("containerd"));
        assert_eq!(w.key, "k8s-pod/5c5a9b2e-1f3d-4c7e-9a0b-0123456789ab");
    }

    #[test]
    fn kubepods_guaranteed_systemd_crio_and_conmon() {
        let p = format!("/kubepods.slice/kubepods-pod5c5a9b2e_1f3d_4c7e_9a0b_0123456789ab.slice/crio-{ID}.scope");
        let w = workload_from_cgroup_path(&p, "app");
        assert_eq!(w.container_runtime, Some("cri-o"));
        assert_eq!(w.container_id.as_deref(), Some(ID));
        let conmon = format!("/kubepods.slice/kubepods-pod5c5a9b2e_1f3d_4c7e_9a0b_0123456789ab.slice/crio-conmon-{ID}.scope");
        let w = workload_from_cgroup_path(&conmon, "conmon");
        assert_eq!(w.kind, WorkloadKind::KubernetesContainer);
        assert_eq!(w.container_id, None, "conmon is not the container");
    }

    #[test]
    fn kubepods_cgroupfs_driver() {
        let p = format!("/kubepods/besteffort/pod5c5a9b2e-1f3d-4c7e-9a0b-0123456789ab/{ID}");
        let w = workload_from_cgroup_path(&p, "app");
        assert_eq!(w.kind, WorkloadKind::KubernetesContainer);
        assert_eq!(
            w.pod_uid.as_deref(),
            Some("5c5a9b2e-1f3d-4c7e-9a0b-0123456789ab")
        );
        assert_eq!(w.container_id.as_deref(), Some(ID));
        // Pod-level cgroup (the sandbox) maps to the same workload key.
        let pod = "/kubepods/pod5c5a9b2e-1f3d-4c7e-9a0b-0123456789ab";
        assert_eq!(workload_from_cgroup_path(pod, "pause").key, w.key);
    }

    #[test]
    fn docker_outside_kubernetes() {
        let w = workload_from_cgroup_path(&format!("/system.slice/docker-{ID}.scope"), "redis");
        assert_eq!(
            (w.kind, w.container_runtime),
            (WorkloadKind::Container, Some("docker"))
        );
        let w = workload_from_cgroup_path(&format!("/docker/{ID}"), "redis");
        assert_eq!(w.key, format!("container/{ID}"));
    }

    #[test]
    fn systemd_units_and_sessions() {
        let w = workload_from_cgroup_path("/system.slice/nginx.service", "nginx");
        assert_eq!(
            (w.kind, w.key.as_str()),
            (WorkloadKind::SystemdUnit, "systemd/nginx.service")
        );
        let w = workload_from_cgroup_path("/user.slice/user-1000.slice/session-3.scope", "bash");
        assert_eq!(w.systemd_unit.as_deref(), Some("session-3.scope"));
    }

    #[test]
    fn plain_cgroup_and_host() {
        let w = workload_from_cgroup_path("/vigil-test/oom-1", "hog");
        assert_eq!(
            (w.kind, w.key.as_str()),
            (WorkloadKind::Cgroup, "cgroup/vigil-test/oom-1")
        );
        let w = workload_from_cgroup_path("/", "sshd");
        assert_eq!((w.kind, w.key.as_str()), (WorkloadKind::Host, "host/sshd"));
    }

    #[test]
    fn lookalikes_are_not_pods_or_containers() {
        // "pod" prefix outside kubepods, short hex, and a slice without a uid.
        let w = workload_from_cgroup_path("/podman/podcast", "x");
        assert_eq!(w.kind, WorkloadKind::Cgroup);
        let w = workload_from_cgroup_path("/kubepods.slice/kubepods-burstable.slice", "x");
        assert_eq!(w.kind, WorkloadKind::Cgroup);
        let w = workload_from_cgroup_path("/docker/abc123", "x");
        assert_eq!(w.kind, WorkloadKind::Cgroup);
    }
}
