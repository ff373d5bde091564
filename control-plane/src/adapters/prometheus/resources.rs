//! Resource state read at scrape time: filesystem usage with its projected time to full,
//! workloads' memory and CPU-quota readings, and the certificates endpoints serve — what an
//! alert rule or a Grafana panel needs before the incident does.

use std::sync::Arc;

use prometheus_client::{
    collector::Collector,
    encoding::DescriptorEncoder,
    metrics::{gauge::ConstGauge, MetricType},
    registry::Unit,
};

use super::{family, Labels};
use crate::domain::{certs::service::CertificateService, pressure::PressureService};

pub struct ResourceState {
    pub pressure: Arc<PressureService>,
    pub certificates: Option<Arc<CertificateService>>,
}

impl std::fmt::Debug for ResourceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResourceState")
    }
}

impl Collector for ResourceState {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let filesystems = self.pressure.filesystems();
        let fs_labels = |f: &crate::domain::pressure::latest::FilesystemUsage| -> Labels {
            vec![
                ("node", f.node.clone()),
                ("mountpoint", f.mount_point.clone()),
                ("device", f.device.clone()),
                ("fstype", f.fs_type.clone()),
            ]
        };
        for (name, help, pick) in [
            (
                "filesystem_size",
                "Size of a node's data filesystem",
                (|f| f.size_bytes) as fn(&crate::domain::pressure::latest::FilesystemUsage) -> u64,
            ),
            ("filesystem_used", "Bytes used on the filesystem", |f| {
                f.used_bytes
            }),
            (
                "filesystem_available",
                "Bytes available to unprivileged writers",
                |f| f.available_bytes,
            ),
        ] {
            family(
                &mut encoder,
                name,
                help,
                Some(&Unit::Bytes),
                MetricType::Gauge,
                filesystems
                    .iter()
                    .map(|f| (fs_labels(f), ConstGauge::new(pick(f) as f64))),
            )?;
        }
        family(
            &mut encoder,
            "filesystem_full_in",
            "At the recent fill rate (least squares over the trend window), time until nothing is left; absent while it is not growing",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            filesystems.iter().filter_map(|f| {
                f.seconds_to_full
                    .map(|s| (fs_labels(f), ConstGauge::new(s)))
            }),
        )?;

        let workloads = self.pressure.workloads();
        let workload = |w: &crate::domain::pressure::latest::WorkloadResources| -> Labels {
            vec![
                ("node", w.node.clone()),
                ("workload", w.workload.to_string()),
            ]
        };
        family(
            &mut encoder,
            "workload_memory_working_set",
            "Memory a workload's cgroup holds that cannot be reclaimed easily (usage less inactive file)",
            Some(&Unit::Bytes),
            MetricType::Gauge,
            workloads
                .iter()
                .map(|w| (workload(w), ConstGauge::new(w.memory_working_set_bytes as f64))),
        )?;
        family(
            &mut encoder,
            "workload_memory_limit",
            "A workload's cgroup memory limit (absent when unlimited)",
            Some(&Unit::Bytes),
            MetricType::Gauge,
            workloads.iter().filter_map(|w| {
                w.memory_limit_bytes
                    .map(|l| (workload(w), ConstGauge::new(l as f64)))
            }),
        )?;
        family(
            &mut encoder,
            "workload_cpu_throttled_ratio",
            "Share of CFS periods in the last interval in which the workload's CPU quota ran out",
            None,
            MetricType::Gauge,
            workloads
                .iter()
                .filter_map(|w| w.throttled_ratio.map(|r| (workload(w), ConstGauge::new(r)))),
        )?;

        let Some(certs) = &self.certificates else {
            return Ok(());
        };
        let served = certs.certificates();
        let cert_labels = |c: &crate::domain::certs::model::ServedCertificate| -> Labels {
            vec![
                ("endpoint", c.endpoint.clone()),
                ("server", c.server.to_string()),
                ("subject", c.subject.clone()),
                ("issuer", c.issuer.clone()),
            ]
        };
        family(
            &mut encoder,
            "certificate_not_after_timestamp",
            "End of validity of the leaf certificate the endpoint served at its last check (alert on this minus time())",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            served
                .iter()
                .map(|c| (cert_labels(c), ConstGauge::new(c.not_after_unix as f64))),
        )?;
        family(
            &mut encoder,
            "certificate_checked_timestamp",
            "When the endpoint's certificate was last read",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            served.iter().map(|c| {
                (
                    cert_labels(c),
                    ConstGauge::new(c.checked_unix_ns as f64 / 1e9),
                )
            }),
        )
    }
}
