//! The REST API (`/api/v1`): events, incidents, nodes, samples, the service graph, detection,
//! and Alertmanager's webhook; `/metrics` and `/healthz`.

use std::sync::Arc;

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde::{Deserialize, Serialize};

use vigil_config_file::error_chain as chain;

use crate::{
    adapters::{
        alertmanager::{WebhookError, WebhookPayload},
        dot::to_dot,
        prometheus::{self, PrometheusExporter},
    },
    domain::{
        access::Principal,
        alerts::{AlertError, AlertOutcome, AlertService},
        certs::CertificateService,
        clock::Clock,
        detection::DetectionService,
        diagnose::{
            call::CallError,
            feedback::{Feedback, FeedbackError, FeedbackRequest, FeedbackService},
            ports::DiagnosisStore,
            Diagnosis, DiagnosisService,
        },
        event::{
            ports::{EventQuery, EventStore},
            StoredEvent,
        },
        graph::LiveGraph,
        incident::{
            ports::{IncidentQuery, IncidentStore},
            Incident, IncidentId, IncidentKind, IncidentStatus,
        },
        interval::{
            ports::{IntervalStore, SampleQuery},
            MapUsage, SampleKind,
        },
        node::{ports::NodeStore, NodeInfo},
        store::StoreError,
    },
};

#[derive(Clone)]
pub struct ApiState {
    pub events: Arc<dyn EventStore>,
    pub incidents: Arc<dyn IncidentStore>,
    pub nodes: Arc<dyn NodeStore>,
    pub intervals: Arc<dyn IntervalStore>,
    pub graph: Arc<LiveGraph>,
    /// `None` when detection is disabled in the config.
    pub detection: Option<Arc<DetectionService>>,
    pub prometheus: Arc<PrometheusExporter>,
    pub alerts: Arc<AlertService>,
    pub diagnoses: Arc<dyn DiagnosisStore>,
    /// `None` unless the active certificate check is on.
    pub certificates: Option<Arc<CertificateService>>,
    pub clock: Arc<dyn Clock>,
    /// The evidence tools, for `/api/v1/tools` and MCP.
    pub diagnosis: Arc<DiagnosisService>,
    pub feedback: Arc<FeedbackService>,
    pub audit: Arc<crate::domain::audit::AuditLog>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("query parameter `{param}` is invalid: {reason}")]
    BadParam { param: &'static str, reason: String },
    #[error("incident {0} not found")]
    NotFound(IncidentId),
    #[error("entity {0:?} is not in the service graph (see GET /api/v1/graph for the ids)")]
    NoSuchEntity(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("request task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("{0}")]
    Alert(AlertError),
    #[error("the body is not an Alertmanager webhook payload")]
    BadPayload(#[source] serde_json::Error),
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    #[error(transparent)]
    Tool(CallError),
    #[error(transparent)]
    Feedback(FeedbackError),
    #[error("the body is not feedback ({0}): send {{\"verdict\": \"confirmed\" | \"corrected\", \"class\": \"<id>\", \"by\": …, \"note\": …}}")]
    BadFeedback(String),
}

impl From<FeedbackError> for ApiError {
    fn from(e: FeedbackError) -> Self {
        match e {
            FeedbackError::Store(e) => Self::Store(e),
            FeedbackError::NoSuchIncident(id) => Self::NotFound(id),
            other => Self::Feedback(other),
        }
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Store(e) => Self::Store(e),
            other => Self::Tool(other),
        }
    }
}

impl From<AlertError> for ApiError {
    fn from(e: AlertError) -> Self {
        match e {
            AlertError::Store(e) => Self::Store(e),
            other => Self::Alert(other),
        }
    }
}

impl ApiError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::BadParam { .. } | Self::Alert(_) | Self::BadPayload(_) | Self::Webhook(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::Tool(CallError::UnknownTool { .. } | CallError::UnknownIncident(_)) => {
                StatusCode::NOT_FOUND
            }
            Self::Tool(_) | Self::BadFeedback(_) => StatusCode::BAD_REQUEST,
            Self::Feedback(FeedbackError::NotDiagnosed(_)) => StatusCode::CONFLICT,
            Self::Feedback(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound(_)
            | Self::NoSuchEntity(_)
            | Self::Store(StoreError::NoSuchIncident(_)) => StatusCode::NOT_FOUND,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Task(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The whole chain: a store failure's cause is what the operator needs.
        (
            self.status(),
            Json(serde_json::json!({ "error": chain(&self) })),
        )
            .into_response()
    }
}

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 100_000;

fn limit(requested: Option<usize>) -> Result<usize, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::BadParam {
            param: "limit",
            reason: format!("{n} is not in 1..={MAX_LIMIT}"),
        }),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await?
}

#[derive(Debug, Deserialize)]
pub struct EventParams {
    node: Option<String>,
    kind: Option<String>,
    workload: Option<String>,
    since_unix_ns: Option<i64>,
    until_unix_ns: Option<i64>,
    limit: Option<usize>,
}

const EVENT_KINDS: [&str; 5] = [
    "process_exec",
    "process_exit",
    "oom_kill",
    "dns_failure",
    "exec_failure",
];

async fn list_events(
    State(s): State<ApiState>,
    Query(p): Query<EventParams>,
) -> Result<Json<Vec<StoredEvent>>, ApiError> {
    if let Some(kind) = p.kind.as_deref().filter(|k| !EVENT_KINDS.contains(k)) {
        return Err(ApiError::BadParam {
            param: "kind",
            reason: format!("{kind:?} is not one of {EVENT_KINDS:?}"),
        });
    }
    let query = EventQuery {
        node: p.node,
        kind: p.kind,
        workload_key: p.workload,
        since_unix_ns: p.since_unix_ns,
        until_unix_ns: p.until_unix_ns,
        limit: limit(p.limit)?,
    };
    Ok(Json(
        blocking(move || Ok(s.events.list_events(&query)?)).await?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct IncidentParams {
    status: Option<String>,
    kind: Option<String>,
    limit: Option<usize>,
}

/// The incidents a query names, newest first (`status` and `kind` as the API spells them).
pub fn incident_list(
    s: &ApiState,
    status: Option<&str>,
    kind: Option<&str>,
    limit: usize,
) -> Result<Vec<Incident>, ApiError> {
    let status = status
        .map(|v| {
            IncidentStatus::parse(v).ok_or(ApiError::BadParam {
                param: "status",
                reason: format!("{v:?} is not open or resolved"),
            })
        })
        .transpose()?;
    let kind = kind
        .map(|v| {
            IncidentKind::parse(v).ok_or(ApiError::BadParam {
                param: "kind",
                reason: format!(
                    "{v:?} is not one of {:?}",
                    IncidentKind::ALL.map(IncidentKind::as_str)
                ),
            })
        })
        .transpose()?;
    Ok(s.incidents.list(&IncidentQuery {
        status,
        kind,
        limit,
    })?)
}

async fn list_incidents(
    State(s): State<ApiState>,
    Query(p): Query<IncidentParams>,
) -> Result<Json<Vec<Incident>>, ApiError> {
    let limit = limit(p.limit)?;
    Ok(Json(
        blocking(move || incident_list(&s, p.status.as_deref(), p.kind.as_deref(), limit)).await?,
    ))
}

#[derive(Debug, Serialize)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: Incident,
    /// The kernel events behind the incident, oldest first.
    pub evidence: Vec<StoredEvent>,
    /// What Vigil concluded from the evidence; `null` until the first diagnosis (within a
    /// second or so of opening).
    pub diagnosis: Option<Diagnosis>,
    /// The operator's confirmation or correction, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback: Option<Feedback>,
}

/// An incident with its kernel evidence and its diagnosis.
pub fn incident_detail(s: &ApiState, id: IncidentId) -> Result<IncidentDetail, ApiError> {
    let incident = s.incidents.get(id)?.ok_or(ApiError::NotFound(id))?;
    let mut evidence = Vec::new();
    for r in s.incidents.evidence(id)? {
        if let Some(e) = s.events.get_event(&r.node, r.seq)? {
            evidence.push(e);
        }
    }
    evidence.sort_by_key(|e| e.event.time_unix_ns);
    let diagnosis = s.diagnoses.diagnosis(id)?;
    let feedback = s.feedback.store.feedback(id)?;
    Ok(IncidentDetail {
        incident,
        evidence,
        diagnosis,
        feedback,
    })
}

async fn get_incident(
    State(s): State<ApiState>,
    Path(id): Path<i64>,
) -> Result<Json<IncidentDetail>, ApiError> {
    Ok(Json(
        blocking(move || incident_detail(&s, IncidentId(id))).await?,
    ))
}

/// A node with the kernel map usage of its latest metric interval.
#[derive(Serialize)]
struct NodeView {
    #[serde(flatten)]
    node: NodeInfo,
    maps: Vec<MapUsage>,
}

async fn list_nodes(State(s): State<ApiState>) -> Result<impl IntoResponse, ApiError> {
    let views = blocking(move || {
        let mut views = Vec::new();
        for node in s.nodes.list_nodes()? {
            let maps = s.intervals.map_usage(&node.name)?;
            views.push(NodeView { node, maps });
        }
        Ok(views)
    })
    .await?;
    Ok(Json(views))
}

#[derive(Debug, Deserialize)]
pub struct GraphParams {
    format: Option<String>,
}

/// Detection's counters and every baseline with its learning state.
/// The certificates the TLS endpoints served at their last check, with days left.
async fn certificates(State(s): State<ApiState>) -> Json<serde_json::Value> {
    let now = s.clock.now_unix_ns();
    Json(match &s.certificates {
        Some(c) => serde_json::json!({
            "active_check": true,
            "certificates": c.certificates().iter().map(|cert| serde_json::json!({
                "endpoint": cert.endpoint,
                "server": cert.server,
                "subject": cert.subject,
                "issuer": cert.issuer,
                "not_after_unix": cert.not_after_unix,
                "not_after": crate::domain::certs::model::date(cert.not_after_unix),
                "days_left": cert.seconds_left(now) as f64 / 86_400.0,
                "checked_unix_ns": cert.checked_unix_ns,
            })).collect::<Vec<_>>(),
        }),
        None => serde_json::json!({
            "active_check": false,
            "hint": "set [certificates] active_check = true in the control plane's config",
        }),
    })
}

async fn detection(State(s): State<ApiState>) -> Json<serde_json::Value> {
    Json(match &s.detection {
        Some(d) => serde_json::json!({
            "enabled": true,
            "window_ms": d.config().window_ns / 1_000_000,
            "stats": d.stats(),
            "baselines": d.baselines(),
        }),
        None => serde_json::json!({ "enabled": false }),
    })
}

/// The service graph as JSON, or Graphviz DOT with `?format=dot`.
async fn graph(
    State(s): State<ApiState>,
    Query(p): Query<GraphParams>,
) -> Result<Response, ApiError> {
    let snapshot = s.graph.snapshot(s.clock.now_unix_ns());
    match p.format.as_deref() {
        None | Some("json") => Ok(Json(snapshot).into_response()),
        Some("dot") => Ok((
            [(
                axum::http::header::CONTENT_TYPE,
                "text/vnd.graphviz; charset=utf-8",
            )],
            to_dot(&snapshot),
        )
            .into_response()),
        Some(other) => Err(ApiError::BadParam {
            param: "format",
            reason: format!("{other:?}: use json or dot"),
        }),
    }
}

/// Everything that transitively depends on an entity (ids may contain `/`).
async fn blast_radius(
    State(s): State<ApiState>,
    Path(entity): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.graph
        .blast_radius(&entity, s.clock.now_unix_ns())
        .map(Json)
        .ok_or(ApiError::NoSuchEntity(entity))
}

#[derive(Debug, Deserialize)]
pub struct SampleParams {
    kind: Option<String>,
    node: Option<String>,
    workload: Option<String>,
    since_unix_ns: Option<i64>,
    limit: Option<usize>,
}

/// Stored metric samples (flows, syscalls, latency histograms, DNS), newest first.
async fn list_samples(
    State(s): State<ApiState>,
    Query(p): Query<SampleParams>,
) -> Result<impl IntoResponse, ApiError> {
    let kind = match p.kind.as_deref() {
        None => None,
        Some(k) => Some(SampleKind::parse(k).ok_or_else(|| ApiError::BadParam {
            param: "kind",
            reason: format!("{k:?}: use flow, syscall, latency, dns, request or resource"),
        })?),
    };
    let query = SampleQuery {
        kind,
        node: p.node,
        workload_key: p.workload,
        since_unix_ns: p.since_unix_ns,
        limit: limit(p.limit)?,
    };
    let store = s.intervals.clone();
    let samples = blocking(move || Ok(store.samples(&query)?)).await?;
    Ok(Json(samples))
}

/// Alertmanager's webhook receiver (`webhook_configs: [{url: .../api/v1/alertmanager}]`).
async fn alertmanager(
    State(s): State<ApiState>,
    body: axum::body::Bytes,
) -> Result<Json<AlertOutcome>, ApiError> {
    let payload: WebhookPayload = serde_json::from_slice(&body).map_err(ApiError::BadPayload)?;
    let alerts = payload.alerts()?;
    let service = s.alerts.clone();
    let outcome = blocking(move || Ok(service.receive(&alerts)?)).await?;
    Ok(Json(outcome))
}

/// Prometheus exposition: reads the stores, so it runs off the async workers.
async fn metrics(State(s): State<ApiState>) -> Response {
    let exporter = s.prometheus.clone();
    match tokio::task::spawn_blocking(move || exporter.encode()).await {
        Ok(Ok(body)) => (
            [(axum::http::header::CONTENT_TYPE, prometheus::CONTENT_TYPE)],
            body,
        )
            .into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the metrics failed: {}", chain(&e)),
        )
            .into_response(),
        Err(e) => ApiError::Task(e).into_response(),
    }
}

/// Confirms or corrects an incident's diagnosis.
async fn post_feedback(
    State(s): State<ApiState>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<Json<Feedback>, ApiError> {
    let mut request: FeedbackRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadFeedback(e.to_string()))?;
    // Whoever the body says, the judge is the token's holder.
    request.by = Some(who.name);
    Ok(Json(
        blocking(move || Ok(s.feedback.record(IncidentId(id), &request)?)).await?,
    ))
}

/// Every incident's latest feedback, and how often the diagnosis was right.
async fn list_feedback(State(s): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    let all = blocking(move || Ok(s.feedback.store.all_feedback()?)).await?;
    let confirmed = all
        .iter()
        .filter(|f| f.verdict == crate::domain::diagnose::feedback::Verdict::Confirmed)
        .count();
    Ok(Json(serde_json::json!({
        "judged": all.len(),
        "confirmed": confirmed,
        "accuracy": if all.is_empty() { None } else { Some(confirmed as f64 / all.len() as f64) },
        "feedback": all,
    })))
}

#[derive(Debug, Deserialize)]
pub struct AuditParams {
    after_seq: Option<u64>,
    limit: Option<usize>,
}

/// Most audit records one page returns.
const MAX_AUDIT_PAGE: usize = 10_000;

/// A page of the audit log (records after `after_seq`), every checkpoint, and the public key
/// that signs them: what `vigil audit verify` checks.
async fn audit(
    State(s): State<ApiState>,
    Query(p): Query<AuditParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = p.limit.unwrap_or(1_000).min(MAX_AUDIT_PAGE);
    let public_key = s.audit.public_key();
    let (records, checkpoints) =
        blocking(move || Ok(s.audit.read(p.after_seq.unwrap_or(0), limit)?)).await?;
    Ok(Json(serde_json::json!({
        "public_key": public_key,
        "records": records,
        "checkpoints": checkpoints,
    })))
}

/// A tool as `GET /api/v1/tools` lists it.
#[derive(Serialize)]
struct ToolView {
    name: String,
    description: String,
    input_schema: serde_json::Value,
}

async fn list_tools(State(s): State<ApiState>) -> Json<Vec<ToolView>> {
    Json(
        s.diagnosis
            .tool_defs()
            .into_iter()
            .map(|t| ToolView {
                name: t.name,
                description: t.description,
                input_schema: t.parameters,
            })
            .collect(),
    )
}

/// Runs one read-only evidence tool: `{incident}` or `{entity, from_unix_ns, to_unix_ns}`.
async fn call_tool(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let args: serde_json::Value = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadParam {
            param: "body",
            reason: format!("not JSON: {e}"),
        })?
    };
    let out = blocking(move || Ok(s.diagnosis.call_tool(&name, &args, None)?)).await?;
    Ok(Json(serde_json::to_value(out).map_err(|e| {
        ApiError::BadParam {
            param: "body",
            reason: e.to_string(),
        }
    })?))
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/events", get(list_events))
        .route("/api/v1/incidents", get(list_incidents))
        .route("/api/v1/incidents/{id}", get(get_incident))
        .route(
            "/api/v1/incidents/{id}/feedback",
            axum::routing::post(post_feedback),
        )
        .route("/api/v1/feedback", get(list_feedback))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/nodes", get(list_nodes))
        .route("/api/v1/graph", get(graph))
        .route("/api/v1/graph/blast-radius/{*entity}", get(blast_radius))
        .route("/api/v1/samples", get(list_samples))
        .route("/api/v1/detection", get(detection))
        .route("/api/v1/certificates", get(certificates))
        .route("/api/v1/alertmanager", axum::routing::post(alertmanager))
        .route("/api/v1/tools", get(list_tools))
        .route("/api/v1/tools/{name}", axum::routing::post(call_tool))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_incident_is_not_found_and_a_store_failure_unavailable() {
        let missing = ApiError::Store(StoreError::NoSuchIncident(IncidentId(7)));
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let down = ApiError::Store(StoreError::backend(
            "reading events",
            std::io::Error::other("disk gone"),
        ));
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            chain(&down),
            "storage backend failed while reading events: disk gone",
            "the body names the cause once"
        );
    }
}
