//! The latest fault-lab report: the `summary.md` `cargo xtask lab` writes, when the control
//! plane's `[console] lab_report` names it.

use axum::{extract::State, response::Response, Extension};
use maud::{html, PreEscaped};

use super::{blocking, format, layout, markdown, respond, ConsoleState, PageError};
use crate::domain::access::Principal;

pub async fn page(
    State(s): State<ConsoleState>,
    Extension(who): Extension<Principal>,
) -> Result<Response, PageError> {
    let path = s.lab_report.clone();
    let report = blocking(move || {
        Ok(path.map(|p| {
            let modified = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos() as i64);
            (p.clone(), std::fs::read_to_string(&p), modified)
        }))
    })
    .await?;
    Ok(respond(layout::page(
        "fault lab",
        "/console/lab",
        &who,
        html! {
            h1 { "Fault lab" }
            @match report {
                None => {
                    p.muted {
                        "No lab report configured: set " code { "[console] lab_report" }
                        " to the lab's summary.md (" code { "cargo xtask lab" } " writes "
                        code { "reports/lab/summary.md" } ")."
                    }
                },
                Some((path, Err(e), _)) => {
                    p.flash.bad {
                        "The lab report " code { (path.display()) } " cannot be read: " (e)
                        " (run " code { "cargo xtask lab" } ", or fix " code { "[console] lab_report" } ")."
                    }
                },
                Some((path, Ok(text), modified)) => {
                    p.muted { code { (path.display()) } @if let Some(m) = modified { ", written " (format::time(m)) } }
                    article.doc.lab { (PreEscaped(markdown::to_html(&text))) }
                },
            }
        },
    )))
}
