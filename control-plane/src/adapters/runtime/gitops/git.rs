//! The `git` command line, as Argo CD and Flux drive it: a fresh clone of the configured
//! repository for every change, a branch per action, a commit by Vigil's author, a push. Every
//! failure names the command and what git said.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// A git command that failed: which, and its standard error.
#[derive(Debug, thiserror::Error)]
#[error("git {args}: {why}")]
pub struct GitError {
    pub args: String,
    pub why: String,
}

/// A working clone in a temporary directory, removed when dropped.
pub struct Clone {
    dir: tempfile::TempDir,
    author: (String, String),
}

fn run(dir: Option<&Path>, args: &[&str]) -> Result<String, GitError> {
    run_raw(dir, args).map(|out| out.trim().to_string())
}

/// Standard output as git wrote it (a file's content keeps its last newline).
fn run_raw(dir: Option<&Path>, args: &[&str]) -> Result<String, GitError> {
    let mut c = Command::new("git");
    if let Some(d) = dir {
        c.current_dir(d);
    }
    // Never ask for credentials on a terminal that is not there.
    c.env("GIT_TERMINAL_PROMPT", "0").args(args);
    let fail = |why: String| GitError {
        args: args.join(" "),
        why,
    };
    let out = c
        .output()
        .map_err(|e| fail(format!("cannot run git: {e} (is git installed?)")))?;
    if !out.status.success() {
        return Err(fail(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Clone {
    /// Clones `branch` of `repo`.
    pub fn of(repo: &str, branch: &str, author: (&str, &str)) -> Result<Self, GitError> {
        let dir = tempfile::tempdir().map_err(|e| GitError {
            args: "clone".into(),
            why: format!("no temporary directory: {e}"),
        })?;
        let path = dir.path().to_string_lossy().to_string();
        run(
            None,
            &["clone", "--quiet", "--branch", branch, "--", repo, &path],
        )?;
        Ok(Self {
            dir,
            author: (author.0.to_string(), author.1.to_string()),
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, rel: &Path) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn git(&self, args: &[&str]) -> Result<String, GitError> {
        run(Some(self.dir.path()), args)
    }

    /// `git` whose output is content (untrimmed).
    pub fn git_raw(&self, args: &[&str]) -> Result<String, GitError> {
        run_raw(Some(self.dir.path()), args)
    }

    /// Commits everything changed as Vigil's author; the new commit's id.
    pub fn commit(&self, message: &str) -> Result<String, GitError> {
        let (name, email) = &self.author;
        self.git(&["add", "--all"])?;
        self.git(&[
            "-c",
            &format!("user.name={name}"),
            "-c",
            &format!("user.email={email}"),
            "commit",
            "--quiet",
            "-m",
            message,
        ])?;
        self.git(&["rev-parse", "HEAD"])
    }
}
