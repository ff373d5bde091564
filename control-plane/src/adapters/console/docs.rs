//! A runbook or postmortem a diagnosis cited, as the corpus holds it.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
    Extension,
};
use maud::{html, PreEscaped};

use super::{blocking, layout, markdown, respond, ConsoleState, PageError};
use crate::domain::access::Principal;

pub async fn page(
    State(s): State<ConsoleState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let corpus = s.corpus.clone();
    let wanted = id.clone();
    let doc = blocking(move || {
        corpus
            .get(&wanted)
            .map_err(|e| PageError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
    })
    .await?
    .ok_or_else(|| {
        PageError(
            StatusCode::NOT_FOUND,
            format!(
                "no document {id:?} in the corpus (it may have been removed since it was cited)"
            ),
        )
    })?;
    Ok(respond(layout::page(
        &doc.title,
        "/console",
        &who,
        html! {
            h1 { (doc.title) }
            p.muted {
                (doc.kind.as_str()) " · " code { (doc.id) }
                @if let Some(d) = &doc.date { " · " (d) }
                @if !doc.classes.is_empty() {
                    " · classes " (doc.classes.iter().map(|c| c.id()).collect::<Vec<_>>().join(", "))
                }
            }
            article.doc { (PreEscaped(markdown::to_html(&doc.body))) }
        },
    )))
}
