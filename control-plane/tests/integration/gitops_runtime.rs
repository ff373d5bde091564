//! The GitOps runtime against a real git repository the test makes (a bare `origin` the
//! cluster would sync from) and the in-memory API server (`support/apiserver.rs`) that says
//! which Deployment the incident's pod belongs to: a limit raise is one edited line on a
//! branch of its own, a rollback a revert of the manifest's last change; an undo deletes an
//! unmerged branch, reverts a merged one on a new branch, and leaves alone a branch someone
//! has committed on since. The cluster itself is only read.

use std::{path::Path, process::Command, sync::Arc};

use crate::support::{
    apiserver::ApiServer,
    shop::{seed, POD_UID},
};
use control_plane::{
    adapters::{
        kube::KubeEndpoints,
        runtime::{gitops::GitOpsConfig, GitOpsRuntime, KubeRuntime},
    },
    domain::{
        entity::EntityId,
        remediate::{playbook::When, ports::Runtime, ActionClass, Applied, Step},
    },
};
use serde_json::json;

/// Two Deployments in one file: the worker's (first, with a container of the same name and
/// the same limit) must stay as it is.
const MANIFEST: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: checkout-worker\n  namespace: shop\nspec:\n  template:\n    spec:\n      containers:\n        - name: checkout\n          image: shop/worker:3\n          resources:\n            limits:\n              memory: 512Mi\n---\n# The shop's checkout service.\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: checkout\n  namespace: shop\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n        - name: checkout\n          image: shop/checkout:1.4\n          resources:\n            limits:\n              cpu: 500m\n              memory: 512Mi  # the price table fits, for now\n";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=Dev", "-c", "user.email=dev@shop"])
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `origin.git` with two commits on main: checkout 1.4, then the rollout to 1.5.
fn repository(dir: &Path) -> (String, std::path::PathBuf) {
    let origin = dir.join("origin.git");
    git(
        dir,
        &[
            "init",
            "--quiet",
            "--bare",
            "--initial-branch=main",
            "origin.git",
        ],
    );
    let work = dir.join("work");
    git(
        dir,
        &["clone", "--quiet", origin.to_str().expect("utf-8"), "work"],
    );
    git(&work, &["checkout", "--quiet", "-b", "main"]);
    std::fs::create_dir_all(work.join("apps/checkout")).expect("mkdir");
    std::fs::write(work.join("apps/checkout/deployment.yaml"), MANIFEST).expect("write");
    std::fs::write(work.join("README.md"), "shop\n").expect("write");
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "checkout 1.4"]);
    let v15 = MANIFEST.replace("checkout:1.4", "checkout:1.5");
    std::fs::write(work.join("apps/checkout/deployment.yaml"), v15).expect("write");
    // The rollout's commit touches another file too: a rollback leaves that one alone.
    std::fs::write(work.join("README.md"), "shop, checkout 1.5\n").expect("write");
    git(
        &work,
        &["commit", "--quiet", "-am", "Roll out checkout 1.5"],
    );
    git(&work, &["push", "--quiet", "origin", "main"]);
    (origin.to_string_lossy().to_string(), work)
}

fn step(action: ActionClass, factor: Option<f64>) -> Step {
    Step {
        action,
        replicas: 0,
        params: factor
            .map(|f| ("factor".to_string(), json!(f)))
            .into_iter()
            .collect(),
        when: When::default(),
    }
}

fn branches(origin: &str) -> Vec<String> {
    let out = Command::new("git")
        .args([
            "--git-dir",
            origin,
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/",
        ])
        .output()
        .expect("git");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn show(origin: &str, rev: &str) -> String {
    let out = Command::new("git")
        .args(["--git-dir", origin, "show", rev])
        .output()
        .expect("git");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn branch_of(applied: &Applied) -> String {
    applied.inverse["branch"]
        .as_str()
        .expect("a branch")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_raises_and_rollbacks_are_commits_on_branches_and_undone_safely() {
    let dir = tempfile::tempdir().expect("dir");
    let (origin, work) = repository(dir.path());
    let api = ApiServer::start().await;
    seed(&api);
    let config = kube::Config::new(api.url_for("cp").parse().expect("url"));
    let endpoints = KubeEndpoints::start(kube::Client::try_from(config.clone()).expect("client"));
    endpoints.wait_ready().await.expect("listed");
    let kube = Arc::new(KubeRuntime::new(config, endpoints.pods()).expect("runtime"));
    let runtime = Arc::new(GitOpsRuntime::new(
        GitOpsConfig {
            repo: origin.clone(),
            base: "main".into(),
            path: "apps".into(),
            branch_prefix: "vigil/".into(),
            author_name: "Vigil".into(),
            author_email: "vigil@shop".into(),
        },
        kube,
    ));
    let pod = EntityId::pod(POD_UID);
    let undo = |applied: Applied| {
        let (r, pod) = (runtime.clone(), pod.clone());
        async move {
            tokio::task::spawn_blocking(move || r.undo(&pod, &applied).map_err(|e| e.to_string()))
                .await
                .expect("thread")
        }
    };
    let apply = |class: ActionClass, factor: Option<f64>| {
        let (r, pod) = (runtime.clone(), pod.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                r.apply(&pod, &step(class, factor))
                    .map_err(|e| e.to_string())
            })
            .await
            .expect("thread")
        }
    };

    // A memory raise: one branch, one commit by Vigil, one line changed, comments kept.
    let raised = apply(ActionClass::RaiseMemoryLimit, Some(1.5))
        .await
        .expect("raised");
    let branch = branch_of(&raised);
    assert!(
        branch.starts_with("vigil/raise-memory-limit-shop-checkout-"),
        "{branch}"
    );
    assert!(
        raised.detail.contains("512Mi -> 768Mi"),
        "{}",
        raised.detail
    );
    assert_eq!(branches(&origin), ["main".to_string(), branch.clone()]);
    let commit = show(&origin, &branch);
    assert!(commit.contains("Author: Vigil <vigil@shop>"), "{commit}");
    assert!(commit.contains(&format!("for {pod}")), "{commit}");
    let diff: Vec<&str> = commit
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert_eq!(
        diff,
        [
            "-              memory: 512Mi  # the price table fits, for now",
            "+              memory: 768Mi  # the price table fits, for now"
        ]
    );
    // Undone while unmerged: the branch is gone, main never changed.
    undo(raised).await.expect("undone");
    assert_eq!(branches(&origin), ["main"]);

    // Someone commits on Vigil's branch: the undo leaves their work alone.
    let raised = apply(ActionClass::RaiseMemoryLimit, Some(1.5))
        .await
        .expect("raised");
    let branch = branch_of(&raised);
    git(&work, &["fetch", "--quiet", "origin"]);
    git(
        &work,
        &[
            "checkout",
            "--quiet",
            "-b",
            "review",
            &format!("origin/{branch}"),
        ],
    );
    std::fs::write(work.join("NOTES.md"), "reviewed\n").expect("write");
    git(&work, &["add", "NOTES.md"]);
    git(&work, &["commit", "--quiet", "-m", "review notes"]);
    git(
        &work,
        &["push", "--quiet", "origin", &format!("review:{branch}")],
    );
    let e = undo(raised).await.expect_err("theirs now");
    assert!(e.contains("someone is working on it"), "{e}");
    assert!(branches(&origin).contains(&branch));

    // A rollback: the manifest's last change (the 1.5 rollout) reverted on a branch.
    let rolled = apply(ActionClass::Rollback, None)
        .await
        .expect("rolled back");
    let file = show(
        &origin,
        &format!("{}:apps/checkout/deployment.yaml", branch_of(&rolled)),
    );
    assert!(file.contains("image: shop/checkout:1.4"), "{file}");
    let readme = show(&origin, &format!("{}:README.md", branch_of(&rolled)));
    assert_eq!(readme.trim(), "shop, checkout 1.5", "other files stay");
    assert!(
        rolled.detail.contains("Roll out checkout 1.5"),
        "{}",
        rolled.detail
    );

    // Squash-merged into main and the branch deleted, as a forge does: the undo is a commit
    // writing the manifest back, on a branch of its own.
    let raised = apply(ActionClass::ChangeCpuQuota, Some(2.0))
        .await
        .expect("raised");
    let branch = branch_of(&raised);
    assert!(raised.detail.contains("500m -> 1000m"), "{}", raised.detail);
    git(&work, &["fetch", "--quiet", "origin"]);
    git(&work, &["checkout", "--quiet", "main"]);
    git(&work, &["pull", "--quiet", "--ff-only", "origin", "main"]);
    git(
        &work,
        &["merge", "--quiet", "--squash", &format!("origin/{branch}")],
    );
    git(
        &work,
        &[
            "commit",
            "--quiet",
            "-m",
            "Raise checkout's CPU limit (#42)",
        ],
    );
    git(
        &work,
        &["push", "--quiet", "origin", "main", &format!(":{branch}")],
    );
    undo(raised).await.expect("written back");
    let undone = show(
        &origin,
        &format!("{branch}-undo:apps/checkout/deployment.yaml"),
    );
    assert!(undone.contains("cpu: 500m"), "{undone}");
    // The manifest changed since by someone else: no undo guesses over it.
    let raised = apply(ActionClass::RaiseMemoryLimit, Some(1.5))
        .await
        .expect("raised");
    git(&work, &["pull", "--quiet", "--ff-only", "origin", "main"]);
    let edited = std::fs::read_to_string(work.join("apps/checkout/deployment.yaml"))
        .expect("read")
        .replace("replicas: 2", "replicas: 3");
    std::fs::write(work.join("apps/checkout/deployment.yaml"), edited).expect("write");
    git(&work, &["commit", "--quiet", "-am", "three replicas"]);
    git(&work, &["push", "--quiet", "origin", "main"]);
    let e = undo(raised).await.expect_err("changed since");
    assert!(e.contains("someone changed it since"), "{e}");

    // Anything else is not a change to a manifest.
    let e = apply(ActionClass::EvictPod, None)
        .await
        .expect_err("unsupported");
    assert!(e.contains("cannot evict_pod"), "{e}");
    // The cluster was read, never written.
    assert!(
        api.requests().iter().all(|r| r.method == "GET"),
        "{:#?}",
        api.requests()
    );
}
