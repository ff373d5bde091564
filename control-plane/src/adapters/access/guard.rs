//! The guard in front of every route: which role a request needs (one table, deny by
//! default), who its bearer token says the caller is, and the refusal when that is not
//! enough: 401 for nobody Vigil knows (with `WWW-Authenticate`), 403 for a known token whose
//! role is too small. The caller's `Principal` rides on the request for handlers that record
//! who acted (an approval, a judged diagnosis).

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tracing::debug;

use crate::{
    adapters::refusal::refuse,
    domain::access::{Access, AccessError, Role},
};
use vigil_config_file::error_chain as chain;

/// What a request must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: liveness probes, Prometheus' scrape, callbacks that carry their own signature.
    Public,
    Role(Role),
}

/// Paths anyone may call. Slack's callback carries Slack's signature instead of a token; its
/// handler refuses what is not signed.
const PUBLIC: &[&str] = &[
    "/",
    "/healthz",
    "/metrics",
    crate::adapters::slack::interactions::PATH,
    // The console's sign-in and sign-out (which only set or clear its cookie) and its
    // static files; every console page and the data behind it need a token.
    "/console/login",
    "/console/logout",
];

/// Paths under which everything is public: the console's compiled-in scripts and styles.
const PUBLIC_PREFIXES: &[&str] = &["/console/assets/"];

/// What `method path` needs. Reads need a viewer; judging a diagnosis, approving or denying
/// an action and feeding alerts in need an approver; tokens and any write not named here
/// need an admin, so a route added later is closed until it is placed.
pub fn need(method: &Method, path: &str) -> Need {
    if path == "/" {
        return Need::Public;
    }
    if PUBLIC_PREFIXES.iter().any(|p| path.starts_with(p)) && !path.contains("..") {
        return Need::Public;
    }
    let path = path.trim_end_matches('/');
    if PUBLIC.contains(&path) {
        return Need::Public;
    }
    if path == "/api/v1/tokens" || path.starts_with("/api/v1/tokens/") {
        return Need::Role(Role::Admin);
    }
    // MCP's tools and the REST tools are the read-only ones diagnosis uses.
    if path == "/mcp" || path.starts_with("/mcp/") || path.starts_with("/api/v1/tools/") {
        return Need::Role(Role::Viewer);
    }
    if method == Method::GET || method == Method::HEAD {
        return Need::Role(Role::Viewer);
    }
    if method == Method::POST && approves(path) {
        return Need::Role(Role::Approver);
    }
    Need::Role(Role::Admin)
}

/// `/api/v1/incidents/{id}/feedback`, `…/actions/{action}/approve|deny`, the Alertmanager
/// webhook.
fn approves(path: &str) -> bool {
    if path == "/api/v1/alertmanager" {
        return true;
    }
    let Some(rest) = path.strip_prefix("/api/v1/incidents/") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    matches!(
        parts.as_slice(),
        [_, "feedback"] | [_, "actions", _, "approve" | "deny"]
    )
}

/// Where a request's token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carrier {
    Bearer,
    /// The console's sign-in cookie: a write must also come from the console's origin.
    Cookie,
}

/// The request's token: `Authorization: Bearer`, else the console's cookie.
fn credential(headers: &HeaderMap) -> Option<(String, Carrier)> {
    if let Some(secret) = bearer(headers) {
        return Some((secret, Carrier::Bearer));
    }
    crate::adapters::console::session::cookie_secret(headers).map(|s| (s, Carrier::Cookie))
}

/// The secret of `Authorization: Bearer <secret>`, if that is what the request carries.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, secret) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| secret.trim().to_string())
}

/// What the guard checks requests against: the tokens, and each token's request rate.
#[derive(Clone)]
pub struct GuardState {
    pub access: Arc<Access>,
    pub rate: Arc<crate::adapters::limits::RateLimiter>,
}

/// The middleware: `axum::middleware::from_fn_with_state(GuardState { .. }, guard)`.
pub async fn guard(
    State(GuardState { access, rate }): State<GuardState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Need::Role(role) = need(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let credential = credential(request.headers());
    let safe = matches!(*request.method(), Method::GET | Method::HEAD);
    if credential
        .as_ref()
        .is_some_and(|(_, c)| *c == Carrier::Cookie)
        && !safe
        && !crate::adapters::console::session::same_origin(request.headers())
    {
        return refuse(
            StatusCode::FORBIDDEN,
            "a write signed in by the console's cookie must come from the console itself (its Origin header names another site or none); send the token as `Authorization: Bearer` instead".into(),
        );
    }
    // A person navigating to a console page (not a script's fetch, a live stream or an htmx
    // request: those get the 401 below and the page sends the reader to the sign-in).
    let console_page = safe
        && request.uri().path().starts_with("/console")
        && !request.headers().contains_key("hx-request")
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
    let secret = credential.map(|(s, _)| s);
    let decided =
        tokio::task::spawn_blocking(move || access.authorize(secret.as_deref(), role)).await;
    match decided {
        Ok(Ok(principal)) => {
            if let Err(wait) = rate.take(&principal.name, std::time::Instant::now()) {
                return rate.refusal(&principal.name, wait);
            }
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Ok(Err(AccessError::Denied(denied))) => {
            // The refusal names the token (when known) and the roles, never the secret.
            debug!(path = %request.uri().path(), reason = %denied, "request refused");
            if denied.unauthenticated() && console_page {
                // A person at a browser: to the sign-in, and back here after.
                let next = request
                    .uri()
                    .path_and_query()
                    .map_or("/console", |p| p.as_str());
                let to = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
                return axum::response::Redirect::to(&format!("/console/login?{to}"))
                    .into_response();
            }
            let status = if denied.unauthenticated() {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::FORBIDDEN
            };
            refuse(status, denied.to_string())
        }
        Ok(Err(e)) => refuse(StatusCode::SERVICE_UNAVAILABLE, chain(&e)),
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("checking the API token failed: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_the_role_its_effect_needs_and_unknown_writes_are_admin() {
        let get = |p| need(&Method::GET, p);
        let post = |p| need(&Method::POST, p);
        assert_eq!(get("/healthz"), Need::Public);
        assert_eq!(get("/metrics"), Need::Public);
        assert_eq!(post("/api/v1/slack/interactions"), Need::Public);
        assert_eq!(get("/api/v1/incidents/3"), Need::Role(Role::Viewer));
        assert_eq!(get("/api/v1/audit"), Need::Role(Role::Viewer));
        assert_eq!(post("/api/v1/tools/events"), Need::Role(Role::Viewer));
        assert_eq!(post("/mcp"), Need::Role(Role::Viewer));
        assert_eq!(
            post("/api/v1/incidents/3/actions/9/approve"),
            Need::Role(Role::Approver)
        );
        assert_eq!(
            post("/api/v1/incidents/3/actions/9/deny/"),
            Need::Role(Role::Approver)
        );
        assert_eq!(
            post("/api/v1/incidents/3/feedback"),
            Need::Role(Role::Approver)
        );
        assert_eq!(post("/api/v1/alertmanager"), Need::Role(Role::Approver));
        assert_eq!(get("/api/v1/tokens"), Need::Role(Role::Admin));
        assert_eq!(post("/api/v1/tokens"), Need::Role(Role::Admin));
        assert_eq!(
            need(&Method::DELETE, "/api/v1/tokens/ci"),
            Need::Role(Role::Admin)
        );
        assert_eq!(
            post("/api/v1/incidents/3/actions/9/run"),
            Need::Role(Role::Admin)
        );
        assert_eq!(post("/api/v1/something-new"), Need::Role(Role::Admin));
        assert_eq!(post("/healthz/../api/v1/tokens"), Need::Role(Role::Admin));
        assert_eq!(get("/"), Need::Public);
        assert_eq!(get("/console/assets/console.js"), Need::Public);
        assert_eq!(
            get("/console/assets/../incidents/1"),
            Need::Role(Role::Viewer)
        );
        assert_eq!(post("/console/login"), Need::Public);
        assert_eq!(get("/console"), Need::Role(Role::Viewer));
        assert_eq!(get("/console/incidents/4"), Need::Role(Role::Viewer));
        assert_eq!(get("/console/live/incidents"), Need::Role(Role::Viewer));
    }

    #[test]
    fn only_a_bearer_authorization_carries_a_secret() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, v.parse().expect("value"));
            bearer(&h)
        };
        assert_eq!(with("Bearer vigil_x"), Some("vigil_x".into()));
        assert_eq!(with("bearer  vigil_x "), Some("vigil_x".into()));
        assert_eq!(with("Basic dXNlcjpwYXNz"), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn the_header_wins_over_the_console_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "vigil_token=vigil_c".parse().expect("value"),
        );
        assert_eq!(credential(&h), Some(("vigil_c".into(), Carrier::Cookie)));
        h.insert(
            header::AUTHORIZATION,
            "Bearer vigil_b".parse().expect("value"),
        );
        assert_eq!(credential(&h), Some(("vigil_b".into(), Carrier::Bearer)));
    }
}
