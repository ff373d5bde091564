//! A filesystem's fill rate: a least-squares line through its recent (time, used bytes)
//! readings, and when, at that rate, nothing is left.

use std::collections::VecDeque;

/// A fitted fill rate: bytes per second and when, at that rate, nothing is left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    pub bytes_per_s: f64,
    pub seconds_to_full: Option<f64>,
}

/// Least-squares slope of used bytes over time; `None` with fewer than three readings or
/// under two seconds of them.
pub fn trend(readings: &VecDeque<(i64, u64)>, available: u64) -> Option<Trend> {
    let n = readings.len();
    let (first, last) = (readings.front()?.0, readings.back()?.0);
    if n < 3 || last - first < 2_000_000_000 {
        return None;
    }
    let t = |ns: i64| (ns - first) as f64 / 1e9;
    let mean_t = readings.iter().map(|r| t(r.0)).sum::<f64>() / n as f64;
    let mean_u = readings.iter().map(|r| r.1 as f64).sum::<f64>() / n as f64;
    let (mut num, mut den) = (0.0, 0.0);
    for &(ns, used) in readings {
        let dt = t(ns) - mean_t;
        num += dt * (used as f64 - mean_u);
        den += dt * dt;
    }
    if den <= 0.0 {
        return None;
    }
    let bytes_per_s = num / den;
    Some(Trend {
        bytes_per_s,
        seconds_to_full: (bytes_per_s > 0.0).then(|| available as f64 / bytes_per_s),
    })
}
