//! OpenTelemetry export (OTLP over gRPC or HTTP/protobuf, `opentelemetry-otlp`): the same
//! facts as `/metrics`, pushed to a collector, and one trace per incident whose spans are the
//! pipeline stages that produced it (detect, correlate, localize, … as the finding recorded
//! them), plus a `diagnose` span for each diagnosis and a `resolve` span when it resolves.
//!
//! Metric names follow OpenTelemetry's conventions (dotted, unit as metadata): a collector's
//! Prometheus exporter turns `vigil.incidents.opened` into `vigil_incidents_opened_total`,
//! the name `/metrics` serves, so one set of dashboards reads either path.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use opentelemetry::{
    metrics::{Counter, Gauge, Histogram, MeterProvider as _},
    trace::{SpanContext, SpanKind, TraceContextExt, Tracer as _, TracerProvider as _},
    Context, KeyValue,
};
use opentelemetry_otlp::{MetricExporter, SpanExporter, WithExportConfig};
use opentelemetry_sdk::{
    metrics::{PeriodicReader, SdkMeterProvider},
    trace::{SdkTracer, SdkTracerProvider},
    Resource,
};
use tracing::{info, warn};

use crate::{
    config::{OtlpConfig, OtlpProtocol},
    domain::{
        diagnose::Diagnosis,
        incident::{ports::IncidentChange, stage::StageValue, Incident, IncidentId, Stage},
        node::ports::NodeStore,
        observe::{EntityScore, Observer},
    },
};

#[derive(Debug, thiserror::Error)]
#[error("cannot build the OTLP {signal} exporter for {endpoint} (check `otlp.endpoint` and `otlp.protocol`)")]
pub struct OtlpError {
    signal: &'static str,
    endpoint: String,
    #[source]
    source: opentelemetry_otlp::ExporterBuildError,
}

/// Roots of incident traces still open, so a resolution joins its incident's trace.
const MAX_OPEN_TRACES: usize = 10_000;

pub struct OtlpExporter {
    meters: SdkMeterProvider,
    tracers: SdkTracerProvider,
    tracer: SdkTracer,
    opened: Counter<u64>,
    resolved: Counter<u64>,
    detection_latency: Histogram<f64>,
    events: Counter<u64>,
    intervals: Counter<u64>,
    anomaly: Gauge<f64>,
    forest: Gauge<f64>,
    diagnoses: Counter<u64>,
    diagnosis_duration: Histogram<f64>,
    traces: Mutex<HashMap<IncidentId, SpanContext>>,
}

fn time(unix_ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(unix_ns).unwrap_or(0))
}

/// A stage's conclusion → OTel attribute.
fn attribute(key: &str, v: &StageValue) -> KeyValue {
    let key = format!("vigil.{key}");
    match v {
        StageValue::Bool(b) => KeyValue::new(key, *b),
        StageValue::Int(i) => KeyValue::new(key, *i),
        StageValue::Float(f) => KeyValue::new(key, *f),
        StageValue::Text(s) => KeyValue::new(key, s.clone()),
    }
}

fn incident_attributes(i: &Incident) -> Vec<KeyValue> {
    vec![
        KeyValue::new("vigil.incident.id", i.id.0),
        KeyValue::new("vigil.incident.kind", i.kind.as_str()),
        KeyValue::new("vigil.incident.severity", i.severity.as_str()),
        KeyValue::new("vigil.incident.title", i.title.clone()),
        KeyValue::new("vigil.root_cause", i.workload_key.to_string()),
        KeyValue::new("vigil.node", i.node.clone()),
    ]
}

impl OtlpExporter {
    /// Builds the exporters; must run inside the Tokio runtime (the gRPC client lives on it).
    pub fn start(config: &OtlpConfig, nodes: Arc<dyn NodeStore>) -> Result<Self, OtlpError> {
        let timeout = Duration::from_millis(config.timeout_ms);
        let base = config.endpoint.trim_end_matches('/');
        let error = |signal, source| OtlpError {
            signal,
            endpoint: config.endpoint.clone(),
            source,
        };
        let (spans, metrics) = match config.protocol {
            OtlpProtocol::Grpc => (
                SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(base)
                    .with_timeout(timeout)
                    .build()
                    .map_err(|e| error("trace", e))?,
                MetricExporter::builder()
                    .with_tonic()
                    .with_endpoint(base)
                    .with_timeout(timeout)
                    .build()
                    .map_err(|e| error("metrics", e))?,
            ),
            OtlpProtocol::Http => (
                SpanExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(format!("{base}/v1/traces"))
                    .with_timeout(timeout)
                    .build()
                    .map_err(|e| error("trace", e))?,
                MetricExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(format!("{base}/v1/metrics"))
                    .with_timeout(timeout)
                    .build()
                    .map_err(|e| error("metrics", e))?,
            ),
        };
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let meters = SdkMeterProvider::builder()
            .with_resource(resource.clone())
            .with_reader(
                PeriodicReader::builder(metrics)
                    .with_interval(Duration::from_millis(config.export_interval_ms))
                    .build(),
            )
            .build();
        let tracers = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_batch_exporter(spans)
            .build();
        let tracer = tracers.tracer("vigil-control-plane");
        let meter = meters.meter("vigil-control-plane");

        // The agents' own health, as they last reported it, read at each export.
        let reported = nodes.clone();
        let _dropped = meter
            .u64_observable_counter("vigil.node.dropped_events")
            .with_description(
                "Events an agent lost, by where (kernel, buffer, malformed, metric_interval)",
            )
            .with_callback(move |o| {
                for n in reported.list_nodes().unwrap_or_default() {
                    for (reason, v) in n.stats.losses() {
                        o.observe(
                            v,
                            &[
                                KeyValue::new("node", n.name.clone()),
                                KeyValue::new("reason", reason),
                            ],
                        );
                    }
                }
            })
            .build();
        let _probes = meter
            .i64_observable_gauge("vigil.node.probe_up")
            .with_description("1 when the probe is attached on the node")
            .with_callback(move |o| {
                for n in nodes.list_nodes().unwrap_or_default() {
                    for (probe, error) in &n.probes {
                        o.observe(
                            i64::from(error.is_empty()),
                            &[
                                KeyValue::new("node", n.name.clone()),
                                KeyValue::new("probe", probe.clone()),
                            ],
                        );
                    }
                }
            })
            .build();
        info!(endpoint = %config.endpoint, protocol = ?config.protocol, "exporting metrics and incident traces over OTLP");
        Ok(Self {
            opened: meter
                .u64_counter("vigil.incidents.opened")
                .with_description("Incidents opened, by kind and severity")
                .build(),
            resolved: meter
                .u64_counter("vigil.incidents.resolved")
                .with_description("Incidents resolved, by kind and severity")
                .build(),
            detection_latency: meter
                .f64_histogram("vigil.detection.latency")
                .with_unit("s")
                .with_description("From the first evidence to the incident")
                .with_boundaries(vec![
                    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                ])
                .build(),
            events: meter
                .u64_counter("vigil.ingest.events")
                .with_description("Kernel events stored, by node and kind")
                .build(),
            intervals: meter
                .u64_counter("vigil.ingest.metric_intervals")
                .with_description("Metric intervals stored, by node")
                .build(),
            anomaly: meter
                .f64_gauge("vigil.anomaly.score")
                .with_description("Largest robust z-score of an entity's features, last window")
                .build(),
            forest: meter
                .f64_gauge("vigil.anomaly.forest_score")
                .with_description("Extended isolation forest score of an entity, last window")
                .build(),
            diagnoses: meter
                .u64_counter("vigil.diagnoses")
                .with_description(
                    "Diagnoses whose verdict is new or changed, by fault class and route",
                )
                .build(),
            diagnosis_duration: meter
                .f64_histogram("vigil.diagnosis.duration")
                .with_unit("s")
                .with_description("Time to gather an incident's evidence and decide its class")
                .with_boundaries(vec![
                    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .build(),
            meters,
            tracers,
            tracer,
            traces: Mutex::new(HashMap::new()),
        })
    }

    /// One trace: a root span over the stages, a child span per stage.
    fn trace_opened(&self, incident: &Incident, stages: &[Stage]) {
        let start = stages
            .iter()
            .map(|s| s.start_unix_ns)
            .min()
            .unwrap_or(incident.opened_unix_ns);
        let end = stages
            .iter()
            .map(|s| s.end_unix_ns)
            .max()
            .unwrap_or(incident.opened_unix_ns)
            .max(start);
        let root = self
            .tracer
            .span_builder(format!("incident {}", incident.kind.as_str()))
            .with_kind(SpanKind::Internal)
            .with_start_time(time(start))
            .with_attributes(incident_attributes(incident))
            .start(&self.tracer);
        let cx = Context::new().with_span(root);
        for stage in stages {
            let mut attributes: Vec<KeyValue> = stage
                .attributes
                .iter()
                .map(|(k, v)| attribute(k, v))
                .collect();
            attributes.push(KeyValue::new("vigil.stage", stage.stage.clone()));
            let mut span = self
                .tracer
                .span_builder(stage.stage.clone())
                .with_start_time(time(stage.start_unix_ns))
                .with_attributes(attributes)
                .start_with_context(&self.tracer, &cx);
            opentelemetry::trace::Span::end_with_timestamp(&mut span, time(stage.end_unix_ns));
        }
        let span = cx.span();
        let context = span.span_context().clone();
        span.end_with_timestamp(time(end));
        let mut traces = self.traces.lock().unwrap_or_else(|p| p.into_inner());
        if traces.len() >= MAX_OPEN_TRACES {
            traces.clear();
        }
        traces.insert(incident.id, context);
    }

    /// A `resolve` span in the incident's trace (its own trace if the root is unknown, e.g.
    /// opened before a restart).
    fn trace_resolved(&self, incident: &Incident) {
        let parent = self
            .traces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&incident.id);
        let cx = parent.map_or_else(Context::new, |sc| {
            Context::new().with_remote_span_context(sc)
        });
        let at = incident
            .resolved_unix_ns
            .unwrap_or(incident.updated_unix_ns);
        let mut span = self
            .tracer
            .span_builder("resolve")
            .with_start_time(time(incident.updated_unix_ns.min(at)))
            .with_attributes(incident_attributes(incident))
            .start_with_context(&self.tracer, &cx);
        opentelemetry::trace::Span::end_with_timestamp(&mut span, time(at));
    }

    /// A `diagnose` span in the incident's trace: the class, the confidence, the route.
    fn trace_diagnosed(&self, incident: &Incident, d: &Diagnosis, took_secs: f64) {
        let parent = self
            .traces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&incident.id)
            .cloned();
        let cx = parent.map_or_else(Context::new, |sc| {
            Context::new().with_remote_span_context(sc)
        });
        let end = d.diagnosed_unix_ns;
        let start = end - (took_secs * 1e9) as i64;
        let mut attributes = incident_attributes(incident);
        attributes.extend([
            KeyValue::new("vigil.stage", "diagnose"),
            KeyValue::new("vigil.fault_class", d.class.map_or("none", |c| c.id())),
            KeyValue::new("vigil.confidence", d.confidence),
            KeyValue::new("vigil.route", d.route.as_str()),
            KeyValue::new("vigil.evidence_tools", d.evidence.len() as i64),
        ]);
        let mut span = self
            .tracer
            .span_builder("diagnose")
            .with_start_time(time(start))
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &cx);
        opentelemetry::trace::Span::end_with_timestamp(&mut span, time(end));
    }

    /// Pushes what is buffered (at shutdown).
    pub fn flush(&self) {
        if let Err(e) = self.tracers.force_flush() {
            warn!(error = %vigil_config_file::error_chain(&e), "flushing incident traces failed");
        }
        if let Err(e) = self.meters.force_flush() {
            warn!(error = %vigil_config_file::error_chain(&e), "flushing OTLP metrics failed");
        }
    }
}

impl Drop for OtlpExporter {
    fn drop(&mut self) {
        let _ = self.tracers.shutdown();
        let _ = self.meters.shutdown();
    }
}

impl Observer for OtlpExporter {
    fn incident(&self, change: &IncidentChange) {
        let i = change.incident();
        let class = [
            KeyValue::new("kind", i.kind.as_str()),
            KeyValue::new("severity", i.severity.as_str()),
        ];
        match change {
            IncidentChange::Opened { incident, finding } => {
                self.opened.add(1, &class);
                if let Some(secs) = finding.detection_seconds() {
                    self.detection_latency
                        .record(secs, &[KeyValue::new("kind", i.kind.as_str())]);
                }
                self.trace_opened(incident, &finding.stages);
            }
            IncidentChange::Resolved(incident) => {
                self.resolved.add(1, &class);
                self.trace_resolved(incident);
            }
            IncidentChange::Updated(_) | IncidentChange::Reopened(_) => {}
        }
    }

    fn events_ingested(&self, node: &str, kind: &str, count: u64) {
        self.events.add(
            count,
            &[
                KeyValue::new("node", node.to_string()),
                KeyValue::new("kind", kind.to_string()),
            ],
        );
    }

    fn intervals_ingested(&self, node: &str, count: u64) {
        self.intervals
            .add(count, &[KeyValue::new("node", node.to_string())]);
    }

    fn anomaly_scores(&self, scores: &[EntityScore]) {
        for s in scores {
            let attrs = [
                KeyValue::new("entity", s.entity.to_string()),
                KeyValue::new("class", s.entity.class().as_str()),
            ];
            self.anomaly.record(s.max_z, &attrs);
            if let Some(f) = s.forest {
                self.forest.record(f, &attrs);
            }
        }
    }

    fn diagnosed(&self, incident: &Incident, d: &Diagnosis, took_secs: f64) {
        let attrs = [
            KeyValue::new("fault_class", d.class.map_or("none", |c| c.id())),
            KeyValue::new("route", d.route.as_str()),
        ];
        self.diagnoses.add(1, &attrs);
        self.diagnosis_duration.record(took_secs, &[]);
        self.trace_diagnosed(incident, d, took_secs);
    }
}
