//! An incident's evidence section: charts of its signals, its kernel events, and the figures
//! the diagnosis' evidence tools read (before and now).

use maud::{html, Markup};

use super::{
    charts::{self, BUCKET_NS},
    format, ConsoleState, PageError,
};
use crate::{
    adapters::http::IncidentDetail,
    domain::{event::ports::EventQuery, incident::details::Details},
};

/// Before and after the onset, the event chart covers this much on each side.
const AROUND_NS: i64 = 120_000_000_000;
/// Events read for it at most.
const MAX_EVENTS: usize = 5_000;

/// A kernel event's own fields, without its type tag.
fn fields(kind: &crate::domain::event::EventKind) -> String {
    match serde_json::to_value(kind) {
        Ok(serde_json::Value::Object(m)) => m
            .iter()
            .filter(|(k, _)| *k != "type")
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The evidence section.
pub fn section(s: &ConsoleState, d: &IncidentDetail) -> Result<Markup, PageError> {
    let i = &d.incident;
    // The fault's onset: an anomaly's first window, else the opening.
    let opened = match i.details() {
        Details::ServiceAnomaly(a) => a.first_anomaly_unix_ns.unwrap_or(i.opened_unix_ns),
        _ => i.opened_unix_ns,
    };
    let now = s.api.clock.now_unix_ns();
    let (from, to) = (
        opened - AROUND_NS,
        (opened + AROUND_NS).min(now.max(opened + BUCKET_NS)),
    );
    let events = s.api.events.list_events(&EventQuery {
        node: None,
        kind: None,
        workload_key: Some(i.workload_key.to_string()),
        since_unix_ns: Some(from),
        until_unix_ns: Some(to),
        limit: MAX_EVENTS,
    })?;
    let times: Vec<(i64, &str)> = events
        .iter()
        .map(|e| (e.event.time_unix_ns, e.event.kind.name()))
        .collect();
    let mut plots = Vec::new();
    if !times.is_empty() {
        plots.push(charts::event_rate(
            format!("kernel events of {} per 5 s", i.workload_key),
            &times,
            from,
            to,
            opened,
        ));
    }
    if let Details::ServiceAnomaly(a) = i.details() {
        plots.extend(charts::features(a, opened));
    }
    let observations: Vec<_> = d
        .diagnosis
        .iter()
        .flat_map(|dx| dx.evidence.iter())
        .flat_map(|t| t.observations.iter().map(move |o| (t, o)))
        .collect();
    Ok(html! {
        section #evidence {
            h2 { "Evidence" }
            @if !plots.is_empty() { div.charts { @for c in &plots { (charts::chart(c)) } } }
            h3 { "Kernel events" }
            @if d.evidence.is_empty() { p.muted { "None: the incident comes from metrics or an alert." } }
            @else {
                table.events {
                    thead { tr { th { "When" } th { "Node" } th { "Kind" } th { "Process" } th { "Detail" } } }
                    tbody {
                        @for e in &d.evidence {
                            tr data-kind=(e.event.kind.name()) {
                                td { (format::time(e.event.time_unix_ns)) }
                                td { (e.event.node) }
                                td { (e.event.kind.name()) }
                                td { (e.event.task.comm) " (" (e.event.task.pid) ")" }
                                td { code { (fields(&e.event.kind)) } }
                            }
                        }
                    }
                }
            }
            @if !observations.is_empty() {
                h3 { "What the evidence tools read" }
                table.observations {
                    thead { tr { th { "Tool" } th { "On" } th { "Figure" } th { "Before" } th { "Now" } th { "" } } }
                    tbody {
                        @for (t, o) in &observations {
                            tr {
                                td { (t.tool) }
                                td { code { (t.entity) } }
                                td { (o.what) }
                                td { @if let Some(b) = o.before { (figure(b)) " " (o.unit) } @else { "–" } }
                                td { (figure(o.value)) " " (o.unit) }
                                td.muted { (o.detail) }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// A figure with as many digits as it needs.
fn figure(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}
