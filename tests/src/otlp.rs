//! An OTLP receiver for the export tests: the OpenTelemetry collector's gRPC services
//! (opentelemetry-proto's generated tonic servers) and its HTTP/protobuf endpoints
//! (`POST /v1/traces`, `/v1/metrics`) on real sockets, keeping every request it receives.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{body::Bytes, extract::State, http::header, response::IntoResponse, routing::post};
use opentelemetry_proto::tonic::{
    collector::{
        metrics::v1::{
            metrics_service_server::{MetricsService, MetricsServiceServer},
            ExportMetricsServiceRequest, ExportMetricsServiceResponse,
        },
        trace::v1::{
            trace_service_server::{TraceService, TraceServiceServer},
            ExportTraceServiceRequest, ExportTraceServiceResponse,
        },
    },
    common::v1::{any_value::Value, KeyValue},
    metrics::v1::metric::Data,
};
use prost::Message;

#[derive(Debug, Default)]
pub struct Received {
    pub traces: Vec<ExportTraceServiceRequest>,
    pub metrics: Vec<ExportMetricsServiceRequest>,
    /// Requests by transport: "grpc" or "http".
    pub requests: BTreeMap<&'static str, usize>,
}

/// A span as a test looks at it.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent_span_id: Vec<u8>,
    pub name: String,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    pub attributes: BTreeMap<String, String>,
    /// `service.name` of the resource that sent it.
    pub service: String,
}

/// A metric data point: the metric's name and the point's attributes.
#[derive(Debug, Clone)]
pub struct ReceivedPoint {
    pub metric: String,
    pub attributes: BTreeMap<String, String>,
}

fn text(kv: &[KeyValue]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                Some(Value::IntValue(i)) => i.to_string(),
                Some(Value::DoubleValue(d)) => d.to_string(),
                Some(Value::BoolValue(b)) => b.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

#[derive(Clone)]
struct Sink(Arc<Mutex<Received>>);

impl Sink {
    fn with<T>(&self, f: impl FnOnce(&mut Received) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Keeps one export request that came over `transport`.
    fn keep<R>(&self, transport: &'static str, request: R, into: fn(&mut Received, R)) {
        self.with(|r| {
            into(r, request);
            *r.requests.entry(transport).or_default() += 1;
        });
    }
}

fn keep_traces(r: &mut Received, req: ExportTraceServiceRequest) {
    r.traces.push(req);
}

fn keep_metrics(r: &mut Received, req: ExportMetricsServiceRequest) {
    r.metrics.push(req);
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.keep("grpc", request.into_inner(), keep_traces);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.keep("grpc", request.into_inner(), keep_metrics);
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// OTLP/HTTP: a protobuf request body in, the empty protobuf response out.
fn http_export<Req: Message + Default, Resp: Message + Default>(
    sink: &Sink,
    body: Bytes,
    into: fn(&mut Received, Req),
) -> axum::response::Response {
    match Req::decode(body) {
        Ok(req) => {
            sink.keep("http", req, into);
            let body = Resp::default().encode_to_vec();
            ([(header::CONTENT_TYPE, "application/x-protobuf")], body).into_response()
        }
        Err(e) => (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn http_traces(State(sink): State<Sink>, body: Bytes) -> axum::response::Response {
    http_export::<_, ExportTraceServiceResponse>(&sink, body, keep_traces)
}

async fn http_metrics(State(sink): State<Sink>, body: Bytes) -> axum::response::Response {
    http_export::<_, ExportMetricsServiceResponse>(&sink, body, keep_metrics)
}

pub struct OtlpReceiver {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    sink: Sink,
    runtime: Option<tokio::runtime::Runtime>,
}

impl OtlpReceiver {
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("receiver runtime");
        let sink = Sink(Arc::default());
        let (grpc, http) = runtime.block_on(async {
            let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let http = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addrs = (
                grpc.local_addr().expect("addr"),
                http.local_addr().expect("addr"),
            );
            let services = tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(sink.clone()))
                .add_service(MetricsServiceServer::new(sink.clone()));
            tokio::spawn(
                services.serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(grpc)),
            );
            let app = axum::Router::new()
                .route("/v1/traces", post(http_traces))
                .route("/v1/metrics", post(http_metrics))
                .with_state(sink.clone());
            tokio::spawn(async move { axum::serve(http, app).await });
            addrs
        });
        Self {
            grpc,
            http,
            sink,
            runtime: Some(runtime),
        }
    }

    pub fn requests(&self, transport: &str) -> usize {
        self.sink
            .with(|r| r.requests.get(transport).copied().unwrap_or(0))
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.sink.with(|r| {
            r.traces
                .iter()
                .flat_map(|req| req.resource_spans.iter())
                .flat_map(|rs| {
                    let service = rs
                        .resource
                        .as_ref()
                        .map(|res| text(&res.attributes))
                        .and_then(|a| a.get("service.name").cloned())
                        .unwrap_or_default();
                    rs.scope_spans
                        .iter()
                        .flat_map(|ss| ss.spans.iter())
                        .map(move |s| ReceivedSpan {
                            trace_id: s.trace_id.clone(),
                            span_id: s.span_id.clone(),
                            parent_span_id: s.parent_span_id.clone(),
                            name: s.name.clone(),
                            start_unix_ns: s.start_time_unix_nano,
                            end_unix_ns: s.end_time_unix_nano,
                            attributes: text(&s.attributes),
                            service: service.clone(),
                        })
                })
                .collect()
        })
    }

    /// Every data point of every metric received.
    pub fn points(&self) -> Vec<ReceivedPoint> {
        self.sink.with(|r| {
            let mut out = Vec::new();
            for m in r
                .metrics
                .iter()
                .flat_map(|req| req.resource_metrics.iter())
                .flat_map(|rm| rm.scope_metrics.iter())
                .flat_map(|sm| sm.metrics.iter())
            {
                let attrs: Vec<&[KeyValue]> = match &m.data {
                    Some(Data::Sum(s)) => s.data_points.iter().map(|p| &p.attributes[..]).collect(),
                    Some(Data::Gauge(g)) => {
                        g.data_points.iter().map(|p| &p.attributes[..]).collect()
                    }
                    Some(Data::Histogram(h)) => {
                        h.data_points.iter().map(|p| &p.attributes[..]).collect()
                    }
                    _ => Vec::new(),
                };
                out.extend(attrs.into_iter().map(|a| ReceivedPoint {
                    metric: m.name.clone(),
                    attributes: text(a),
                }));
            }
            out
        })
    }

    pub fn metric_names(&self) -> BTreeSet<String> {
        self.points().into_iter().map(|p| p.metric).collect()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
