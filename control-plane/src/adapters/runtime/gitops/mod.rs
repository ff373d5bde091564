//! The GitOps runtime: a change to a cluster workload made as a commit on a branch of the
//! repository Argo CD or Flux syncs from, for a person to merge (the branch is the pull
//! request's head). A memory or CPU limit raise edits the one line of the workload's manifest
//! that sets it; a rollback writes the manifest back as it was before its last change. The workload is
//! found from the incident's pod through the cluster (its Deployment or StatefulSet), its
//! manifest by kind, name and namespace in the repository.
//!
//! Undo, judged by the base branch's content: once merged (by a merge, a squash or a rebase),
//! a new branch writes the manifest back; unmerged, the branch is deleted while it still ends
//! at Vigil's commit; a manifest or branch someone has changed since is theirs, left alone.

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
    /// Each action's branch is `<prefix><class>-<namespace>-<name>-<unix milliseconds>`.
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

/// What an undo needs: the branch and commit, and the manifest as it was before and after,
/// so the undo knows from the base branch's content whether the change was merged (by a
/// merge, a squash or a rebase alike).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Inverse {
    class: ActionClass,
    branch: String,
    commit: String,
    file: PathBuf,
    before: String,
    after: String,
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

/// The manifest's new content for one action, given its content `before`: the commit
/// message's subject and what it did.
fn change(
    repo: &Clone,
    found: &manifest::Found,
    before: &str,
    w: &Workload,
    container: &str,
    step: &Step,
) -> Result<(String, String, String), String> {
    let class = step.action;
    let rel = found.file.to_string_lossy().to_string();
    match class {
        ActionClass::RaiseMemoryLimit | ActionClass::ChangeCpuQuota | ActionClass::PatchLimits => {
            let resource = if class == ActionClass::ChangeCpuQuota {
                "cpu"
            } else {
                "memory"
            };
            // Checked at load: a factor within the playbook's safe range.
            let factor = step.number("factor").unwrap_or(1.5);
            let doc = before
                .get(found.document.clone())
                .ok_or_else(|| format!("{rel} changed while it was read"))?;
            let (edited, old, new) = manifest::set_limit(doc, container, resource, |old| {
                let v = quantity::parse(old)? * factor;
                Some(if resource == "cpu" {
                    quantity::cpu(v)
                } else {
                    quantity::memory(v)
                })
            })?;
            let after = format!(
                "{}{edited}{}",
                &before[..found.document.start],
                &before[found.document.end..]
            );
            Ok((
                after,
                format!("Raise {w} container {container} {resource} limit {old} -> {new}"),
                format!("{resource} limit of {container} {old} -> {new} in {rel}"),
            ))
        }
        ActionClass::Rollback => {
            // The file as it was before its last change; other files that change touched
            // stay as they are.
            let history = repo
                .git(&["log", "-n", "2", "--format=%H", "--", &rel])
                .map_err(|e| e.to_string())?;
            let commits: Vec<&str> = history.lines().collect();
            let [last, _earlier] = commits.as_slice() else {
                return Err(format!(
                    "{rel} has one revision in the repository: nothing before it to return to"
                ));
            };
            let subject = repo
                .git(&["log", "-n", "1", "--format=%s", last])
                .map_err(|e| e.to_string())?;
            let previous = repo
                .git_raw(&["show", &format!("{last}^:{rel}")])
                .map_err(|e| e.to_string())?;
            let short = last.get(..12).unwrap_or(last);
            Ok((
                previous,
                format!("Roll {w} back: undo \"{subject}\" ({short})"),
                format!("{rel} as it was before {short} (\"{subject}\")"),
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
        let fail = |e: &dyn std::fmt::Display| failed(class, target, e);
        let repo = self.clone_base().map_err(|e| fail(&e))?;
        let found = manifest::find(repo.path(), &self.config.path, &w).map_err(|e| fail(&e))?;
        let path = repo.file(&found.file);
        let before = std::fs::read_to_string(&path)
            .map_err(|e| fail(&format!("reading {}: {e}", found.file.display())))?;
        let stamp = jiff::Timestamp::now().as_millisecond();
        let branch = format!(
            "{}{}-{}-{}-{stamp}",
            self.config.branch_prefix,
            class.as_str().replace('_', "-"),
            w.namespace,
            w.name
        );
        repo.git(&["checkout", "--quiet", "-b", &branch])
            .map_err(|e| fail(&e))?;
        let (after, subject, did) =
            change(&repo, &found, &before, &w, &container, step).map_err(|e| fail(&e))?;
        std::fs::write(&path, &after)
            .map_err(|e| fail(&format!("writing {}: {e}", found.file.display())))?;
        let commit = repo
            .commit(&format!(
                "{subject}\n\nProposed by Vigil's remediation for {target}: {did}.\n"
            ))
            .map_err(|e| fail(&e))?;
        repo.git(&["push", "--quiet", "origin", &branch])
            .map_err(|e| fail(&e))?;
        Ok(Applied {
            detail: format!(
                "committed {} on branch {branch} of {}: {did}; it takes effect once merged into {} and synced",
                commit.get(..12).unwrap_or(&commit),
                self.config.repo,
                self.config.base
            ),
            inverse: json!(Inverse {
                class,
                branch,
                commit,
                file: found.file,
                before,
                after,
            }),
        })
    }

    /// By the base branch's content: Vigil's change there (merged in any way) is undone by a
    /// commit writing the manifest back on a new branch; not there, the branch is deleted
    /// while it still ends at Vigil's commit; a manifest or a branch someone changed since is
    /// theirs and left as it is.
    fn undo(&self, target: &EntityId, applied: &Applied) -> Result<(), RuntimeError> {
        let inv: Inverse =
            serde_json::from_value(applied.inverse.clone()).map_err(|e| RuntimeError::Failed {
                action: "undo",
                target: target.clone(),
                why: format!("the recorded inverse is not one this runtime wrote: {e}"),
            })?;
        let class = inv.class;
        let fail = |e: GitError| failed(class, target, e);
        let repo = self.clone_base().map_err(fail)?;
        let now = std::fs::read_to_string(repo.file(&inv.file)).unwrap_or_default();
        if now == inv.after {
            let branch = format!("{}-undo", inv.branch);
            repo.git(&["checkout", "--quiet", "-b", &branch])
                .map_err(fail)?;
            std::fs::write(repo.file(&inv.file), &inv.before).map_err(|e| {
                failed(
                    class,
                    target,
                    format!("writing {}: {e}", inv.file.display()),
                )
            })?;
            repo.commit(&format!(
                "Undo Vigil's {} ({})\n\nVerification found things worse after it; {} written back as it was.\n",
                class.as_str(),
                inv.commit.get(..12).unwrap_or(&inv.commit),
                inv.file.display()
            ))
            .map_err(fail)?;
            repo.git(&["push", "--quiet", "origin", &branch])
                .map_err(fail)?;
            return Ok(());
        }
        if now != inv.before {
            return Err(failed(
                class,
                target,
                format!(
                    "{} on {} is neither as Vigil left it nor as it was before: someone changed it since; left as it is",
                    inv.file.display(),
                    self.config.base
                ),
            ));
        }
        let remote = repo
            .git(&["ls-remote", "origin", &format!("refs/heads/{}", inv.branch)])
            .map_err(fail)?;
        match remote.split_whitespace().next().unwrap_or_default() {
            // Deleted unmerged: nothing of it reached the cluster.
            "" => Ok(()),
            // Deleted only if it still ends at Vigil's commit when the push lands.
            h if h == inv.commit => repo
                .git(&[
                    "push",
                    "--quiet",
                    &format!(
                        "--force-with-lease=refs/heads/{}:{}",
                        inv.branch, inv.commit
                    ),
                    "origin",
                    "--delete",
                    &inv.branch,
                ])
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
