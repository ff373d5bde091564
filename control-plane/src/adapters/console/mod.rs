//! The operator console: one page per thing an on-call engineer works with — the incidents,
//! one incident (timeline, evidence, diagnosis, actions, audit trail), the service graph, the
//! nodes and the latest fault-lab report — served by the control plane on its HTTP port.
//!
//! Server-rendered HTML (maud) with htmx for the buttons, and server-sent events for live
//! updates: each live region re-renders on the server every second and is pushed only when
//! it changed. Assets (htmx, cytoscape.js for the graph, uPlot for charts, the console's own
//! CSS and JS) are compiled into the binary, so the console needs no network at run time.
//! Reads and writes go through the same access guard as the JSON API: the page hides what the
//! signed-in token's role may not do, and the server refuses it again on every request.

mod assets;
mod charts;
mod docs;
mod evidence;
mod format;
mod graph;
mod incident;
mod incidents;
mod lab;
mod layout;
mod live;
mod markdown;
mod nodes;
mod region;
pub mod session;

use std::{path::PathBuf, sync::Arc};

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};
use maud::{html, Markup};

use crate::{
    adapters::http::{ApiError, ApiState},
    domain::{access::Access, remediate::ports::RemediationStore, retrieve::ports::Corpus},
};

/// What the console reads, and the sign-in it checks tokens with.
#[derive(Clone)]
pub struct ConsoleState {
    pub api: ApiState,
    pub actions: Arc<dyn RemediationStore>,
    pub access: Arc<Access>,
    pub corpus: Arc<dyn Corpus>,
    /// The fault lab's `summary.md`, when configured.
    pub lab_report: Option<PathBuf>,
    /// Turns true when the control plane stops: live streams end then, or a graceful
    /// shutdown would wait for every open browser tab.
    pub stop: tokio::sync::watch::Receiver<bool>,
    /// Live regions' latest renderings, shared by the tabs that show them.
    pub renders: Arc<region::Renders>,
    /// The console is served over TLS (`[tls.api]`): its session cookie is `Secure`.
    pub secure_cookies: bool,
}

/// A page that could not be built: shown as a page that names the cause.
#[derive(Debug)]
pub struct PageError(StatusCode, String);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        let status = e.status();
        Self(status, vigil_config_file::error_chain(&e))
    }
}

impl From<crate::domain::store::StoreError> for PageError {
    fn from(e: crate::domain::store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<tokio::task::JoinError> for PageError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = html! {
            main.error {
                h1 { (self.0.as_u16()) " " (self.0.canonical_reason().unwrap_or("")) }
                p { (self.1) }
                p { a href="/console" { "Back to the incidents" } }
            }
        };
        (
            self.0,
            Html(layout::bare("Vigil: error", body).into_string()),
        )
            .into_response()
    }
}

/// Runs store reads off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PageError> + Send + 'static,
) -> Result<T, PageError> {
    tokio::task::spawn_blocking(f).await?
}

fn respond(markup: Markup) -> Response {
    Html(markup.into_string()).into_response()
}

/// What a console response may load and where it may be framed: scripts only from the
/// console's own compiled-in files (no inline script, no `eval`), no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(incidents::page))
        .route("/console/incidents/table", get(incidents::table_fragment))
        .route("/console/incidents/{id}", get(incident::page))
        .route("/console/graph", get(graph::page))
        .route("/console/graph.json", get(graph::data))
        .route("/console/nodes", get(nodes::page))
        .route("/console/lab", get(lab::page))
        .route("/console/docs/{id}", get(docs::page))
        .route("/console/live/incidents", get(live::incidents))
        .route("/console/live/incidents/{id}", get(live::incident))
        .route("/console/live/nodes", get(live::nodes))
        .route(
            "/console/login",
            get(session::login_page).post(session::login),
        )
        .route("/console/logout", post(session::logout))
        .route("/console/assets/{name}", get(assets::serve))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}
