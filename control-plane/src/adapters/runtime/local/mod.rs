//! The local runtime: workloads on this host. Memory limits and CPU quotas are written to
//! their cgroup-v1 files directly (`cgroup`); everything that needs to know the workload —
//! restarting it, its last release, its deployed files and credentials, its logs, its
//! load-balancer pool, the DNS server's last good records, its certificate's issuer, its egress rate limit — is asked of the host's process
//! supervisor over the local supervisor protocol (`supervisor`), when one is configured.

mod cgroup;
mod fleet;
mod supervisor;

use std::path::PathBuf;

pub use self::{cgroup::CgroupLimits, fleet::SupervisorFleet, supervisor::Supervisor};
use crate::domain::{
    entity::EntityId,
    remediate::{
        ports::{Runtime, RuntimeError},
        ActionClass, Applied, Step,
    },
};

pub struct LocalRuntime {
    limits: CgroupLimits,
    supervisor: Option<Supervisor>,
}

impl LocalRuntime {
    pub fn new(limits: CgroupLimits, supervisor: Option<PathBuf>) -> Self {
        Self {
            limits,
            supervisor: supervisor.map(Supervisor::new),
        }
    }

    /// The host's v1 hierarchies, and the supervisor listening on `supervisor`, if any.
    pub fn host(supervisor: Option<PathBuf>) -> Self {
        Self::new(CgroupLimits::host(), supervisor)
    }

    fn supervisor(&self, class: ActionClass) -> Result<&Supervisor, RuntimeError> {
        self.supervisor
            .as_ref()
            .ok_or_else(|| RuntimeError::Unsupported {
                runtime: "local",
                action: class.as_str(),
                why: "it needs the workload's supervisor: set [remediation.local] supervisor to \
                      its socket"
                    .into(),
            })
    }
}

/// Classes the local runtime can carry out: the cgroup limits itself, the rest through a
/// supervisor.
fn through_supervisor(class: ActionClass) -> bool {
    matches!(
        class,
        ActionClass::RestartProcess
            | ActionClass::AddReplica
            | ActionClass::RemoveReplica
            | ActionClass::RestoreFileMode
            | ActionClass::RotateLog
            | ActionClass::RestartDns
            | ActionClass::ReapplyCredential
            | ActionClass::Rollback
            | ActionClass::RenewCertificate
            | ActionClass::RaiseBandwidthLimit
    )
}

impl Runtime for LocalRuntime {
    fn name(&self) -> &'static str {
        "local"
    }

    fn supports(&self, class: ActionClass) -> bool {
        self.limits.supports(class) || (self.supervisor.is_some() && through_supervisor(class))
    }

    fn apply(&self, target: &EntityId, step: &Step) -> Result<Applied, RuntimeError> {
        if self.limits.supports(step.action) {
            return self.limits.apply(target, step);
        }
        if !through_supervisor(step.action) {
            return Err(RuntimeError::Unsupported {
                runtime: "local",
                action: step.action.as_str(),
                why: "it is not an action on a host's workloads".into(),
            });
        }
        self.supervisor(step.action)?.apply(target, step)
    }

    fn undo(&self, target: &EntityId, applied: &Applied) -> Result<(), RuntimeError> {
        if Supervisor::owns(applied) {
            return self
                .supervisor(ActionClass::RestartProcess)?
                .undo(target, applied);
        }
        self.limits.undo(target, applied)
    }
}
