//! Resource pressure: a workload running out of something before it fails — memory near its
//! limit (the warning before the OOM killer), CPU quota throttling it. The agent reads the
//! cgroup files each interval; `rules` judges each reading against a fixed limit held for a
//! while (a workload that always runs at 90 % of its memory limit is not fine because it
//! always does, so these are not baselines), and `service` turns what held into incidents.

pub mod disk;
pub mod latest;
pub mod rules;
pub mod service;
pub mod trend;

pub use rules::{PressurePolicy, PressureRules};

/// A duration in the nanoseconds interval times are in (saturating).
fn ns(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}
pub use service::PressureService;
