//! `[remediation]`: the playbooks, the guardrails' limits, the phase of each action class
//! (all observed only unless promoted here), how long approvals are taken and when an action
//! is verified, and where actions run.

use std::{collections::BTreeMap, path::PathBuf};

use serde::Deserialize;

use crate::domain::{
    incident::Severity,
    remediate::{ActionClass, Phase, Policy, Scope},
};
use vigil_config_file::ConfigError;

pub use crate::adapters::runtime::gitops::GitOpsConfig;

/// Where actions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeKind {
    /// Nothing runs: every decision is logged only.
    None,
    /// This host's cgroup-v1 limits (memory, CPU quota) of `cgroup/…` workloads.
    Local,
    /// The cluster's workloads behind `k8s-pod/…` incidents (needs kubernetes.enabled).
    Kubernetes,
    /// Commits on a branch of the GitOps repository the cluster syncs from
    /// (`[remediation.gitops]`; needs kubernetes.enabled to find a pod's workload).
    #[serde(rename = "gitops")]
    GitOps,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemediationConfig {
    /// A directory of playbook YAML files instead of the shipped ones.
    pub playbooks: Option<PathBuf>,
    pub runtime: RuntimeKind,
    pub approval_ttl_secs: u64,
    pub verify_after_secs: u64,
    pub max_replica_fraction: f64,
    pub max_fleet_fraction: f64,
    pub max_actions_per_window: u32,
    pub window_secs: u64,
    pub cooldown_secs: u64,
    pub min_confidence: f64,
    pub min_severity: Severity,
    pub scope: Scope,
    /// Action class → phase; a class not named is observed only.
    pub phases: BTreeMap<ActionClass, Phase>,
    /// The repository the `gitops` runtime commits to.
    pub gitops: Option<GitOpsConfig>,
    /// What the `local` runtime asks the host's supervisor to do.
    pub local: LocalConfig,
}

/// `[remediation.local]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalConfig {
    /// The Unix socket of the process supervisor that runs the host's workloads and speaks
    /// the local supervisor protocol (restarts, rollbacks, files, credentials, logs, pools,
    /// DNS). Without one the local runtime changes cgroup limits only.
    pub supervisor: Option<PathBuf>,
}

impl Default for RemediationConfig {
    fn default() -> Self {
        let p = Policy::default();
        Self {
            playbooks: None,
            runtime: RuntimeKind::None,
            approval_ttl_secs: 900,
            verify_after_secs: 60,
            max_replica_fraction: p.max_replica_fraction,
            max_fleet_fraction: p.max_fleet_fraction,
            max_actions_per_window: p.max_actions_per_window,
            window_secs: u64::try_from(p.window_ns / 1_000_000_000).unwrap_or(3_600),
            cooldown_secs: u64::try_from(p.cooldown_ns / 1_000_000_000).unwrap_or(600),
            min_confidence: p.min_confidence,
            min_severity: p.min_severity,
            scope: Scope::default(),
            phases: BTreeMap::new(),
            gitops: None,
            local: LocalConfig::default(),
        }
    }
}

fn ns(secs: u64) -> i64 {
    i64::try_from(secs)
        .unwrap_or(i64::MAX / 1_000_000_000)
        .saturating_mul(1_000_000_000)
}

impl RemediationConfig {
    pub fn policy(&self) -> Policy {
        Policy {
            max_replica_fraction: self.max_replica_fraction,
            max_fleet_fraction: self.max_fleet_fraction,
            max_actions_per_window: self.max_actions_per_window,
            window_ns: ns(self.window_secs),
            cooldown_ns: ns(self.cooldown_secs),
            scope: self.scope.clone(),
            min_confidence: self.min_confidence,
            min_severity: self.min_severity,
            phases: self.phases.clone(),
        }
    }

    pub fn approval_ttl_ns(&self) -> i64 {
        ns(self.approval_ttl_secs)
    }

    pub fn verify_after_ns(&self) -> i64 {
        ns(self.verify_after_secs)
    }

    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| Err(ConfigError::invalid(origin, field, reason));
        for (field, v) in [
            (
                "remediation.max_replica_fraction",
                self.max_replica_fraction,
            ),
            ("remediation.max_fleet_fraction", self.max_fleet_fraction),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return invalid(field, "must be in (0, 1]");
            }
        }
        if !(0.0..=1.0).contains(&self.min_confidence) {
            return invalid("remediation.min_confidence", "must be in [0, 1]");
        }
        for (field, v) in [
            ("remediation.approval_ttl_secs", self.approval_ttl_secs),
            ("remediation.verify_after_secs", self.verify_after_secs),
            ("remediation.window_secs", self.window_secs),
        ] {
            if v == 0 {
                return invalid(field, "must be positive");
            }
        }
        if self.local.supervisor.is_some() && self.runtime != RuntimeKind::Local {
            return invalid(
                "remediation.local.supervisor",
                "is used by the local runtime only: set remediation.runtime = \"local\" or remove it",
            );
        }
        if let Some(s) = &self.local.supervisor {
            if !s.is_absolute() {
                return invalid(
                    "remediation.local.supervisor",
                    "must be an absolute path to the supervisor's socket",
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::ControlPlaneConfig;
    use vigil_config_file::error_chain;

    #[test]
    fn a_supervisor_socket_belongs_to_the_local_runtime_and_is_absolute() {
        let parse =
            |r: &str| ControlPlaneConfig::from_toml(&format!("[remediation]\n{r}"), "cp.toml");
        let c = parse("runtime = \"local\"\nlocal = { supervisor = \"/run/sup.sock\" }")
            .expect("local with a supervisor");
        assert_eq!(
            c.remediation.local.supervisor.as_deref(),
            Some(std::path::Path::new("/run/sup.sock"))
        );
        let e = parse("runtime = \"none\"\nlocal = { supervisor = \"/run/sup.sock\" }")
            .expect_err("not the local runtime");
        assert!(
            error_chain(&e).contains("remediation.local.supervisor"),
            "{e}"
        );
        let e = parse("runtime = \"local\"\nlocal = { supervisor = \"sup.sock\" }")
            .expect_err("relative");
        assert!(
            error_chain(&e).contains("absolute path"),
            "{}",
            error_chain(&e)
        );
        let e = parse("runtime = \"local\"\nlocal = { socket = \"/x\" }").expect_err("unknown key");
        assert!(error_chain(&e).contains("socket"), "{}", error_chain(&e));
    }
}
