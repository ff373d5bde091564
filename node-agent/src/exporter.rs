//! The agent's own Prometheus endpoint (`GET /metrics`, OpenMetrics text): what it read from
//! the kernel, what it lost and where, whether each probe is attached, and how the stream to
//! the control plane is doing. Values are read from the counters the pipeline already keeps,
//! at scrape time.

use std::{
    net::SocketAddr,
    sync::{atomic::Ordering, Arc},
};

use axum::{extract::State, http::header, response::IntoResponse, routing::get, Router};
use prometheus_client::{
    collector::Collector,
    encoding::{text, DescriptorEncoder, EncodeMetric},
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::ConstGauge,
        MetricType,
    },
    registry::Registry,
};
use tokio::net::TcpListener;
use tracing::{error, info};

use crate::{
    governor::{shed::STEPS, Degraded},
    kernel::{probes::ProbeStatus, reader::ReaderStats},
    metrics::queue::MetricQueue,
    stream::{buffer::EventBuffer, shipper::ShipperState},
};

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Events by kind, counted as they are attributed.
pub type EventCounter = Family<[(&'static str, &'static str); 1], Counter>;

/// What the scrape reads.
pub struct Sources {
    pub node: String,
    pub reader: Arc<ReaderStats>,
    pub events: Arc<EventBuffer>,
    pub intervals: Arc<MetricQueue>,
    pub shipper: Arc<ShipperState>,
    pub probes: Vec<ProbeStatus>,
    pub degraded: Arc<Degraded>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sources")
    }
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for Sources {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let r = &self.reader;
        counter(
            &mut enc,
            "ring_buffer_read_events",
            "Records read from the kernel ring buffer",
            r.events_read.load(Ordering::Relaxed),
        )?;
        let mut dropped = enc.encode_descriptor(
            "dropped_events",
            "Events lost, by where: kernel (ring buffer full), buffer (queue to the control plane full), malformed (undecodable record)",
            None,
            MetricType::Counter,
        )?;
        for (reason, v) in [
            ("kernel", r.kernel_dropped.load(Ordering::Relaxed)),
            ("buffer", self.events.dropped()),
            ("malformed", r.malformed.load(Ordering::Relaxed)),
        ] {
            ConstCounter::new(v).encode(dropped.encode_family(&[("reason", reason)])?)?;
        }
        counter(
            &mut enc,
            "dropped_metric_intervals",
            "Metric intervals dropped while the control plane was unreachable",
            self.intervals.dropped(),
        )?;
        gauge(
            &mut enc,
            "buffered_events",
            "Events waiting to be sent to the control plane",
            i64::try_from(self.events.len()).unwrap_or(i64::MAX),
        )?;
        counter(
            &mut enc,
            "rejected_events",
            "Events the control plane refused as invalid",
            self.shipper.rejected.load(Ordering::Relaxed),
        )?;
        gauge(
            &mut enc,
            "control_plane_connected",
            "1 while the event stream to the control plane is up",
            i64::from(self.shipper.connected.load(Ordering::Relaxed)),
        )?;
        let mut up = enc.encode_descriptor(
            "probe_up",
            "1 when the probe (its attach point, in its group) attached at start, 0 when the kernel refused it or it is disabled (groups shed under the budget since: telemetry_shed)",
            None,
            MetricType::Gauge,
        )?;
        for p in &self.probes {
            // The group too: one attach point can serve two groups (sched_switch for syscalls
            // and the run queue, the cgroup_skb hooks for flows and requests).
            let group = format!("{:?}", p.group).to_lowercase();
            ConstGauge::new(i64::from(p.error.is_none())).encode(
                up.encode_family(&[("probe", p.name.as_str()), ("group", group.as_str())])?,
            )?;
        }
        self.encode_budget(&mut enc)?;
        let mut info = enc.encode_descriptor(
            "build_info",
            "The agent's version and node (always 1)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1i64).encode(info.encode_family(&[
            ("version", env!("CARGO_PKG_VERSION")),
            ("node", self.node.as_str()),
        ])?)?;
        Ok(())
    }
}

impl Sources {
    /// The agent's own cost and the telemetry it shed to stay within its budget.
    fn encode_budget(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        let mode = self.degraded.mode();
        let cpu = ConstGauge::new(mode.cpu_percent);
        cpu.encode(enc.encode_descriptor(
            "cpu_usage_percent",
            "The agent's own CPU time over its last budget check, in percent of one core",
            None,
            cpu.metric_type(),
        )?)?;
        gauge(
            enc,
            "resident_memory_bytes",
            "The agent's resident memory at its last budget check",
            i64::try_from(mode.rss_bytes).unwrap_or(i64::MAX),
        )?;
        let mut shed = enc.encode_descriptor(
            "telemetry_shed",
            "1 while a shed step is in force (payload, latency, requests: the order the agent sheds them in when over its budget)",
            None,
            MetricType::Gauge,
        )?;
        for step in STEPS {
            let on = mode.shed.iter().any(|s| s == step.name);
            ConstGauge::new(i64::from(on)).encode(shed.encode_family(&[("step", step.name)])?)?;
        }
        let mut degraded = enc.encode_descriptor(
            "degraded",
            "1 while the agent sheds telemetry, labelled by the budget exceeded (cpu, memory, drops)",
            None,
            MetricType::Gauge,
        )?;
        for cause in ["cpu", "memory", "drops"] {
            let on = mode.cause_kind == Some(cause);
            ConstGauge::new(i64::from(on)).encode(degraded.encode_family(&[("cause", cause)])?)?;
        }
        counter(
            enc,
            "budget_changes",
            "Shed and restore steps taken since start",
            mode.changes,
        )
    }
}

/// The registry behind `/metrics`.
pub struct Exporter {
    registry: Registry,
}

impl Exporter {
    pub fn new(events: EventCounter, sources: Sources) -> Self {
        let mut registry = Registry::with_prefix("vigil_agent");
        registry.register(
            "events",
            "Kernel events attributed and queued for the control plane, by kind",
            events,
        );
        registry.register_collector(Box::new(sources));
        Self { registry }
    }

    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

async fn scrape(State(exporter): State<Arc<Exporter>>) -> axum::response::Response {
    match exporter.encode() {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(e) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the metrics failed: {e}"),
        )
            .into_response(),
    }
}

/// Binds `listen` and serves `/metrics` (and `/healthz`) in the background.
pub async fn serve(listen: SocketAddr, exporter: Arc<Exporter>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(listen).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(exporter);
    info!(addr = %bound, "serving Prometheus metrics on /metrics");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            error!(error = %e, "the metrics endpoint stopped");
        }
    });
    Ok(bound)
}
