//! The fault catalogue. Every scenario is parameterised by target, intensity and duration,
//! records how to undo itself *before* it changes anything, and only touches `vigil-lab-`
//! resources.

mod auth;
mod certificate;
mod network;
mod process;
mod resource;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{
    error::{LabError, Result},
    names::LabName,
    state::{FaultRecord, Records, Undo},
    testbed::{self, Testbed},
};

/// What kind of fault it is: what Vigil's diagnosis is scored against, in the control plane's
/// own taxonomy (each scenario maps to exactly one class).
pub use vigil_domain::diagnose::FaultClass;

/// Describes a scenario and its defaults.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    pub name: &'static str,
    pub class: FaultClass,
    pub about: &'static str,
    /// Services it may target.
    pub targets: &'static [&'static str],
    pub default_target: &'static str,
    /// What `intensity` means, and its default.
    pub intensity: &'static str,
    pub default_intensity: f64,
    pub default_duration: Duration,
    /// The remediation a correct system would choose.
    pub expected_action: &'static str,
}

/// One run's parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Params {
    pub target: String,
    pub intensity: f64,
    pub duration: Duration,
}

/// Where a scenario records its undo steps and reaches the testbed.
pub struct FaultCtx<'a> {
    pub bed: &'a Testbed,
    pub target: LabName,
    records: &'a Records,
    record: FaultRecord,
}

impl FaultCtx<'_> {
    /// Persists `step` before the change it undoes is made.
    pub fn will_undo(&mut self, step: Undo) -> Result<()> {
        self.record.undo.push(step);
        self.records.save(&self.record)
    }

    /// The target's short service name (`app1`).
    pub fn service(&self) -> &str {
        self.target
            .as_str()
            .trim_start_matches(crate::names::PREFIX)
    }
}

pub trait Scenario: Send + Sync {
    fn info(&self) -> Info;
    /// Makes the fault happen.
    fn inject(&self, ctx: &mut FaultCtx<'_>, p: &Params) -> Result<()>;
    /// Restores in-process state (supervisor) after the recorded undo steps ran.
    fn restore(&self, _bed: &Testbed, _p: &Params) -> Result<()> {
        Ok(())
    }
    /// Whether naming `service` as the root cause points at the fault: its target, unless
    /// the fault acts on more than it (a whole deployment).
    fn localized_by(&self, p: &Params, service: &str) -> bool {
        service == p.target.trim_start_matches(crate::names::PREFIX)
    }
}

pub fn catalogue() -> Vec<Box<dyn Scenario>> {
    vec![
        Box::new(process::Kill),
        Box::new(process::CrashLoop),
        Box::new(process::Oom),
        Box::new(process::ExecFailure),
        Box::new(network::PacketLoss),
        Box::new(network::Latency),
        Box::new(network::Partition),
        Box::new(network::DnsFailure),
        Box::new(network::BandwidthCap),
        Box::new(auth::RevokedCredential),
        Box::new(auth::ExpiredToken),
        Box::new(auth::PermissionDenied),
        Box::new(certificate::ExpiredCertificate),
        Box::new(resource::CpuThrottling),
        Box::new(resource::DiskFull),
        Box::new(resource::ReplicaScaleDown),
    ]
}

pub fn find(name: &str) -> Result<Box<dyn Scenario>> {
    catalogue()
        .into_iter()
        .find(|s| s.info().name == name)
        .ok_or_else(|| LabError::UnknownScenario(name.to_string()))
}

/// Checks `target` against the guard and the scenario's allowed targets.
pub fn check_target(info: &Info, target: &str) -> Result<LabName> {
    let name = LabName::parse(target)
        .or_else(|_| LabName::parse(&format!("{}{target}", crate::names::PREFIX)))?;
    let service = name.as_str().trim_start_matches(crate::names::PREFIX);
    testbed::service_name(service)?;
    if !info.targets.contains(&service) {
        return Err(LabError::Invalid(format!(
            "scenario {} cannot target {service}; it targets {:?}",
            info.name, info.targets
        )));
    }
    Ok(name)
}

/// An active fault: undo it with [`ActiveFault::teardown`].
pub struct ActiveFault<'a> {
    ctx: FaultCtx<'a>,
}

/// Injects `scenario` with its teardown record saved first.
pub fn inject<'a>(
    bed: &'a Testbed,
    records: &'a Records,
    scenario: &dyn Scenario,
    p: &Params,
) -> Result<ActiveFault<'a>> {
    let info = scenario.info();
    let target = check_target(&info, &p.target)?;
    let started = crate::state::now_unix_ms();
    let record = FaultRecord {
        id: format!("{}-{started}", info.name),
        scenario: info.name.to_string(),
        target: target.to_string(),
        started_unix_ms: started,
        // Torn down by the next start if this process dies; generous for slow teardown.
        ttl_ms: p.duration.as_millis() as u64 + 30_000,
        undo: Vec::new(),
    };
    records.save(&record)?;
    let mut ctx = FaultCtx {
        bed,
        target,
        records,
        record,
    };
    if let Err(e) = scenario.inject(&mut ctx, p) {
        // Undo whatever part was done.
        ActiveFault { ctx }.teardown(scenario, p)?;
        return Err(e);
    }
    Ok(ActiveFault { ctx })
}

impl ActiveFault<'_> {
    pub fn id(&self) -> &str {
        &self.ctx.record.id
    }

    /// Runs the undo steps (newest first), restores the supervisor, drops the record.
    pub fn teardown(self, scenario: &dyn Scenario, p: &Params) -> Result<()> {
        for step in self.ctx.record.undo.iter().rev() {
            step.apply();
        }
        let restored = scenario.restore(self.ctx.bed, p);
        self.ctx.records.remove(&self.ctx.record.id);
        restored
    }
}
