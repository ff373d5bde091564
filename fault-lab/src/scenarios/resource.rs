//! Resource faults: CPU throttling, a full disk, replicas scaled below the minimum.

use std::time::Duration;

use super::{FaultClass, FaultCtx, Info, Params, Scenario};
use crate::{
    error::{LabError, Result},
    state::Undo,
    testbed::{cgroups::LabCgroup, Testbed, APP_REPLICAS},
};

pub struct CpuThrottling;

impl Scenario for CpuThrottling {
    fn info(&self) -> Info {
        Info {
            name: "cpu-throttling",
            class: FaultClass::CpuThrottling,
            about: "the target's CFS quota drops to a sliver of one CPU",
            targets: &["app1", "app2", "redis", "postgres", "web"],
            default_target: "app1",
            intensity: "percent of one CPU allowed",
            default_intensity: 2.0,
            default_duration: Duration::from_secs(8),
            expected_action: "raise-cpu-limit",
        }
    }

    fn inject(&self, ctx: &mut FaultCtx<'_>, p: &Params) -> Result<()> {
        let cg = ctx.bed.supervisor.cgroup(ctx.target.as_str())?;
        let quota = cg.cpu_file("cpu.cfs_quota_us");
        let period = cg.cpu_file("cpu.cfs_period_us");
        let original =
            std::fs::read_to_string(&quota).map_err(LabError::io("reading cpu.cfs_quota_us"))?;
        ctx.will_undo(Undo::WriteFile {
            path: quota.clone(),
            value: original.trim().to_string(),
        })?;
        LabCgroup::write(&period, "100000")?;
        let us = (p.intensity.clamp(0.1, 100.0) * 1000.0) as u64;
        LabCgroup::write(&quota, &us.max(1000).to_string())
    }
}

pub struct DiskFull;

impl Scenario for DiskFull {
    fn info(&self) -> Info {
        Info {
            name: "disk-full",
            class: FaultClass::DiskFull,
            about: "the app's data volume (a small tmpfs) fills up: writes fail with ENOSPC",
            targets: APP_REPLICAS,
            default_target: "app1",
            intensity: "unused",
            default_intensity: 1.0,
            default_duration: Duration::from_secs(8),
            expected_action: "free-disk-space",
        }
    }

    fn inject(&self, ctx: &mut FaultCtx<'_>, _p: &Params) -> Result<()> {
        let fill = ctx.bed.files.app(ctx.service()).data.join("vigil-lab-fill");
        ctx.will_undo(Undo::RemoveFile { path: fill.clone() })?;
        let mut f = std::fs::File::create(&fill).map_err(LabError::io("creating the fill file"))?;
        let block = vec![0u8; 64 << 10];
        loop {
            use std::io::Write;
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => {
                    return Err(LabError::Io {
                        what: "filling the volume".into(),
                        source: e,
                    })
                }
            }
        }
        Ok(())
    }
}

pub struct ReplicaScaleDown;

impl Scenario for ReplicaScaleDown {
    fn info(&self) -> Info {
        Info {
            name: "replica-scale-down",
            class: FaultClass::ReplicaShortage,
            about: "the app deployment is scaled below its minimum of 2 replicas",
            targets: APP_REPLICAS,
            default_target: "app1",
            intensity: "replicas left",
            default_intensity: 0.0,
            default_duration: Duration::from_secs(8),
            expected_action: "scale-up",
        }
    }

    fn inject(&self, ctx: &mut FaultCtx<'_>, p: &Params) -> Result<()> {
        let keep = (p.intensity.max(0.0) as usize).min(APP_REPLICAS.len());
        for app in &APP_REPLICAS[keep..] {
            ctx.bed
                .supervisor
                .set_desired(&format!("vigil-lab-{app}"), false)?;
        }
        Ok(())
    }

    /// The fault is the deployment's: any of its replicas is the place.
    fn localized_by(&self, _p: &Params, service: &str) -> bool {
        APP_REPLICAS.contains(&service)
    }

    fn restore(&self, bed: &Testbed, _p: &Params) -> Result<()> {
        for app in APP_REPLICAS {
            bed.supervisor
                .set_desired(&format!("vigil-lab-{app}"), true)?;
        }
        Ok(())
    }
}
