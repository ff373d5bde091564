//! The console's static files, compiled into the binary: its own CSS and scripts, and the
//! libraries it uses (htmx 2.0.4, cytoscape.js 3.33.1, uPlot 1.6.32, vendored from npm with
//! their licences beside them in `assets/vendor/`), so a node with no network serves it whole.

use axum::{
    extract::Path,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};

/// (name served, content type, bytes).
const FILES: &[(&str, &str, &[u8])] = &[
    ("console.css", CSS, include_bytes!("assets/console.css")),
    ("console.js", JS, include_bytes!("assets/console.js")),
    ("graph.js", JS, include_bytes!("assets/graph.js")),
    (
        "htmx.min.js",
        JS,
        include_bytes!("assets/vendor/htmx-2.0.4.min.js"),
    ),
    (
        "cytoscape.min.js",
        JS,
        include_bytes!("assets/vendor/cytoscape-3.33.1.min.js"),
    ),
    (
        "uplot.min.js",
        JS,
        include_bytes!("assets/vendor/uplot-1.6.32.iife.min.js"),
    ),
    (
        "uplot.min.css",
        CSS,
        include_bytes!("assets/vendor/uplot-1.6.32.min.css"),
    ),
];

const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// The URL of an embedded file, with the build's version so a new binary's files are not
/// taken from a browser's cache.
pub fn path(name: &str) -> String {
    format!("/console/assets/{name}?v={}", env!("CARGO_PKG_VERSION"))
}

pub async fn serve(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, format!("no console asset {name:?}")).into_response(),
    }
}
