//! The pressure use case: each metric interval's resource readings through the rules, what
//! held into incidents (opened, or updated while it holds; rules' incidents resolve after
//! their quiet period like the kernel rules').

use std::sync::{Arc, Mutex};

use tracing::{info, warn};

use super::{
    disk::{DiskPolicy, DiskRules},
    latest::{FilesystemUsage, Latest, WorkloadResources},
    rules::{PressurePolicy, PressureRules},
};
use crate::{
    incident::{
        ports::{open_or_update, IncidentStore},
        Stage,
    },
    interval::{ports::IntervalSink, MetricInterval},
};

pub struct PressureService {
    rules: Mutex<(PressureRules, DiskRules)>,
    latest: Mutex<Latest>,
    incidents: Arc<dyn IncidentStore>,
}

impl PressureService {
    pub fn new(
        policy: PressurePolicy,
        disk: DiskPolicy,
        incidents: Arc<dyn IncidentStore>,
    ) -> Self {
        Self {
            rules: Mutex::new((PressureRules::new(policy), DiskRules::new(disk))),
            latest: Mutex::new(Latest::default()),
            incidents,
        }
    }

    fn latest(&self) -> std::sync::MutexGuard<'_, Latest> {
        self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every workload's latest memory and CPU readings.
    pub fn workloads(&self) -> Vec<WorkloadResources> {
        self.latest().workloads()
    }

    /// Every filesystem's latest usage and fill rate.
    pub fn filesystems(&self) -> Vec<FilesystemUsage> {
        self.latest().filesystems()
    }
}

impl IntervalSink for PressureService {
    fn accept(&self, interval: &MetricInterval) {
        if interval.resources.is_empty() && interval.filesystems.is_empty() {
            return;
        }
        let findings = {
            let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
            let (cgroups, disks) = &mut *rules;
            let mut latest = self.latest();
            for r in &interval.resources {
                latest.workload(&interval.node, r, interval.end_unix_ns);
            }
            let mut f = cgroups.observe(interval);
            f.extend(disks.observe(interval, &mut latest));
            latest.prune(interval);
            cgroups.prune(interval.end_unix_ns);
            disks.prune(interval.end_unix_ns);
            f
        };
        for finding in findings {
            // The rule's one stage: from when the limit was first crossed to the finding.
            let since = match &finding.details {
                crate::incident::Details::MemoryPressure(d)
                | crate::incident::Details::CpuThrottling(d) => d.since_unix_ns,
                _ => finding.time_unix_ns,
            };
            let finding = {
                let at = finding.time_unix_ns;
                finding.with_stages([Stage::new("detect", since, at)])
            };
            match open_or_update(self.incidents.as_ref(), &finding) {
                Ok((incident, true)) => info!(
                    id = %incident.id,
                    kind = incident.kind.as_str(),
                    workload = %incident.workload_key,
                    "incident opened: {}", incident.title
                ),
                Ok(_) => {}
                Err(e) => {
                    let error: &(dyn std::error::Error + 'static) = &e;
                    warn!(error, workload = %finding.workload_key, "could not record a resource-pressure finding");
                }
            }
        }
    }
}
