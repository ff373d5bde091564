//! Token endpoints, for admins: `GET /api/v1/tokens` (names and roles, never hashes),
//! `POST /api/v1/tokens {"name", "role"}` (the new secret, shown this once),
//! `DELETE /api/v1/tokens/{name}`; and `GET /api/v1/whoami` for any token.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{delete, get},
    Extension, Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::token_file::new_secret;
use crate::domain::access::{Access, AccessError, ApiToken, Principal, Role};
use vigil_config_file::error_chain as chain;

struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<AccessError> for Refusal {
    fn from(e: AccessError) -> Self {
        let status = match &e {
            AccessError::Denied(d) if d.unauthenticated() => StatusCode::UNAUTHORIZED,
            AccessError::Denied(_) => StatusCode::FORBIDDEN,
            AccessError::BadName(_) | AccessError::WeakSecret(_) => StatusCode::BAD_REQUEST,
            AccessError::Exists(_) | AccessError::LastAdmin(_) => StatusCode::CONFLICT,
            AccessError::NoSuchToken(_) => StatusCode::NOT_FOUND,
            AccessError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self(status, chain(&e))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AccessError> + Send + 'static,
) -> Result<T, Refusal> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Refusal(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(Refusal::from)
}

async fn list(State(access): State<Arc<Access>>) -> Result<Json<Vec<ApiToken>>, Refusal> {
    Ok(Json(blocking(move || access.tokens()).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    role: String,
}

async fn issue(
    State(access): State<Arc<Access>>,
    Extension(by): Extension<Principal>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), Refusal> {
    let bad = |m: String| Refusal(StatusCode::BAD_REQUEST, m);
    let asked: NewToken = serde_json::from_slice(&body).map_err(|e| {
        bad(format!(
            "the body must be {{\"name\": \"<name>\", \"role\": \"viewer\" | \"approver\" | \"admin\"}} ({e})"
        ))
    })?;
    let role: Role = asked.role.parse().map_err(bad)?;
    let secret = new_secret();
    let shown = secret.clone();
    let token = blocking(move || access.issue(&by, &asked.name, role, &secret)).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": token.name, "role": token.role, "token": shown })),
    ))
}

async fn revoke(
    State(access): State<Arc<Access>>,
    Extension(by): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<ApiToken>, Refusal> {
    Ok(Json(blocking(move || access.revoke(&by, &name)).await?))
}

async fn whoami(Extension(who): Extension<Principal>) -> Json<Principal> {
    Json(who)
}

pub fn router(access: Arc<Access>) -> Router {
    Router::new()
        .route("/api/v1/tokens", get(list).post(issue))
        .route("/api/v1/tokens/{name}", delete(revoke))
        .route("/api/v1/whoami", get(whoami))
        .with_state(access)
}
