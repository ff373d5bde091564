//! The REST API of remediation's actions: what was proposed for an incident and what became
//! of it, and an approver's yes or no (`POST /api/v1/incidents/{id}/actions/{action}/approve`,
//! `…/deny`), and each action class's verified record. Who approved is the name of the token the request carried (the access guard
//! put it on the request), never something the body claims.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Extension, Json, Router,
};
use serde::Deserialize;

use std::sync::Arc;

use crate::domain::{
    access::Principal,
    incident::IncidentId,
    remediate::{
        ports::RemediationStore, ActionId, ActionRecord, ClassRecord, RemediationError,
        RemediationService,
    },
    store::StoreError,
};

/// What the actions API reads and calls.
#[derive(Clone)]
pub struct ActionsState {
    pub remediation: Arc<RemediationService>,
    pub actions: Arc<dyn RemediationStore>,
}
use vigil_config_file::error_chain as chain;

#[derive(Debug, thiserror::Error)]
enum ActionsError {
    #[error("action {action} is not one of incident {incident}'s actions")]
    NotOfIncident {
        incident: IncidentId,
        action: ActionId,
    },
    #[error("the body must be empty or {{\"reason\": \"<why>\"}}; the approver is the token's name ({0})")]
    BadBody(String),
    #[error(transparent)]
    Remediation(#[from] RemediationError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("request task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl IntoResponse for ActionsError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::NotOfIncident { .. } | Self::Remediation(RemediationError::NotFound(_)) => {
                StatusCode::NOT_FOUND
            }
            Self::BadBody(_) => StatusCode::BAD_REQUEST,
            Self::Remediation(
                RemediationError::NotPending { .. } | RemediationError::Expired(_),
            ) => StatusCode::CONFLICT,
            Self::Remediation(RemediationError::Store(_)) | Self::Store(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Task(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(serde_json::json!({ "error": chain(&self) }))).into_response()
    }
}

#[derive(Debug, Deserialize)]
struct ListParams {
    incident: Option<i64>,
}

async fn list(
    State(s): State<ActionsState>,
    Query(p): Query<ListParams>,
) -> Result<Json<Vec<ActionRecord>>, ActionsError> {
    let store = s.actions.clone();
    Ok(Json(
        tokio::task::spawn_blocking(move || store.actions(p.incident.map(IncidentId), 0)).await??,
    ))
}

/// Each action class's verified record (`GET /api/v1/actions/record`): what an operator
/// weighs before promoting a class to assist or autonomous.
async fn record(State(s): State<ActionsState>) -> Result<Json<Vec<ClassRecord>>, ActionsError> {
    let remediation = s.remediation.clone();
    Ok(Json(
        tokio::task::spawn_blocking(move || remediation.track_record()).await??,
    ))
}

/// An optional reason, kept in the audit log with the verdict. `by` is refused: a body
/// cannot name someone else as the approver.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Verdict {
    #[serde(default)]
    reason: Option<String>,
}

async fn judge(
    s: ActionsState,
    by: Principal,
    (incident, action): (i64, i64),
    body: axum::body::Bytes,
    approve: bool,
) -> Result<Json<ActionRecord>, ActionsError> {
    let verdict: Verdict = if body.iter().all(u8::is_ascii_whitespace) {
        Verdict::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ActionsError::BadBody(e.to_string()))?
    };
    let who = match verdict.reason.as_deref().map(str::trim) {
        Some(r) if !r.is_empty() => format!("{} ({r})", by.name),
        _ => by.name,
    };
    let (incident, action) = (IncidentId(incident), ActionId(action));
    let record = tokio::task::spawn_blocking(move || {
        let stored = s
            .actions
            .action(action)?
            .ok_or(RemediationError::NotFound(action))?;
        if stored.request.incident != incident {
            return Err(ActionsError::NotOfIncident { incident, action });
        }
        Ok(if approve {
            s.remediation.approve(action, &who)?
        } else {
            s.remediation.deny(action, &who)?
        })
    })
    .await??;
    Ok(Json(record))
}

async fn approve(
    State(s): State<ActionsState>,
    Extension(by): Extension<Principal>,
    Path(ids): Path<(i64, i64)>,
    body: axum::body::Bytes,
) -> Result<Json<ActionRecord>, ActionsError> {
    judge(s, by, ids, body, true).await
}

async fn deny(
    State(s): State<ActionsState>,
    Extension(by): Extension<Principal>,
    Path(ids): Path<(i64, i64)>,
    body: axum::body::Bytes,
) -> Result<Json<ActionRecord>, ActionsError> {
    judge(s, by, ids, body, false).await
}

pub fn router(state: ActionsState) -> Router {
    Router::new()
        .route("/api/v1/actions", get(list))
        .route("/api/v1/actions/record", get(record))
        .route(
            "/api/v1/incidents/{id}/actions/{action}/approve",
            post(approve),
        )
        .route("/api/v1/incidents/{id}/actions/{action}/deny", post(deny))
        .with_state(state)
}
