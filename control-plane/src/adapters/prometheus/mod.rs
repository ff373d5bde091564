//! Prometheus exposition (`GET /metrics`, OpenMetrics text) of what the control plane does
//! and knows.
//!
//! Two sources: counters and histograms updated as things happen (the `Observer` calls), and
//! state read from the stores at scrape time (open incidents, the agents' own counters, the
//! service graph), so a restarted control plane reports the truth, not zeros.
//!
//! Names follow Prometheus conventions: `vigil_` prefix, `_total` on counters, the unit in
//! the name (`_seconds`).

mod resources;

use std::sync::Arc;

use prometheus_client::{
    collector::Collector,
    encoding::{text, DescriptorEncoder, EncodeMetric},
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::{ConstGauge, Gauge},
        histogram::{exponential_buckets, Histogram},
        MetricType,
    },
    registry::{Registry, Unit},
};
use tracing::warn;
use vigil_config_file::error_chain as chain;

use crate::domain::{
    clock::Clock,
    diagnose::Diagnosis,
    entity::EntityId,
    graph::{LiveGraph, RequestSummary},
    incident::{
        ports::{IncidentChange, IncidentQuery, IncidentStore},
        Incident, IncidentKind, Severity,
    },
    interval::Protocol,
    node::ports::NodeStore,
    observe::{EntityScore, Observer},
    remediate::{ActionRecord, ActionState},
};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

pub struct PrometheusExporter {
    registry: Registry,
    events: Family<Labels, Counter>,
    intervals: Family<Labels, Counter>,
    opened: Family<Labels, Counter>,
    resolved: Family<Labels, Counter>,
    reopened: Family<Labels, Counter>,
    detection_latency: Family<Labels, Histogram>,
    anomaly_z: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    forest_score: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    diagnoses: Family<Labels, Counter>,
    diagnosis_duration: Histogram,
    actions: Family<Labels, Counter>,
    refused: Family<Labels, Counter>,
    gaps: Family<Labels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 50 ms … ~7 min: a kernel event arrives in milliseconds, an anomaly after windows.
    Histogram::new(exponential_buckets(0.05, 2.0, 14))
}

impl PrometheusExporter {
    pub fn new(
        incidents: Arc<dyn IncidentStore>,
        nodes: Arc<dyn NodeStore>,
        graph: Arc<LiveGraph>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let mut registry = Registry::with_prefix("vigil");
        let events = Family::<Labels, Counter>::default();
        registry.register(
            "ingest_events",
            "Kernel events stored, by node and kind",
            events.clone(),
        );
        let intervals = Family::<Labels, Counter>::default();
        registry.register(
            "ingest_metric_intervals",
            "Metric intervals (aggregated flows, latencies, errors) stored, by node",
            intervals.clone(),
        );
        let opened = Family::<Labels, Counter>::default();
        registry.register(
            "incidents_opened",
            "Incidents opened, by kind (fault class) and severity",
            opened.clone(),
        );
        let resolved = Family::<Labels, Counter>::default();
        registry.register(
            "incidents_resolved",
            "Incidents resolved, by kind and severity",
            resolved.clone(),
        );
        let reopened = Family::<Labels, Counter>::default();
        registry.register(
            "incidents_reopened",
            "Incidents reopened by a recurrence within their cooldown, by kind",
            reopened.clone(),
        );
        let detection_latency =
            Family::<Labels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register_with_unit(
            "detection_latency",
            "From the first evidence (kernel event, first anomalous window) to the incident",
            Unit::Seconds,
            detection_latency.clone(),
        );
        let anomaly_z = Family::default();
        registry.register(
            "anomaly_score",
            "Largest robust z-score of an entity's features in the last judged window",
            anomaly_z.clone(),
        );
        let forest_score = Family::default();
        registry.register(
            "anomaly_forest_score",
            "Extended isolation forest score (0.5 ordinary, towards 1 isolated) of an entity",
            forest_score.clone(),
        );
        let diagnoses = Family::<Labels, Counter>::default();
        registry.register(
            "diagnoses",
            "Diagnoses whose verdict is new or changed, by fault class and route (remediation or review)",
            diagnoses.clone(),
        );
        // 1 ms … ~16 s: the evidence tools read the store.
        let diagnosis_duration = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register_with_unit(
            "diagnosis_duration",
            "Time to gather an incident's evidence and decide its class",
            Unit::Seconds,
            diagnosis_duration.clone(),
        );
        let actions = Family::<Labels, Counter>::default();
        registry.register(
            "remediation_actions",
            "Remediation actions by class and how they ended (observed, refused, denied, expired, recovered, escalated, rolled_back, failed; a runtime that refused before acting counts as failed): each class's record",
            actions.clone(),
        );
        let refused = Family::<Labels, Counter>::default();
        registry.register(
            "ingest_refused",
            "Agent connections and batches refused before ingest, by reason: tls_handshake (no client certificate, one from another CA, or a handshake not finished in time), identity (a batch for a node the certificate does not name)",
            refused.clone(),
        );
        let gaps = Family::<Labels, Counter>::default();
        registry.register(
            "ingest_sequence_gap_events",
            "Events a node's agent numbered or held but never delivered (lost, e.g. the agent killed with them in flight), by node",
            gaps.clone(),
        );
        registry.register_collector(Box::new(StoreState {
            incidents,
            nodes,
            graph,
            clock,
        }));
        Self {
            registry,
            events,
            intervals,
            opened,
            resolved,
            reopened,
            detection_latency,
            anomaly_z,
            forest_score,
            diagnoses,
            diagnosis_duration,
            actions,
            refused,
            gaps,
        }
    }

    /// Also exports filesystem usage, workloads' limits and, when checked, certificates.
    pub fn with_resources(
        mut self,
        pressure: Arc<crate::domain::pressure::PressureService>,
        certificates: Option<Arc<crate::domain::certs::service::CertificateService>>,
    ) -> Self {
        self.registry
            .register_collector(Box::new(resources::ResourceState {
                pressure,
                certificates,
            }));
        self
    }

    /// Counts an agent connection or batch refused before ingest, for `reason`.
    pub fn ingest_refused(&self, reason: &'static str) {
        self.refused
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

    /// The exposition, OpenMetrics text.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl Observer for PrometheusExporter {
    fn incident(&self, change: &IncidentChange) {
        let incident = change.incident();
        let labels = vec![
            ("kind", incident.kind.as_str().to_string()),
            ("severity", incident.severity.as_str().to_string()),
        ];
        match change {
            IncidentChange::Opened { finding, .. } => {
                self.opened.get_or_create(&labels).inc();
                if let Some(secs) = finding.detection_seconds() {
                    self.detection_latency
                        .get_or_create(&vec![("kind", incident.kind.as_str().to_string())])
                        .observe(secs);
                }
            }
            IncidentChange::Resolved(_) => {
                self.resolved.get_or_create(&labels).inc();
            }
            IncidentChange::Reopened(_) => {
                self.reopened
                    .get_or_create(&vec![("kind", incident.kind.as_str().to_string())])
                    .inc();
            }
            IncidentChange::Updated(_) => {}
        }
    }

    fn events_ingested(&self, node: &str, kind: &str, count: u64) {
        self.events
            .get_or_create(&vec![
                ("node", node.to_string()),
                ("kind", kind.to_string()),
            ])
            .inc_by(count);
    }

    fn sequence_gap(&self, node: &str, missing: u64) {
        self.gaps
            .get_or_create(&vec![("node", node.to_string())])
            .inc_by(missing);
    }

    fn intervals_ingested(&self, node: &str, count: u64) {
        self.intervals
            .get_or_create(&vec![("node", node.to_string())])
            .inc_by(count);
    }

    fn anomaly_scores(&self, scores: &[EntityScore]) {
        if scores.is_empty() {
            return;
        }
        // Only the entities judged now: gone ones must not report their last score forever.
        self.anomaly_z.clear();
        self.forest_score.clear();
        for s in scores {
            let labels = vec![
                ("entity", s.entity.to_string()),
                ("class", s.entity.class().as_str().to_string()),
            ];
            self.anomaly_z.get_or_create(&labels).set(s.max_z);
            if let Some(f) = s.forest {
                self.forest_score.get_or_create(&labels).set(f);
            }
        }
    }

    fn diagnosed(&self, _incident: &Incident, d: &Diagnosis, took_secs: f64) {
        self.diagnoses
            .get_or_create(&vec![
                (
                    "fault_class",
                    d.class.map_or("none", |c| c.id()).to_string(),
                ),
                ("route", d.route.as_str().to_string()),
            ])
            .inc();
        self.diagnosis_duration.observe(took_secs);
    }

    /// Counted once, when an action reaches the state it ends in.
    fn action(&self, r: &ActionRecord) {
        if matches!(
            r.state,
            ActionState::PendingApproval | ActionState::Verifying
        ) {
            return;
        }
        self.actions
            .get_or_create(&vec![
                ("class", r.request.class.as_str().to_string()),
                ("state", r.state.as_str().to_string()),
            ])
            .inc();
    }
}

/// State read at scrape time.
struct StoreState {
    incidents: Arc<dyn IncidentStore>,
    nodes: Arc<dyn NodeStore>,
    graph: Arc<LiveGraph>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for StoreState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreState")
    }
}

/// One metric with a row per label set.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    rows: impl IntoIterator<Item = (Labels, M)>,
) -> std::fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, unit, kind)?;
    for (labels, value) in rows {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for StoreState {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let open = self
            .incidents
            .list(&IncidentQuery::open(usize::MAX))
            .unwrap_or_else(|e| {
                warn!(error = %chain(&e), "metrics: listing open incidents failed");
                Vec::new()
            });
        // Every class, zero included: "nothing open" is a value, not a missing series.
        let mut by_class: std::collections::BTreeMap<(&str, &str), i64> = IncidentKind::ALL
            .iter()
            .flat_map(|k| Severity::ALL.iter().map(|s| ((k.as_str(), s.as_str()), 0)))
            .collect();
        for i in &open {
            *by_class
                .entry((i.kind.as_str(), i.severity.as_str()))
                .or_default() += 1;
        }
        family(
            &mut encoder,
            "incidents_open",
            "Incidents open now, by kind and severity",
            None,
            MetricType::Gauge,
            by_class.into_iter().map(|((k, s), n)| {
                (
                    vec![("kind", k.to_string()), ("severity", s.to_string())],
                    ConstGauge::new(n),
                )
            }),
        )?;

        let nodes = self.nodes.list_nodes().unwrap_or_else(|e| {
            warn!(error = %chain(&e), "metrics: listing nodes failed");
            Vec::new()
        });
        let node = |n: &str| vec![("node", n.to_string())];
        family(
            &mut encoder,
            "node_agent_events_read",
            "Events the node's agent read from its ring buffer (as it last reported)",
            None,
            MetricType::Counter,
            nodes
                .iter()
                .map(|n| (node(&n.name), ConstCounter::new(n.stats.events_read))),
        )?;
        family(
            &mut encoder,
            "node_dropped_events",
            "Events an agent lost, by where: kernel (ring buffer full), buffer (agent's queue full), malformed",
            None,
            MetricType::Counter,
            nodes.iter().flat_map(|n| {
                n.stats.losses().map(|(reason, v)| {
                    (
                        vec![("node", n.name.clone()), ("reason", reason.to_string())],
                        ConstCounter::new(v),
                    )
                })
            }),
        )?;
        family(
            &mut encoder,
            "node_degraded",
            "1 while the node's agent sheds telemetry to stay within its budget (its evidence alone is not acted on without an approval)",
            None,
            MetricType::Gauge,
            nodes.iter().map(|n| {
                (
                    node(&n.name),
                    ConstGauge::new(i64::from(n.stats.is_degraded())),
                )
            }),
        )?;
        family(
            &mut encoder,
            "node_probe_up",
            "1 when the probe is attached on the node, 0 when it failed or is disabled",
            None,
            MetricType::Gauge,
            nodes.iter().flat_map(|n| {
                n.probes.iter().map(|(probe, error)| {
                    (
                        vec![("node", n.name.clone()), ("probe", probe.clone())],
                        ConstGauge::new(i64::from(error.is_empty())),
                    )
                })
            }),
        )?;
        family(
            &mut encoder,
            "node_last_seen_timestamp",
            "When the node's agent last reported",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            nodes.iter().map(|n| {
                (
                    vec![
                        ("node", n.name.clone()),
                        ("agent_version", n.agent_version.clone()),
                        ("kernel", n.kernel_release.clone()),
                    ],
                    ConstGauge::new(n.last_seen_unix_ns as f64 / 1e9),
                )
            }),
        )?;

        let graph = self.graph.snapshot(self.clock.now_unix_ns());
        family(
            &mut encoder,
            "graph_node_info",
            "Entities of the service graph (1 per entity), for Grafana's node graph",
            None,
            MetricType::Gauge,
            graph.nodes.iter().map(|e| {
                (
                    vec![
                        ("id", e.id.to_string()),
                        ("kind", e.kind.as_str().to_string()),
                    ],
                    ConstGauge::new(1i64),
                )
            }),
        )?;
        let edge = |from: &EntityId, to: &EntityId| {
            vec![("client", from.to_string()), ("server", to.to_string())]
        };
        family(
            &mut encoder,
            "graph_edge_connections",
            "Connections opened from client to server",
            None,
            MetricType::Counter,
            graph
                .edges
                .iter()
                .map(|e| (edge(&e.from, &e.to), ConstCounter::new(e.connections))),
        )?;
        family(
            &mut encoder,
            "graph_edge_failed_connects",
            "Connection attempts from client to server that failed",
            None,
            MetricType::Counter,
            graph
                .edges
                .iter()
                .map(|e| (edge(&e.from, &e.to), ConstCounter::new(e.failed_connects))),
        )?;
        family(
            &mut encoder,
            "graph_edge_retransmits",
            "TCP segments retransmitted on the edge",
            None,
            MetricType::Counter,
            graph
                .edges
                .iter()
                .map(|e| (edge(&e.from, &e.to), ConstCounter::new(e.retransmits))),
        )?;
        family(
            &mut encoder,
            "graph_edge_rtt",
            "Recent mean smoothed TCP round-trip time of the edge",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            graph.edges.iter().filter_map(|e| {
                e.recent_rtt_us
                    .or(e.rtt_us)
                    .map(|us| (edge(&e.from, &e.to), ConstGauge::new(us / 1e6)))
            }),
        )?;
        // Request-level figures of the recent window, for edges whose protocol the kernel
        // parsed (HTTP/1.x, Redis, PostgreSQL), from the client's side.
        let requests = |pick: fn(&RequestSummary) -> Option<f64>| {
            graph.edges.iter().filter_map(move |e| {
                let r = e.requests.as_ref()?;
                let mut labels = edge(&e.from, &e.to);
                labels.push(("protocol", protocol_label(r.protocol).to_string()));
                pick(r).map(|v| (labels, ConstGauge::new(v)))
            })
        };
        for (name, help, unit, pick) in [
            (
                "graph_edge_requests_per_second",
                "Recent requests per second from client to server",
                None,
                (|r| Some(r.requests_per_s)) as fn(&RequestSummary) -> Option<f64>,
            ),
            (
                "graph_edge_request_error_ratio",
                "Recent share of replies that failed the request (HTTP 5xx, Redis and PostgreSQL errors)",
                None,
                |r| Some(r.error_ratio),
            ),
            (
                "graph_edge_request_client_error_ratio",
                "Recent share of HTTP replies that were 4xx",
                None,
                |r| Some(r.client_error_ratio),
            ),
            (
                "graph_edge_requests_unanswered",
                "Recent requests that timed out or were cut off by a close",
                None,
                |r| Some(r.unanswered as f64),
            ),
            (
                "graph_edge_request_p99",
                "Recent 99th percentile of request latency (upper bound of its log2 bucket)",
                Some(&Unit::Seconds),
                |r| r.p99_ms.map(|ms| ms / 1e3),
            ),
        ] {
            family(
                &mut encoder,
                name,
                help,
                unit,
                MetricType::Gauge,
                requests(pick),
            )?;
        }
        Ok(())
    }
}

fn protocol_label(p: Protocol) -> &'static str {
    match p {
        Protocol::Http1 => "http1",
        Protocol::Redis => "redis",
        Protocol::Postgres => "postgres",
        Protocol::Http2 => "http2",
        Protocol::Unknown => "unknown",
    }
}
