//! An incident's evidence: its kernel events, the figures the diagnosis' tools read (before
//! and during), and small charts of the signals around the opening — the workload's kernel
//! events per kind over time, and each anomalous feature against its baseline median. Charts
//! are drawn by uPlot in the browser from the JSON in each `data-chart` attribute.

use std::collections::BTreeMap;

use maud::{html, Markup};
use serde::Serialize;

use super::{layout, ConsoleState, PageError};
use crate::{
    adapters::http::IncidentDetail,
    domain::{
        event::ports::EventQuery,
        incident::details::{AnomalyDetails, Details},
    },
};

/// Before and after the opening, the event chart covers this much on each side.
const AROUND_NS: i64 = 120_000_000_000;
/// Its bucket width.
const BUCKET_NS: i64 = 5_000_000_000;
/// Events read for it at most.
const MAX_EVENTS: usize = 5_000;
/// Anomalous features charted at most.
const MAX_FEATURES: usize = 4;

/// What uPlot draws: x in unix seconds, one series per label, and the opening as a marker.
#[derive(Debug, Serialize, PartialEq)]
pub struct Chart {
    pub title: String,
    pub x: Vec<f64>,
    pub series: Vec<Series>,
    pub marker: f64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Series {
    pub label: String,
    pub values: Vec<Option<f64>>,
}

/// Events per kind in `BUCKET_NS` buckets over `[from, to)`: (time, kind) pairs in.
pub fn event_rate(title: String, times: &[(i64, &str)], from: i64, to: i64, marker: i64) -> Chart {
    let buckets = ((to - from).max(BUCKET_NS) / BUCKET_NS) as usize;
    let mut per_kind: BTreeMap<&str, Vec<Option<f64>>> = BTreeMap::new();
    for (t, kind) in times {
        if *t < from || *t >= to {
            continue;
        }
        let i = ((t - from) / BUCKET_NS) as usize;
        let row = per_kind
            .entry(kind)
            .or_insert_with(|| vec![Some(0.0); buckets]);
        if let Some(Some(n)) = row.get_mut(i) {
            *n += 1.0;
        }
    }
    Chart {
        title,
        x: (0..buckets)
            .map(|i| (from + i as i64 * BUCKET_NS) as f64 / 1e9)
            .collect(),
        series: per_kind
            .into_iter()
            .map(|(k, values)| Series {
                label: k.to_string(),
                values,
            })
            .collect(),
        marker: marker as f64 / 1e9,
    }
}

/// Each of the strongest symptoms' values window by window, with the baseline median.
pub fn features(a: &AnomalyDetails, marker: i64) -> Vec<Chart> {
    a.symptoms
        .iter()
        .take(MAX_FEATURES)
        .filter_map(|sym| {
            let points: Vec<(f64, f64, f64)> = a
                .timeline
                .iter()
                .filter(|w| w.entity == sym.entity)
                .filter_map(|w| {
                    let f = w.features.iter().find(|f| f.feature == sym.feature)?;
                    Some((w.time_unix_ns as f64 / 1e9, f.value, f.median))
                })
                .collect();
            (!points.is_empty()).then(|| Chart {
                title: format!("{} · {}", sym.entity, sym.feature),
                x: points.iter().map(|p| p.0).collect(),
                series: vec![
                    Series {
                        label: sym.feature.clone(),
                        values: points.iter().map(|p| Some(p.1)).collect(),
                    },
                    Series {
                        label: "baseline median".into(),
                        values: points.iter().map(|p| Some(p.2)).collect(),
                    },
                ],
                marker: marker as f64 / 1e9,
            })
        })
        .collect()
}

fn chart(c: &Chart) -> Markup {
    let data = serde_json::to_string(c).unwrap_or_default();
    html! { figure.chart data-chart=(data) { figcaption { (c.title) } } }
}

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
pub fn evidence(s: &ConsoleState, d: &IncidentDetail) -> Result<Markup, PageError> {
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
        limit: MAX_EVENTS,
    })?;
    let times: Vec<(i64, &str)> = events
        .iter()
        .map(|e| (e.event.time_unix_ns, e.event.kind.name()))
        .collect();
    let mut charts = Vec::new();
    if !times.is_empty() {
        charts.push(event_rate(
            format!("kernel events of {} per 5 s", i.workload_key),
            &times,
            from,
            to,
            opened,
        ));
    }
    if let Details::ServiceAnomaly(a) = i.details() {
        charts.extend(features(a, opened));
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
            @if !charts.is_empty() { div.charts { @for c in &charts { (chart(c)) } } }
            h3 { "Kernel events" }
            @if d.evidence.is_empty() { p.muted { "None: the incident comes from metrics or an alert." } }
            @else {
                table.events {
                    thead { tr { th { "When" } th { "Node" } th { "Kind" } th { "Process" } th { "Detail" } } }
                    tbody {
                        @for e in &d.evidence {
                            tr data-kind=(e.event.kind.name()) {
                                td { (layout::time(e.event.time_unix_ns)) }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_fall_in_their_kind_and_bucket_and_outside_ones_are_left_out() {
        let s = 1_000_000_000;
        let times = [
            (0, "oom_kill"),
            (4 * s, "oom_kill"),
            (5 * s, "oom_kill"),
            (6 * s, "process_exit"),
            (-1, "oom_kill"),
            (15 * s, "oom_kill"),
        ];
        let c = event_rate("t".into(), &times, 0, 15 * s, 5 * s);
        assert_eq!(c.x, vec![0.0, 5.0, 10.0]);
        assert_eq!(c.marker, 5.0);
        assert_eq!(c.series[0].label, "oom_kill");
        assert_eq!(c.series[0].values, vec![Some(2.0), Some(1.0), Some(0.0)]);
        assert_eq!(c.series[1].label, "process_exit");
        assert_eq!(c.series[1].values, vec![Some(0.0), Some(1.0), Some(0.0)]);
    }
}
