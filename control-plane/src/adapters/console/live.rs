//! Live regions: a part of a page that the server re-renders every second and pushes over
//! server-sent events when it changed (`event: changed`, the new HTML as data). The page
//! carries a hash of what it shows, so a stream that connects after a change sends it at
//! once, and one that connects before sends nothing until there is something new. Times are
//! rendered as fixed UTC text (ages are the browser's), so an unchanged region hashes the same.

use std::{
    convert::Infallible,
    hash::{DefaultHasher, Hash, Hasher},
    time::Duration,
};

use axum::{
    extract::{Path, Query, State},
    response::sse::{Event, KeepAlive, Sse},
};
use futures::Stream;
use maud::{html, Markup};
use serde::Deserialize;

use super::{incident, incidents, nodes, ConsoleState, PageError};
use crate::domain::incident::IncidentId;

/// How often a live region is rendered again.
const TICK: Duration = Duration::from_secs(1);

/// A region's identity for the stream: a hash of its HTML, in hex.
pub fn version(markup: &Markup) -> String {
    let mut h = DefaultHasher::new();
    markup.0.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// A live region: `body` now, replaced by what `stream_url` pushes.
pub fn region(id: &str, stream_url: &str, body: Markup) -> Markup {
    let v = version(&body);
    let sep = if stream_url.contains('?') { '&' } else { '?' };
    html! {
        div.live id=(id) data-live={ (stream_url) (sep) "since=" (v) } data-version=(v) {
            (body)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Since {
    since: Option<String>,
}

type Render = Box<dyn Fn(&ConsoleState) -> Result<Markup, PageError> + Send + Sync>;

/// Renders every `TICK` and yields what differs from the last version sent (or the page's).
fn stream(
    s: ConsoleState,
    since: Option<String>,
    render: Render,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let render = std::sync::Arc::new(render);
    let first = true;
    let events = futures::stream::unfold(
        (s, since, render, first),
        |(s, mut last, render, mut first)| async move {
            let mut stop = s.stop.clone();
            loop {
                if *stop.borrow() {
                    return None;
                }
                if !first {
                    tokio::select! {
                        _ = tokio::time::sleep(TICK) => {}
                        _ = stop.changed() => return None,
                    }
                }
                first = false;
                let (state, r) = (s.clone(), render.clone());
                let rendered = tokio::task::spawn_blocking(move || r(&state)).await;
                let markup = match rendered {
                    Ok(Ok(m)) => m,
                    // A store that fails now may answer next time; the page keeps what it has.
                    Ok(Err(e)) => {
                        tracing::debug!(error = ?e, "live region not rendered");
                        continue;
                    }
                    Err(_) => continue,
                };
                let v = version(&markup);
                if last.as_deref() == Some(v.as_str()) {
                    continue;
                }
                let event = Event::default()
                    .event("changed")
                    .id(v.clone())
                    .data(markup.into_string());
                last = Some(v);
                return Some((Ok(event), (s, last, render, first)));
            }
        },
    );
    Sse::new(events).keep_alive(KeepAlive::default())
}

pub async fn incidents(
    State(s): State<ConsoleState>,
    Query(f): Query<incidents::Filter>,
    Query(since): Query<Since>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    stream(
        s,
        since.since,
        Box::new(move |s| Ok(incidents::table(&incidents::rows(s, &f)?))),
    )
}

pub async fn incident(
    State(s): State<ConsoleState>,
    axum::Extension(who): axum::Extension<crate::domain::access::Principal>,
    Path(id): Path<i64>,
    Query(since): Query<Since>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    stream(
        s,
        since.since,
        Box::new(move |s| incident::body(s, IncidentId(id), &who)),
    )
}

pub async fn nodes(
    State(s): State<ConsoleState>,
    Query(since): Query<Since>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    stream(s, since.since, Box::new(nodes::table))
}
