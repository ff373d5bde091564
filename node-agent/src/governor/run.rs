//! The governor's thread: every check it reads what the agent cost and lost, judges, switches
//! probe groups off or on, and publishes the mode (the shipper puts it in `AgentStats`, the
//! exporter in `/metrics`).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use tracing::{error, info, warn};

use super::{
    budget::BudgetConfig,
    shed::{shed_at, STEPS},
    state::{Change, Governor, Reading},
    usage::{Snapshot, Usage},
};
use crate::kernel::probes::{ProbeError, ProbeGroup};

/// Turns whole probe groups off and back on.
pub trait ProbeSwitch: Send {
    /// Detaches (`on: false`) every running probe of `group`, or attaches again (`on: true`)
    /// every probe of it that ran at start. Returns how many changed.
    fn set(&mut self, group: ProbeGroup, on: bool) -> Result<usize, ProbeError>;
}

/// Events seen and lost so far (cumulative), wherever they were counted.
pub type Losses = Box<dyn Fn() -> (u64, u64) + Send>;

/// The agent's mode, as it was last judged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mode {
    /// Shed steps in force, in order (empty: full telemetry).
    pub shed: Vec<String>,
    /// The budget exceeded when it last shed, while any step is in force.
    pub cause: Option<String>,
    /// `cpu`, `memory` or `drops`, for the metrics label.
    pub cause_kind: Option<&'static str>,
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    /// Sheds and restores since start.
    pub changes: u64,
}

/// Shared between the governor, the shipper and the exporter.
#[derive(Debug, Default)]
pub struct Degraded(Mutex<Mode>);

impl Degraded {
    pub fn mode(&self) -> Mode {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut Mode)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// Carries out one change on the probes; returns the groups that would not attach again. A
/// step whose groups cannot switch is logged and the level still moves: a group that would
/// not come back is retried at every check (`Loop::retry`) and reported as shed until it does.
fn apply(switch: &mut dyn ProbeSwitch, change: Change) -> Vec<ProbeGroup> {
    let (index, on) = match change {
        Change::Shed { level, .. } => (level - 1, false),
        Change::Restore { level } => (level, true),
    };
    let Some(step) = STEPS.get(index) else {
        return Vec::new();
    };
    let mut stuck = Vec::new();
    for group in step.groups {
        if let Err(e) = switch.set(*group, on) {
            error!(step = step.name, ?group, on, error = %vigil_config_file::error_chain(&e), "could not switch a probe group");
            if on {
                stuck.push(*group);
            }
        }
    }
    stuck
}

/// The steps in force at `level`, and those with a group still detached after a restore.
fn shed_names(level: usize, stuck: &[ProbeGroup]) -> Vec<String> {
    let mut names = shed_at(level);
    for step in STEPS.iter().skip(level) {
        if step.groups.iter().any(|g| stuck.contains(g)) {
            names.push(step.name.to_string());
        }
    }
    names
}

struct Loop {
    governor: Governor,
    usage: Usage,
    switch: Box<dyn ProbeSwitch>,
    losses: Losses,
    state: Arc<Degraded>,
    /// Groups that would not attach again after a restore.
    stuck: Vec<ProbeGroup>,
}

impl Loop {
    /// Tries the groups that would not attach again once more.
    fn retry(&mut self) {
        let switch = self.switch.as_mut();
        self.stuck.retain(|g| match switch.set(*g, true) {
            Ok(_) => {
                info!(group = ?g, "probe group attached again");
                false
            }
            Err(_) => true,
        });
    }

    fn check(&mut self, last: &mut Snapshot, last_losses: &mut (u64, u64)) {
        self.retry();
        let now = match self.usage.snapshot() {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %vigil_config_file::error_chain(&e), "cannot read the agent's own usage: this check is skipped");
                return;
            }
        };
        let (seen, lost) = (self.losses)();
        let (d_seen, d_lost) = (
            seen.saturating_sub(last_losses.0),
            lost.saturating_sub(last_losses.1),
        );
        let reading = Reading {
            cpu_percent: self.usage.cpu_percent(last, &now),
            rss_mib: now.rss_bytes as f64 / (1024.0 * 1024.0),
            drop_ratio: d_lost as f64 / (d_seen + d_lost).max(1) as f64,
        };
        *last = now;
        *last_losses = (seen, lost);
        let change = self.governor.judge(&reading);
        if let Some(c) = change {
            match c {
                Change::Shed { level, cause } => warn!(
                    step = STEPS[level - 1].name,
                    %cause,
                    "over budget: shedding telemetry"
                ),
                Change::Restore { level } => {
                    info!(
                        step = STEPS[level].name,
                        "within budget: telemetry restored"
                    )
                }
            }
            let stuck = apply(self.switch.as_mut(), c);
            self.stuck.extend(stuck);
        }
        let level = self.governor.level();
        let cause = self.governor.cause();
        let shed = shed_names(level, &self.stuck);
        self.state.update(|m| {
            m.shed = shed;
            m.cause = cause.map(|c| c.to_string());
            m.cause_kind = cause.map(|c| c.kind());
            m.cpu_percent = reading.cpu_percent;
            m.rss_bytes = now.rss_bytes;
            m.changes += u64::from(change.is_some());
        });
    }
}

/// Starts the governor's thread; it runs until `stop` is set. With the budget off it only
/// measures (the mode's figures stay current, nothing is ever shed).
pub fn spawn(
    budget: &BudgetConfig,
    proc: &str,
    switch: Box<dyn ProbeSwitch>,
    losses: Losses,
    state: Arc<Degraded>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let interval: Duration = budget.check_interval();
    let enabled = budget.enabled;
    let usage = Usage::of_self(proc);
    let mut governor = Loop {
        governor: Governor::new(budget),
        usage,
        switch,
        losses,
        state,
        stuck: Vec::new(),
    };
    std::thread::Builder::new()
        .name("vigil-governor".into())
        .spawn(move || {
            let Ok(mut last) = governor.usage.snapshot() else {
                error!("cannot read the agent's own usage from procfs: the budget is not enforced");
                return;
            };
            let mut last_losses = (governor.losses)();
            loop {
                std::thread::sleep(interval);
                // Checked after the sleep: no switch once shutdown has begun.
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if enabled {
                    governor.check(&mut last, &mut last_losses);
                } else if let Ok(now) = governor.usage.snapshot() {
                    let cpu = governor.usage.cpu_percent(&last, &now);
                    governor.state.update(|m| {
                        m.cpu_percent = cpu;
                        m.rss_bytes = now.rss_bytes;
                    });
                    last = now;
                }
            }
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records every switch; refuses the block IO group (as a kernel without it would).
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<(ProbeGroup, bool)>>>);

    impl ProbeSwitch for Recorder {
        fn set(&mut self, group: ProbeGroup, on: bool) -> Result<usize, ProbeError> {
            self.0.lock().expect("lock").push((group, on));
            if group == ProbeGroup::BlockIo {
                return Err(ProbeError::Disabled {
                    key: "telemetry.block_io",
                });
            }
            Ok(1)
        }
    }

    #[test]
    fn a_shed_step_turns_its_groups_off_and_a_restore_turns_them_back_on() {
        let rec = Recorder::default();
        let mut switch = rec.clone();
        let cause = super::super::state::Pressure::Cpu {
            used: 50.0,
            budget: 10.0,
        };
        assert!(apply(&mut switch, Change::Shed { level: 1, cause }).is_empty());
        assert!(apply(&mut switch, Change::Shed { level: 2, cause }).is_empty());
        let stuck = apply(&mut switch, Change::Restore { level: 1 });
        // A group that would not come back is still shed, however far the level went down.
        assert_eq!(stuck, [ProbeGroup::BlockIo]);
        assert_eq!(shed_names(1, &stuck), ["payload", "latency"]);
        assert_eq!(shed_names(0, &[]), Vec::<String>::new());
        let log = rec.0.lock().expect("lock").clone();
        assert_eq!(
            log,
            [
                (ProbeGroup::Tls, false),
                (ProbeGroup::Syscalls, false),
                (ProbeGroup::RunQueue, false),
                // Refused, and the step still goes on to the next group.
                (ProbeGroup::BlockIo, false),
                (ProbeGroup::Syscalls, true),
                (ProbeGroup::RunQueue, true),
                (ProbeGroup::BlockIo, true),
            ]
        );
    }
}
