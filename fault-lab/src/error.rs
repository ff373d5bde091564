//! The lab's error type: each variant names what went wrong and what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("refusing target {target:?}: the lab only touches resources named `vigil-lab-…` (namespaces, cgroups, services)")]
    OutsideLab { target: String },
    #[error(
        "another lab run holds {path} (pid {pid}); wait for it or stop it — one run at a time"
    )]
    Busy { path: PathBuf, pid: u32 },
    #[error("unknown scenario {0:?}; `vigil-lab list` shows them")]
    UnknownScenario(String),
    #[error("unknown service {0:?}; the testbed has web, app1, app2, redis, postgres, dns")]
    UnknownService(String),
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the testbed is not healthy: {0}")]
    Unhealthy(String),
    #[error("{0}")]
    Invalid(String),
}

impl LabError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

pub type Result<T> = std::result::Result<T, LabError>;
