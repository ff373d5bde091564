//! Filesystems filling up: a data filesystem above `used_ratio` whose recent fill rate (a
//! least-squares line through the last `trend_window` of readings) says it is full within
//! `full_within` gets a warning; one already full is critical. The projection is what makes
//! it a warning worth having: 85 % used for a year is fine, 85 % and 2 GiB an hour is not.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    time::Duration,
};

use super::{
    latest::Latest,
    ns,
    trend::{trend, Trend},
};
use crate::{
    entity::EntityId,
    incident::{details::PressureDetails, Details, Finding, Severity},
    interval::{FilesystemObservation, MetricInterval},
};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskPolicy {
    pub used_ratio: f64,
    pub full_within: Duration,
    /// Readings the fill rate is fitted over.
    pub trend_window: Duration,
    pub repeat: Duration,
}

impl Default for DiskPolicy {
    fn default() -> Self {
        Self {
            used_ratio: 0.8,
            full_within: Duration::from_secs(24 * 3600),
            trend_window: Duration::from_secs(1800),
            repeat: Duration::from_secs(60),
        }
    }
}

type Key = (String, String);

#[derive(Debug, Default)]
pub struct DiskRules {
    policy: DiskPolicy,
    readings: HashMap<Key, VecDeque<(i64, u64)>>,
    reported: HashMap<Key, i64>,
}

impl DiskRules {
    pub fn new(policy: DiskPolicy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    /// Judges one interval's filesystems; `latest` gets each one's usage and fill rate.
    pub fn observe(&mut self, interval: &MetricInterval, latest: &mut Latest) -> Vec<Finding> {
        let at = interval.end_unix_ns;
        let mut findings = Vec::new();
        for f in &interval.filesystems {
            let key = (interval.node.clone(), f.device.clone());
            let history = self.readings.entry(key.clone()).or_default();
            history.push_back((at, f.used_bytes));
            while history
                .front()
                .is_some_and(|(t, _)| at - t > ns(self.policy.trend_window))
            {
                history.pop_front();
            }
            let used = f.used_bytes as f64 / f.size_bytes.max(1) as f64;
            let trend = trend(history, f.available_bytes);
            latest.filesystem(&interval.node, f, trend, at);
            let full = f.available_bytes == 0;
            let soon = trend
                .and_then(|t| t.seconds_to_full)
                .is_some_and(|s| s <= self.policy.full_within.as_secs_f64());
            if used < self.policy.used_ratio || !(full || soon) {
                self.reported.remove(&key);
                continue;
            }
            let due = self
                .reported
                .get(&key)
                .is_none_or(|t| at - t >= ns(self.policy.repeat));
            if due {
                self.reported.insert(key, at);
                findings.push(finding(&interval.node, f, used, trend, &self.policy, at));
            }
        }
        findings
    }

    /// Forgets filesystems not seen for a trend window.
    pub fn prune(&mut self, now_unix_ns: i64) {
        let keep = ns(self.policy.trend_window);
        self.readings
            .retain(|_, h| h.back().is_some_and(|(t, _)| now_unix_ns - t <= keep));
        self.reported.retain(|_, t| now_unix_ns - *t <= keep);
    }
}

fn human(seconds: f64) -> String {
    if seconds < 120.0 {
        format!("{seconds:.0}s")
    } else if seconds < 7200.0 {
        format!("{:.0}m", seconds / 60.0)
    } else {
        format!("{:.1}h", seconds / 3600.0)
    }
}

fn finding(
    node: &str,
    f: &FilesystemObservation,
    used: f64,
    trend: Option<Trend>,
    policy: &DiskPolicy,
    at: i64,
) -> Finding {
    let entity = EntityId::new(format!("filesystem/{}", f.mount_point));
    let full = f.available_bytes == 0;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let eta = trend.and_then(|t| t.seconds_to_full);
    let title = if full {
        format!(
            "Disk full: {} on {node} ({:.0} MiB)",
            f.mount_point,
            mib(f.size_bytes)
        )
    } else {
        format!(
            "Disk filling: {} on {node} at {:.0} %, full in {}",
            f.mount_point,
            used * 100.0,
            eta.map_or("?".into(), human)
        )
    };
    let mut readings = BTreeMap::new();
    readings.insert("size_bytes".into(), f.size_bytes as f64);
    readings.insert("used_bytes".into(), f.used_bytes as f64);
    readings.insert("available_bytes".into(), f.available_bytes as f64);
    if let Some(t) = trend {
        readings.insert("fill_rate_bytes_per_s".into(), t.bytes_per_s);
    }
    if let Some(s) = eta {
        readings.insert("seconds_to_full".into(), s);
    }
    Finding {
        severity: if full {
            Severity::Critical
        } else {
            Severity::Warning
        },
        node: node.to_string(),
        workload_key: entity.clone(),
        summary: format!(
            "{} ({}, device {}) has {:.0} of {:.0} MiB used{}",
            f.mount_point,
            f.fs_type,
            f.device,
            mib(f.used_bytes),
            mib(f.size_bytes),
            trend.map_or(String::new(), |t| format!(
                ", growing {:.2} MiB/s over the last readings",
                t.bytes_per_s / (1024.0 * 1024.0)
            ))
        ),
        title,
        time_unix_ns: at,
        evidence: Vec::new(),
        details: Details::DiskPressure(PressureDetails {
            workload: entity,
            measure: "disk_used_ratio".into(),
            value: used,
            threshold: policy.used_ratio,
            since_unix_ns: at,
            held_secs: 0,
            readings,
        }),
        stages: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(t_s: i64, used_mib: u64) -> MetricInterval {
        let mut i = crate::synthetic::empty_interval("n", t_s as u64 + 1, t_s * 1_000_000_000);
        i.filesystems.push(FilesystemObservation {
            device: "0:44".into(),
            mount_point: "/data".into(),
            fs_type: "ext4".into(),
            size_bytes: 1000 << 20,
            used_bytes: used_mib << 20,
            available_bytes: (1000 - used_mib) << 20,
        });
        i
    }

    impl DiskRules {
        fn observe_alone(&mut self, interval: &MetricInterval) -> Vec<Finding> {
            self.observe(interval, &mut Latest::default())
        }
    }

    #[test]
    fn a_steady_fill_projects_the_time_it_takes_to_fill() {
        let mut rules = DiskRules::new(DiskPolicy::default());
        let mut found = Vec::new();
        // 10 MiB/s from 700 MiB: 80 % at t=10, full at t=30.
        for t in 0..=20 {
            found.extend(rules.observe_alone(&interval(t, 700 + 10 * t as u64)));
        }
        let f = found.first().expect("a warning past 80 %");
        assert_eq!(f.severity, Severity::Warning);
        let Details::DiskPressure(d) = &f.details else {
            panic!("{f:?}")
        };
        let eta = d.readings["seconds_to_full"];
        let truth = (1000.0 - d.readings["used_bytes"] / (1 << 20) as f64) / 10.0;
        assert!(
            (eta - truth).abs() < 0.01 * truth,
            "eta {eta} truth {truth}"
        );
    }

    #[test]
    fn a_full_but_idle_disk_far_from_full_is_quiet_and_a_full_one_is_critical() {
        let mut rules = DiskRules::new(DiskPolicy::default());
        let quiet: Vec<_> = (0..30)
            .flat_map(|t| rules.observe_alone(&interval(t, 850)))
            .collect();
        assert!(quiet.is_empty(), "85 % and not growing: {quiet:?}");
        let full = rules.observe_alone(&interval(31, 1000));
        assert_eq!(full.first().map(|f| f.severity), Some(Severity::Critical));
    }
}
