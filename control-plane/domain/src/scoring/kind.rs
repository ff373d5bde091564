//! What a metric measures decides how its noise behaves, so each kind is judged on the scale
//! where its noise is roughly constant (a variance-stabilizing transform):
//!
//! - a count per interval (requests, connections, syscalls, errors) is near Poisson: its
//!   spread grows with the square root of its level, and Anscombe's `2·√(x + 3/8)` makes that
//!   spread about 1 whatever the level, so going from 0 to 1 is a step of about one σ, not
//!   the thousand σ a fixed absolute floor makes of it;
//! - a latency is multiplicative (a slow path doubles it; a quiet hour halves its spread
//!   with its level), so it is judged on its logarithm, where 20 ms → 40 ms and 2 s → 4 s are
//!   the same change;
//! - a ratio (an error share, a percentage of a limit) lives in [0, 1]; `asin(√x)` evens out
//!   its binomial spread, which is narrowest near 0 and 1;
//! - a level (CPU in use, bytes of memory, a queue length) is multiplicative too (memory that
//!   grows from 500 MB to 1 GB moved as much as one that grows from 5 to 10 GB), but may sit
//!   near 0 (an idle service's CPU): `ln(1 + x)` is its logarithm when large and the value
//!   itself near 0.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    Count,
    Latency,
    Ratio,
    Level,
}

/// Words that name a latency, a count, a ratio; checked in that order, on the metric's name
/// split at `_`, `-`, `.` and `:`.
const LATENCY: &[&str] = &[
    "latency", "lat", "duration", "delay", "rtt", "p50", "p90", "p95", "p99", "ns", "us", "ms",
    "seconds", "time", "wait", "lag", "response",
];
const RATIO: &[&str] = &[
    "ratio",
    "share",
    "fraction",
    "percent",
    "pct",
    "utilization",
    "utilisation",
    "util",
];
const COUNT: &[&str] = &[
    "count",
    "total",
    "requests",
    "request",
    "req",
    "rps",
    "qps",
    "tps",
    "calls",
    "errors",
    "error",
    "connections",
    "conns",
    "syscall",
    "retransmits",
    "resets",
    "drops",
    "workload",
    "packets",
    "events",
    "failures",
    "restarts",
    "kills",
    "ops",
];

impl MetricKind {
    /// The kind a metric's name says it is; a level when the name says nothing.
    pub fn of_name(name: &str) -> Self {
        let lower = name.to_ascii_lowercase();
        let words: Vec<&str> = lower
            .split(['_', '-', '.', ':', '/', ' '])
            .filter(|w| !w.is_empty())
            .collect();
        let has = |set: &[&str]| words.iter().any(|w| set.contains(w));
        // "cpu seconds" is a level of CPU use, not a latency.
        let cpu = words.contains(&"cpu");
        if has(RATIO) {
            MetricKind::Ratio
        } else if has(LATENCY) && !cpu {
            MetricKind::Latency
        } else if has(COUNT) {
            MetricKind::Count
        } else {
            MetricKind::Level
        }
    }

    /// `x` on the scale where this kind's noise is about even.
    pub fn transform(self, x: f64) -> f64 {
        match self {
            MetricKind::Count => 2.0 * (x.max(0.0) + 0.375).sqrt(),
            // ln(1 + x): the log for any real latency, and 0 → 0 for windows without one.
            MetricKind::Latency => x.max(0.0).ln_1p(),
            MetricKind::Ratio => {
                // Percentages come as 0–100 in many exports.
                let r = if x > 1.0 { x / 100.0 } else { x };
                r.clamp(0.0, 1.0).sqrt().asin()
            }
            MetricKind::Level => {
                if x >= 0.0 {
                    x.ln_1p()
                } else {
                    // A level that can be negative (a delta, a temperature) stays linear.
                    x
                }
            }
        }
    }

    /// The spread below which no change of this kind is told from noise, on its transformed
    /// scale, when neither the metric nor its peers show one: one Poisson σ for a count, a
    /// 5 % change for a latency, a point in a hundred for a ratio, a 1 % change for a level
    /// (a hundredth near 0). Recorded runs of the same service differ by that much on their
    /// own: memory that settles a few pages apart, a latency a few percent apart.
    pub fn natural_floor(self) -> f64 {
        match self {
            MetricKind::Count => 1.0,
            MetricKind::Latency => 1.05f64.ln(),
            MetricKind::Ratio => 0.01,
            MetricKind::Level => 1.01f64.ln(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_say_the_kind() {
        use MetricKind::*;
        for (name, kind) in [
            ("cartservice_latency-90", Latency),
            ("request_p99_us", Latency),
            ("block_io-mean-ns", Latency),
            ("syscall-openat-errors", Count),
            ("requests_per_s", Count),
            ("error_ratio", Ratio),
            ("memory_percent", Ratio),
            ("cpu_seconds", Level),
            ("mem", Level),
            ("cartservice_workload", Count),
        ] {
            assert_eq!(MetricKind::of_name(name), kind, "{name}");
        }
    }

    #[test]
    fn a_count_step_from_nothing_is_about_one_unit_at_any_level() {
        let k = MetricKind::Count;
        let from_zero = k.transform(1.0) - k.transform(0.0);
        assert!((0.9..1.3).contains(&from_zero), "{from_zero}");
        // The Poisson σ at 10 000 (100) is about one unit too.
        let at_level = k.transform(10_100.0) - k.transform(10_000.0);
        assert!((0.9..1.1).contains(&at_level), "{at_level}");
    }

    #[test]
    fn a_doubled_latency_is_the_same_step_at_any_level() {
        let k = MetricKind::Latency;
        let fast = k.transform(40_000.0) - k.transform(20_000.0);
        let slow = k.transform(4e6) - k.transform(2e6);
        assert!((fast - slow).abs() < 1e-3, "{fast} {slow}");
    }
}
