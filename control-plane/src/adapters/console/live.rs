//! Live regions: a part of a page that the server re-renders every second and pushes over
//! server-sent events when it changed (`event: changed`, the new HTML as data, its version as
//! the event id). The page carries the version it shows, and a reconnecting browser sends the
//! last one it got (`Last-Event-ID`), so a stream sends a change it missed at once and nothing
//! otherwise. Times are rendered as fixed UTC text (ages are the browser's), so an unchanged
//! region hashes the same.
//!
//! A stream lives `MAX_LIFE` and then ends: the browser reconnects through the access guard,
//! so a revoked token or a smaller role takes effect within that time. Tabs showing the same
//! region share one rendering per tick (`Renders`).

use std::{
    convert::Infallible,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::sse::{Event, KeepAlive, Sse},
    Extension,
};
use futures::Stream;
use maud::Markup;
use serde::Deserialize;

use super::{incident, incidents, nodes, region::version, ConsoleState, PageError};
use crate::domain::{access::Principal, incident::IncidentId};

/// How often a live region is rendered again.
const TICK: Duration = Duration::from_secs(1);
/// How long one stream lives before the browser must reconnect (and be authorized again).
const MAX_LIFE: Duration = Duration::from_secs(120);

#[derive(Debug, Deserialize)]
pub struct Since {
    since: Option<String>,
}

/// What the browser already shows: the last event it got, else the page's version.
fn shown(headers: &HeaderMap, since: Since) -> Option<String> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(since.since)
}

type Render = Arc<dyn Fn(&ConsoleState) -> Result<Markup, PageError> + Send + Sync>;

enum Next {
    /// The event, and the version it carries.
    Send(Event, String),
    End,
}

/// One tick: render (or reuse) and compare with what the browser has.
async fn tick(s: &ConsoleState, key: &str, render: &Render, last: &Option<String>) -> Option<Next> {
    let (state, r, key) = (s.clone(), render.clone(), key.to_string());
    let rendered =
        tokio::task::spawn_blocking(move || state.renders.get_or_render(&key, || r(&state))).await;
    let markup = match rendered {
        Ok(Ok(m)) => m,
        // Gone (an incident that does not exist): nothing will ever change.
        Ok(Err(PageError(StatusCode::NOT_FOUND, _))) => return Some(Next::End),
        // A store that fails now may answer next time; the page keeps what it has.
        Ok(Err(e)) => {
            tracing::debug!(error = ?e, "live region not rendered");
            return None;
        }
        Err(_) => return None,
    };
    let v = version(&markup);
    if last.as_deref() == Some(v.as_str()) {
        return None;
    }
    Some(Next::Send(
        Event::default()
            .event("changed")
            .id(v.clone())
            .data(markup.into_string()),
        v,
    ))
}

/// Renders every `TICK` and yields what differs from what the browser shows, until the
/// control plane stops or `MAX_LIFE` passes.
fn stream(
    s: ConsoleState,
    key: String,
    since: Option<String>,
    render: Render,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let born = Instant::now();
    let events = futures::stream::unfold((s, since, true), move |(s, mut last, mut first)| {
        let (key, render) = (key.clone(), render.clone());
        async move {
            let mut stop = s.stop.clone();
            loop {
                if *stop.borrow() || born.elapsed() >= MAX_LIFE {
                    return None;
                }
                if !first {
                    tokio::select! {
                        _ = tokio::time::sleep(TICK) => {}
                        _ = stop.changed() => return None,
                    }
                }
                first = false;
                match tick(&s, &key, &render, &last).await {
                    None => continue,
                    Some(Next::End) => return None,
                    Some(Next::Send(event, v)) => {
                        // What the browser shows from now on.
                        last = Some(v);
                        return Some((Ok(event), (s, last, first)));
                    }
                }
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

pub async fn incidents(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Query(f): Query<incidents::Filter>,
    Query(since): Query<Since>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let key = format!("incidents?{}", f.query());
    let render: Render = Arc::new(move |s| Ok(incidents::table(&incidents::rows(s, &f)?)));
    stream(s, key, shown(&headers, since), render)
}

pub async fn incident(
    State(s): State<ConsoleState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(since): Query<Since>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // What the page shows depends on the role (the approve button), not on the name.
    let key = format!("incident/{id}/{}", who.role.as_str());
    let render: Render = Arc::new(move |s| incident::body(s, IncidentId(id), &who));
    stream(s, key, shown(&headers, since), render)
}

pub async fn nodes(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Query(since): Query<Since>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    stream(
        s,
        "nodes".into(),
        shown(&headers, since),
        Arc::new(nodes::table),
    )
}
