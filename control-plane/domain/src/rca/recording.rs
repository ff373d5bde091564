//! A recorded case: per-service metric series on one time axis and when the fault began.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Default)]
pub struct Recording {
    /// Unix seconds per row.
    pub time: Vec<f64>,
    /// `<service>_<metric>` → one value per row (NaN: a gap).
    pub columns: BTreeMap<String, Vec<f64>>,
    /// When the fault was injected (Unix seconds).
    pub inject_time: f64,
}

/// The service a `<service>_<metric>` column belongs to.
pub fn service_of(column: &str) -> Option<&str> {
    column
        .split_once('_')
        .map(|(s, _)| s)
        .filter(|s| !s.is_empty())
}

/// The metric's type, shared by every service that reports it: `cart_latency-90` →
/// `latency-90`.
pub fn metric_type(column: &str) -> &str {
    column.split_once('_').map_or(column, |(_, m)| m)
}

impl Recording {
    /// The finite values of `column` before the injection, and those after with their times.
    pub fn split(&self, column: &str) -> (Vec<f64>, Vec<(f64, f64)>) {
        let Some(values) = self.columns.get(column) else {
            return (Vec::new(), Vec::new());
        };
        let mut before = Vec::new();
        let mut after = Vec::new();
        for (t, v) in self.time.iter().zip(values) {
            if !v.is_finite() || !t.is_finite() {
                continue;
            }
            if *t < self.inject_time {
                before.push(*v);
            } else {
                after.push((*t, *v));
            }
        }
        (before, after)
    }

    /// The services of the case, in name order.
    pub fn services(&self) -> BTreeSet<&str> {
        self.columns.keys().filter_map(|c| service_of(c)).collect()
    }
}
