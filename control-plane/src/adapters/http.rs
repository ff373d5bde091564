//! The REST API (`/api/v1`): events, incidents, nodes.

use std::sync::Arc;

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde::{Deserialize, Serialize};

use crate::{
    domain::{
        event::StoredEvent,
        incident::{Incident, IncidentKind, IncidentStatus},
    },
    ports::{EventQuery, EventStore, IncidentQuery, IncidentStore, NodeStore, StoreError},
};

#[derive(Clone)]
pub struct ApiState {
    pub events: Arc<dyn EventStore>,
    pub incidents: Arc<dyn IncidentStore>,
    pub nodes: Arc<dyn NodeStore>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("query parameter `{param}` is invalid: {reason}")]
    BadParam { param: &'static str, reason: String },
    #[error("incident {0} not found")]
    NotFound(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("request task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::BadParam { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Task(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
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
    limit: Option<usize>,
}

const EVENT_KINDS: [&str; 3] = ["process_exec", "process_exit", "oom_kill"];

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

async fn list_incidents(
    State(s): State<ApiState>,
    Query(p): Query<IncidentParams>,
) -> Result<Json<Vec<Incident>>, ApiError> {
    let status = p
        .status
        .map(|v| {
            IncidentStatus::parse(&v).ok_or(ApiError::BadParam {
                param: "status",
                reason: format!("{v:?} is not open or resolved"),
            })
        })
        .transpose()?;
    let kind = p
        .kind
        .map(|v| {
            IncidentKind::parse(&v).ok_or(ApiError::BadParam {
                param: "kind",
                reason: format!("{v:?} is not oom_kill or crash_loop"),
            })
        })
        .transpose()?;
    let query = IncidentQuery {
        status,
        kind,
        limit: limit(p.limit)?,
    };
    Ok(Json(blocking(move || Ok(s.incidents.list(&query)?)).await?))
}

#[derive(Debug, Serialize)]
pub struct IncidentDetail {
    #[serde(flatten)]
    incident: Incident,
    /// The kernel events behind the incident, oldest first.
    evidence: Vec<StoredEvent>,
}

async fn get_incident(
    State(s): State<ApiState>,
    Path(id): Path<i64>,
) -> Result<Json<IncidentDetail>, ApiError> {
    let detail = blocking(move || {
        let incident = s.incidents.get(id)?.ok_or(ApiError::NotFound(id))?;
        let mut evidence = Vec::new();
        for r in s.incidents.evidence(id)? {
            if let Some(e) = s.events.get_event(&r.node, r.seq)? {
                evidence.push(e);
            }
        }
        evidence.sort_by_key(|e| e.event.time_unix_ns);
        Ok(IncidentDetail { incident, evidence })
    })
    .await?;
    Ok(Json(detail))
}

async fn list_nodes(State(s): State<ApiState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(blocking(move || Ok(s.nodes.list_nodes()?)).await?))
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/v1/events", get(list_events))
        .route("/api/v1/incidents", get(list_incidents))
        .route("/api/v1/incidents/{id}", get(get_incident))
        .route("/api/v1/nodes", get(list_nodes))
        .with_state(state)
}
