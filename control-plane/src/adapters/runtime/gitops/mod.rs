//! The GitOps runtime: a change to a cluster workload made as a commit on a branch of the
//! repository Argo CD or Flux syncs from, for a person to merge (the branch is the pull
//! request's head). A memory or CPU limit raise edits the one line of the workload's manifest
//! that sets it; a rollback reverts the last commit that changed the manifest. The workload is
//! found from the incident's pod through the cluster (its Deployment or StatefulSet), its
//! manifest by kind, name and namespace in the repository.
//!
//! Undo: while the branch is unmerged and still ends at Vigil's commit, it is deleted; once
//! merged, a new branch reverts the commit; a branch someone has committed on since is theirs
//! and left alone.

mod git;
pub mod manifest;

use std::{path::PathBuf, sync::Arc};

use serde::{Deserialize, Serialize};
use serde_json::json;

use self::git::{Clone, GitError};
use super::kube::{quantity, target::Workload, KubeRuntime};
use crate::domain::{
    entity::EntityId,
    remediate::{
        ports::{Runtime, RuntimeError},
        ActionClass, Applied, Step,
    },
};

/// Where the commits go.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitOpsConfig {
    /// A path or URL `git` can clone from and push to (credentials as git finds them: an SSH
    /// agent, a credential helper; never in this file).
    pub repo: String,
    /// The branch the cluster syncs from.
    #[serde(default = "main")]
    pub base: String,
    /// Where the manifests are, relative to the repository's root.
    #[serde(default)]
    pub path: PathBuf,
    /// Each action's branch is `<prefix><class>-<namespace>-<name>-<unix seconds>`.
    #[serde(default = "prefix")]
    pub branch_prefix: String,
    #[serde(default = "author_name")]
    pub author_name: String,
    #[serde(default = "author_email")]
    pub author_email: String,
}

fn main() -> String {
    "main".into()
}
fn prefix() -> String {
    "vigil/".into()
}
fn author_name() -> String {
    "Vigil".into()
}
fn author_email() -> String {
    "vigil@localhost".into()
}

/// What an undo needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Inverse {
    class: ActionClass,
    branch: String,
    commit: String,
}

pub struct GitOpsRuntime {
    config: GitOpsConfig,
    /// Finds the workload behind a pod.
    cluster: Arc<KubeRuntime>,
}

impl GitOpsRuntime {
    pub fn new(config: GitOpsConfig, cluster: Arc<KubeRuntime>) -> Self {
        Self { config, cluster }
    }

    fn clone_base(&self) -> Result<Clone, GitError> {
        Clone::of(
            &self.config.repo,
            &self.config.base,
            (&self.config.author_name, &self.config.author_email),
        )
    }
}

fn failed(class: ActionClass, target: &EntityId, why: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Failed {
        action: class.as_str(),
        target: target.clone(),
        why: why.to_string(),
    }
}

/// The change one action makes in the clone: the commit message's subject and what it did.
fn change(
    repo: &Clone,
    file: &std::path::Path,
    w: &Workload,
    container: &str,
    step: &Step,
) -> Result<(String, String), String> {
    let class = step.action;
    match class {
        ActionClass::RaiseMemoryLimit | ActionClass::ChangeCpuQuota | ActionClass::PatchLimits => {
            let resource = if class == ActionClass::ChangeCpuQuota {
                "cpu"
            } else {
                "memory"
            };
            // Checked at load: a factor within the playbook's safe range.
            let factor = step.number("factor").unwrap_or(1.5);
            let path = repo.file(file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("reading {}: {e}", file.display()))?;
            let (edited, old, new) = manifest::set_limit(&text, container, resource, |old| {
                let v = quantity::parse(old)? * factor;
                Some(if resource == "cpu" {
                    quantity::cpu(v)
                } else {
                    quantity::memory(v)
                })
            })?;
            std::fs::write(&path, edited)
                .map_err(|e| format!("writing {}: {e}", file.display()))?;
            Ok((
                format!("Raise {w} container {container} {resource} limit {old} -> {new}"),
                format!(
                    "{resource} limit of {container} {old} -> {new} in {}",
                    file.display()
                ),
            ))
        }
        ActionClass::Rollback => {
            let rel = file.to_string_lossy();
            let history = repo
                .git(&["log", "--format=%H", "--", &rel])
                .map_err(|e| e.to_string())?;
            let commits: Vec<&str> = history.lines().collect();
            let [last, _earlier, ..] = commits.as_slice() else {
                return Err(format!(
                    "{rel} has one revision in the repository: nothing before it to return to"
                ));
            };
            let subject = repo
                .git(&["log", "-n", "1", "--format=%s", last])
                .map_err(|e| e.to_string())?;
            repo.revert(last).map_err(|e| e.to_string())?;
            Ok((
                format!("Roll {w} back: revert \"{subject}\""),
                format!(
                    "reverted {} (\"{subject}\") in {rel}",
                    &last[..last.len().min(12)]
                ),
            ))
        }
        other => Err(format!("{} is not a change to a manifest", other.as_str())),
    }
}

impl Runtime for GitOpsRuntime {
    fn name(&self) -> &'static str {
        "gitops"
    }

    fn supports(&self, class: ActionClass) -> bool {
        matches!(
            class,
            ActionClass::RaiseMemoryLimit
                | ActionClass::ChangeCpuQuota
                | ActionClass::PatchLimits
                | ActionClass::Rollback
        )
    }

    fn apply(&self, target: &EntityId, step: &Step) -> Result<Applied, RuntimeError> {
        let class = step.action;
        if !self.supports(class) {
            return Err(RuntimeError::Unsupported {
                runtime: "gitops",
                action: class.as_str(),
                why: "it commits limit changes and rollbacks to manifests".into(),
            });
        }
        let (w, container) = self.cluster.workload_of(class, target)?;
        let repo = self.clone_base().map_err(|e| failed(class, target, e))?;
        let file = manifest::find(repo.path(), &self.config.path, &w)
            .map_err(|e| failed(class, target, e))?;
        let stamp = jiff::Timestamp::now().as_second();
        let branch = format!(
            "{}{}-{}-{}-{stamp}",
            self.config.branch_prefix,
            class.as_str().replace('_', "-"),
            w.namespace,
            w.name
        );
        repo.git(&["checkout", "--quiet", "-b", &branch])
            .map_err(|e| failed(class, target, e))?;
        let (subject, did) =
            change(&repo, &file, &w, &container, step).map_err(|e| failed(class, target, e))?;
        let commit = if class == ActionClass::Rollback {
            // The revert made its own commit; say in it why Vigil made it.
            repo.git(&["rev-parse", "HEAD"])
        } else {
            repo.commit(&format!(
                "{subject}\n\nProposed by Vigil's remediation for {target}: {did}.\n"
            ))
        }
        .map_err(|e| failed(class, target, e))?;
        repo.git(&["push", "--quiet", "origin", &branch])
            .map_err(|e| failed(class, target, e))?;
        Ok(Applied {
            detail: format!(
                "committed {} on branch {branch} of {}: {did}; it takes effect once merged into {} and synced",
                &commit[..commit.len().min(12)],
                self.config.repo,
                self.config.base
            ),
            inverse: json!(Inverse {
                class,
                branch,
                commit
            }),
        })
    }

    fn undo(&self, target: &EntityId, applied: &Applied) -> Result<(), RuntimeError> {
        let inv: Inverse = serde_json::from_value(applied.inverse.clone()).map_err(|e| {
            failed(
                ActionClass::Rollback,
                target,
                format!("the recorded inverse is not one this runtime wrote: {e}"),
            )
        })?;
        let class = inv.class;
        let fail = |e: GitError| failed(class, target, e);
        let repo = self.clone_base().map_err(fail)?;
        let remote = repo
            .git(&["ls-remote", "origin", &format!("refs/heads/{}", inv.branch)])
            .map_err(fail)?;
        let head = remote.split_whitespace().next().unwrap_or_default();
        let merged = repo
            .git(&["merge-base", "--is-ancestor", &inv.commit, "HEAD"])
            .is_ok();
        if merged {
            let branch = format!("{}-undo", inv.branch);
            repo.git(&["checkout", "--quiet", "-b", &branch])
                .map_err(fail)?;
            repo.revert(&inv.commit).map_err(fail)?;
            repo.git(&["push", "--quiet", "origin", &branch])
                .map_err(fail)?;
            return Ok(());
        }
        match head {
            // Deleted unmerged: nothing of it reached the cluster.
            "" => Ok(()),
            h if h == inv.commit => repo
                .git(&["push", "--quiet", "origin", "--delete", &inv.branch])
                .map(|_| ())
                .map_err(fail),
            _ => Err(failed(
                class,
                target,
                format!(
                    "branch {} has commits since Vigil's: someone is working on it; left as it is",
                    inv.branch
                ),
            )),
        }
    }
}
