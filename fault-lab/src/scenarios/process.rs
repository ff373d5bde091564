//! Process faults: kill, crash loop, OOM, a binary that cannot be executed.

use std::time::Duration;

use super::{FaultClass, FaultCtx, Info, Params, Scenario};
use crate::{
    error::{LabError, Result},
    state::Undo,
    testbed::{service_ip, Testbed, APP_REPLICAS},
};

const APPS: &[&str] = APP_REPLICAS;

fn main_pid(ctx: &FaultCtx<'_>) -> Result<u32> {
    ctx.bed
        .supervisor
        .pid(ctx.target.as_str())?
        .ok_or_else(|| LabError::Invalid(format!("{} is not running", ctx.target)))
}

pub struct Kill;

impl Scenario for Kill {
    fn info(&self) -> Info {
        Info {
            name: "kill",
            class: FaultClass::ProcessKilled,
            about: "SIGKILL the service's main process (the supervisor restarts it)",
            targets: &["app1", "app2", "redis", "postgres", "web", "dns"],
            default_target: "app1",
            intensity: "kills, one per second",
            default_intensity: 1.0,
            default_duration: Duration::from_secs(3),
            expected_action: "restart-workload",
        }
    }

    fn inject(&self, ctx: &mut FaultCtx<'_>, p: &Params) -> Result<()> {
        let kills = p.intensity.max(1.0) as u32;
        for i in 0..kills {
            if i > 0 {
                std::thread::sleep(Duration::from_secs(1));
            }
            if let Ok(pid) = main_pid(ctx) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        Ok(())
    }
}

pub struct CrashLoop;

impl Scenario for CrashLoop {
    fn info(&self) -> Info {
        Info {
            name: "crash-loop",
            class: FaultClass::CrashLoop,
            about: "a bad config file: the app exits 1 at every start",
            targets: APPS,
            default_target: "app1",
            intensity: "unused",
            default_intensity: 1.0,
            default_duration: Duration::from_secs(8),
            expected_action: "rollback-release",
        }
    }

    fn inject(&self, ctx: &mut FaultCtx<'_>, _p: &Params) -> Result<()> {
        let conf = ctx.bed.files.app(ctx.service()).conf;
        let original =
            std::fs::read_to_string(&conf).map_err(LabError::io("reading the app config"))?;
        ctx.will_undo(Undo::WriteFile {
            path: conf.clone(),
            value: original,
        })?;
        std::fs::write(&conf, "this is not a config\n")
            .map_err(LabError::io("breaking the app config"))?;
        ctx.bed.supervisor.restart(ctx.target.as_str())
    }

    fn restore(&self, bed: &Testbed, p: &Params) -> Result<()> {
        bed.supervisor.restart(&format!(
            "vigil-lab-{}",
            p.target.trim_start_matches("vigil-lab-")
        ))
    }
}

pub struct Oom;

impl Scenario for Oom {
    fn info(&self) -> Info {
        Info {
            name: "oom",
            class: FaultClass::OomKill,
            about: "the app's working set grows past its 96 MiB memory limit",
            targets: APPS,
            default_target: "app1",
            intensity: "MiB to allocate",
            default_intensity: 128.0,
            default_duration: Duration::from_secs(3),
            expected_action: "raise-memory-limit",
        }
    }

    fn inject(&self, ctx: &mut FaultCtx<'_>, p: &Params) -> Result<()> {
        let url = format!(
            "http://{}:8080/grow?mb={}",
            service_ip(ctx.service())?,
            p.intensity as u64
        );
        // The process dies while answering: no response is the expected outcome.
        let _ = ctx.bed.client().get(url).send();
        Ok(())
    }
}

pub struct ExecFailure;

impl Scenario for ExecFailure {
    fn info(&self) -> Info {
        Info {
            name: "exec-failure",
            class: FaultClass::BadDeploy,
            about: "the deployed binary is replaced by a file that cannot be executed",
            targets: APPS,
            default_target: "app1",
            intensity: "unused",
            default_intensity: 1.0,
            default_duration: Duration::from_secs(8),
            expected_action: "rollback-release",
        }
    }

    fn inject(&self, ctx: &mut FaultCtx<'_>, _p: &Params) -> Result<()> {
        let bin = ctx.bed.files.app(ctx.service()).bin;
        let target =
            std::fs::read_link(&bin).map_err(LabError::io("reading the app binary link"))?;
        ctx.will_undo(Undo::Symlink {
            path: bin.clone(),
            target,
        })?;
        std::fs::remove_file(&bin).map_err(LabError::io("removing the app binary link"))?;
        std::fs::write(&bin, "not an executable\n")
            .map_err(LabError::io("writing a bad binary"))?;
        ctx.bed.supervisor.restart(ctx.target.as_str())
    }

    fn restore(&self, bed: &Testbed, p: &Params) -> Result<()> {
        bed.supervisor.restart(&format!(
            "vigil-lab-{}",
            p.target.trim_start_matches("vigil-lab-")
        ))
    }
}
