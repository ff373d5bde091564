//! Fixed-limit rules on resource readings: a measure above its limit for `hold` is a finding,
//! repeated every `repeat` while it stays there; one reading below resets it.

use std::{collections::BTreeMap, collections::HashMap, time::Duration};

use super::ns;
use crate::{
    entity::EntityId,
    incident::{details::PressureDetails, Details, Finding, Severity},
    interval::{MetricInterval, ResourceObservation},
};

/// One rule: a measure's limit and how long it must hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub ratio: f64,
    pub hold: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PressurePolicy {
    /// Working set over the memory limit.
    pub memory: Limit,
    /// CFS periods in which the quota ran out, over all periods.
    pub throttling: Limit,
    /// A held finding is repeated this often (the incident's update), not every interval.
    pub repeat: Duration,
}

impl Default for PressurePolicy {
    fn default() -> Self {
        Self {
            memory: Limit {
                ratio: 0.85,
                hold: Duration::from_secs(300),
            },
            throttling: Limit {
                ratio: 0.25,
                hold: Duration::from_secs(30),
            },
            repeat: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Measure {
    Memory,
    Throttling,
}

impl Measure {
    fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory_limit_ratio",
            Self::Throttling => "throttled_ratio",
        }
    }
}

/// A measure above its limit: since when, and when it was last reported.
#[derive(Debug, Clone, Copy)]
struct Held {
    since_unix_ns: i64,
    reported_unix_ns: Option<i64>,
}

type Key = (String, EntityId, Measure);

#[derive(Debug, Default)]
pub struct PressureRules {
    policy: PressurePolicy,
    held: HashMap<Key, Held>,
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn held_for(secs: u64) -> String {
    if secs >= 120 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

impl PressureRules {
    pub fn new(policy: PressurePolicy) -> Self {
        Self {
            policy,
            held: HashMap::new(),
        }
    }

    /// Judges one interval's readings; returns what has held long enough to report now.
    pub fn observe(&mut self, interval: &MetricInterval) -> Vec<Finding> {
        let at = interval.end_unix_ns;
        let mut findings = Vec::new();
        for r in &interval.resources {
            let readings = [
                (Measure::Memory, self.policy.memory, r.memory_limit_ratio()),
                (
                    Measure::Throttling,
                    self.policy.throttling,
                    r.throttled_ratio(),
                ),
            ];
            for (measure, limit, value) in readings {
                let key = (interval.node.clone(), r.workload.key.clone(), measure);
                let Some(value) = value.filter(|v| *v >= limit.ratio) else {
                    // Below the limit (or not measured this interval): it no longer holds.
                    if value.is_some() {
                        self.held.remove(&key);
                    }
                    continue;
                };
                let held = self.held.entry(key).or_insert(Held {
                    since_unix_ns: at,
                    reported_unix_ns: None,
                });
                let long_enough = at - held.since_unix_ns >= ns(limit.hold);
                let due = held
                    .reported_unix_ns
                    .is_none_or(|t| at - t >= ns(self.policy.repeat));
                if long_enough && due {
                    held.reported_unix_ns = Some(at);
                    findings.push(finding(&interval.node, r, measure, value, limit, *held, at));
                }
            }
        }
        findings
    }

    /// Forgets workloads not seen for an hour (bounded memory as workloads come and go).
    pub fn prune(&mut self, now_unix_ns: i64) {
        let keep = ns(Duration::from_secs(3600));
        self.held
            .retain(|_, h| now_unix_ns - h.reported_unix_ns.unwrap_or(h.since_unix_ns) <= keep);
    }
}

fn finding(
    node: &str,
    r: &ResourceObservation,
    measure: Measure,
    value: f64,
    limit: Limit,
    held: Held,
    at: i64,
) -> Finding {
    let w = &r.workload.key;
    let held_secs = u64::try_from((at - held.since_unix_ns) / 1_000_000_000).unwrap_or(0);
    let pct = |x: f64| format!("{:.0} %", x * 100.0);
    let mut readings = BTreeMap::new();
    let (title, summary, details): (String, String, fn(PressureDetails) -> Details) = match measure
    {
        Measure::Memory => {
            let limit_bytes = r.memory_limit_bytes.unwrap_or(0);
            readings.insert(
                "memory_working_set_bytes".into(),
                r.memory_working_set_bytes as f64,
            );
            readings.insert("memory_usage_bytes".into(), r.memory_usage_bytes as f64);
            readings.insert("memory_limit_bytes".into(), limit_bytes as f64);
            (
                format!(
                    "Memory near its limit: {w} at {} of {} for {}",
                    pct(value),
                    mib(limit_bytes),
                    held_for(held_secs)
                ),
                format!(
                    "{w}'s working set is {} of its {} memory limit (above {} for {}); the OOM killer acts at the limit",
                    mib(r.memory_working_set_bytes),
                    mib(limit_bytes),
                    pct(limit.ratio),
                    held_for(held_secs)
                ),
                Details::MemoryPressure,
            )
        }
        Measure::Throttling => {
            readings.insert("cpu_periods".into(), r.cpu_periods as f64);
            readings.insert(
                "cpu_throttled_periods".into(),
                r.cpu_throttled_periods as f64,
            );
            readings.insert("cpu_throttled_us".into(), r.cpu_throttled_us as f64);
            (
                format!(
                    "CPU throttled: {w} in {} of periods for {}",
                    pct(value),
                    held_for(held_secs)
                ),
                format!(
                    "{w} ran out of its CPU quota in {} of {} scheduling periods ({:.1} s throttled) in the last interval, above {} for {}",
                    r.cpu_throttled_periods,
                    r.cpu_periods,
                    r.cpu_throttled_us as f64 / 1e6,
                    pct(limit.ratio),
                    held_for(held_secs)
                ),
                Details::CpuThrottling,
            )
        }
    };
    Finding {
        severity: Severity::Warning,
        node: node.to_string(),
        workload_key: w.clone(),
        title,
        summary,
        time_unix_ns: at,
        evidence: Vec::new(),
        details: details(PressureDetails {
            workload: w.clone(),
            measure: measure.name().into(),
            value,
            threshold: limit.ratio,
            since_unix_ns: held.since_unix_ns,
            held_secs,
            readings,
        }),
        stages: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::IncidentKind;

    fn interval(t_s: i64, working_set_mib: u64, throttled: u64) -> MetricInterval {
        let mut i = crate::synthetic::empty_interval("n", t_s as u64 + 1, t_s * 1_000_000_000);
        i.resources.push(ResourceObservation {
            workload: crate::synthetic::workload("cgroup/app"),
            memory_usage_bytes: working_set_mib << 20,
            memory_working_set_bytes: working_set_mib << 20,
            memory_limit_bytes: Some(100 << 20),
            memory_stall_us: None,
            cpu_stall_us: None,
            io_stall_us: None,
            cpu_periods: 10,
            cpu_throttled_periods: throttled,
            cpu_throttled_us: throttled * 50_000,
        });
        i
    }

    #[test]
    fn memory_held_above_the_limit_is_reported_once_it_held_and_then_every_repeat() {
        let mut rules = PressureRules::new(PressurePolicy::default());
        let mut found = Vec::new();
        for t in 0..=400 {
            found.extend(rules.observe(&interval(t, 90, 0)));
        }
        // Held from t=0: reported at 300 s, again at 360 s.
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_eq!(found[0].kind(), IncidentKind::MemoryPressure);
        assert_eq!(found[0].time_unix_ns, 300 * 1_000_000_000);
        assert!(
            found[0].title.contains("90 % of 100 MiB"),
            "{}",
            found[0].title
        );
        assert_eq!(found[0].severity, Severity::Warning);
    }

    #[test]
    fn a_dip_below_the_limit_starts_the_hold_again() {
        let mut rules = PressureRules::new(PressurePolicy::default());
        let mut found = Vec::new();
        for t in 0..=600 {
            // Dips to 80 % every 200 s: never held for 5 minutes.
            let ws = if t % 200 == 199 { 80 } else { 90 };
            found.extend(rules.observe(&interval(t, ws, 0)));
        }
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn throttling_in_a_quarter_of_periods_for_its_hold_is_reported() {
        let mut rules = PressureRules::new(PressurePolicy::default());
        let light: Vec<_> = (0..100)
            .flat_map(|t| rules.observe(&interval(t, 10, 2)))
            .collect();
        assert!(light.is_empty(), "20 % of periods is below the limit");
        let heavy: Vec<_> = (100..140)
            .flat_map(|t| rules.observe(&interval(t, 10, 6)))
            .collect();
        assert_eq!(heavy.len(), 1);
        assert_eq!(heavy[0].kind(), IncidentKind::CpuThrottling);
        assert!(
            heavy[0].title.contains("60 % of periods"),
            "{}",
            heavy[0].title
        );
    }
}
