//! The latest resource reading of every workload and filesystem, kept for export (the
//! Prometheus gauges a Grafana panel or an alert rule reads) while they keep reporting.

use std::collections::BTreeMap;

use serde::Serialize;

use super::trend::Trend;
use crate::{
    entity::EntityId,
    interval::{FilesystemObservation, MetricInterval, ResourceObservation},
};

/// A workload's memory and CPU limits, as last read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadResources {
    pub node: String,
    pub workload: EntityId,
    pub memory_working_set_bytes: u64,
    pub memory_limit_bytes: Option<u64>,
    /// Periods the CFS quota ran out in, over all periods of the interval.
    pub throttled_ratio: Option<f64>,
    pub at_unix_ns: i64,
}

/// A filesystem's usage, as last read, with its fill rate over the recent readings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilesystemUsage {
    pub node: String,
    pub mount_point: String,
    pub device: String,
    pub fs_type: String,
    pub size_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
    /// Least-squares slope of used bytes (negative while it frees up).
    pub fill_rate_bytes_per_s: Option<f64>,
    /// At that rate, when nothing is left (only while it grows).
    pub seconds_to_full: Option<f64>,
    pub at_unix_ns: i64,
}

/// Readings older than this are dropped: the workload or mount is gone.
const STALE_NS: i64 = 300 * 1_000_000_000;

#[derive(Debug, Default)]
pub struct Latest {
    workloads: BTreeMap<(String, EntityId), WorkloadResources>,
    filesystems: BTreeMap<(String, String), FilesystemUsage>,
}

impl Latest {
    pub fn workload(&mut self, node: &str, r: &ResourceObservation, at: i64) {
        self.workloads.insert(
            (node.to_string(), r.workload.key.clone()),
            WorkloadResources {
                node: node.to_string(),
                workload: r.workload.key.clone(),
                memory_working_set_bytes: r.memory_working_set_bytes,
                memory_limit_bytes: r.memory_limit_bytes.filter(|&l| l > 0),
                throttled_ratio: r.throttled_ratio(),
                at_unix_ns: at,
            },
        );
    }

    /// `fitted`: the fill rate the disk rules fitted to its recent readings.
    pub fn filesystem(
        &mut self,
        node: &str,
        f: &FilesystemObservation,
        fitted: Option<Trend>,
        at: i64,
    ) {
        self.filesystems.insert(
            (node.to_string(), f.device.clone()),
            FilesystemUsage {
                node: node.to_string(),
                mount_point: f.mount_point.clone(),
                device: f.device.clone(),
                fs_type: f.fs_type.clone(),
                size_bytes: f.size_bytes,
                used_bytes: f.used_bytes,
                available_bytes: f.available_bytes,
                fill_rate_bytes_per_s: fitted.map(|t| t.bytes_per_s),
                seconds_to_full: fitted.and_then(|t| t.seconds_to_full),
                at_unix_ns: at,
            },
        );
    }

    pub fn prune(&mut self, interval: &MetricInterval) {
        let now = interval.end_unix_ns;
        self.workloads.retain(|_, w| now - w.at_unix_ns <= STALE_NS);
        self.filesystems
            .retain(|_, f| now - f.at_unix_ns <= STALE_NS);
    }

    pub fn workloads(&self) -> Vec<WorkloadResources> {
        self.workloads.values().cloned().collect()
    }

    pub fn filesystems(&self) -> Vec<FilesystemUsage> {
        self.filesystems.values().cloned().collect()
    }
}
