//! The incidents page: open and recent incidents, newest first, with their severity, class,
//! confidence, root cause and age; filters by status, kind and workload; the table updates
//! live (see `live`).

use axum::{
    extract::{Query, State},
    response::Response,
    Extension,
};
use maud::{html, Markup};
use serde::Deserialize;

use super::{blocking, format, layout, region, respond, ConsoleState, PageError};
use crate::{
    adapters::http::incident_list,
    domain::{
        access::Principal,
        diagnose::Diagnosis,
        incident::{details::Details, Incident, IncidentKind},
    },
};

/// Rows a page shows unless asked for more; at most `MAX_ROWS`.
const DEFAULT_ROWS: usize = 200;
const MAX_ROWS: usize = 1_000;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filter {
    pub status: Option<String>,
    pub kind: Option<String>,
    pub workload: Option<String>,
    pub limit: Option<usize>,
}

impl Filter {
    fn rows(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_ROWS).clamp(1, MAX_ROWS)
    }

    fn nonempty(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }

    /// The filter as a query string, for the live stream and the table's own URL.
    pub fn query(&self) -> String {
        let mut pairs = Vec::new();
        for (k, v) in [
            ("status", Self::nonempty(&self.status)),
            ("kind", Self::nonempty(&self.kind)),
            ("workload", Self::nonempty(&self.workload)),
        ] {
            if let Some(v) = v {
                pairs.push((k, v.to_string()));
            }
        }
        pairs.push(("limit", self.rows().to_string()));
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

/// An incident as a row shows it.
pub struct Row {
    pub incident: Incident,
    pub diagnosis: Option<Diagnosis>,
}

/// The incidents the filter selects, each with its diagnosis.
pub fn rows(s: &ConsoleState, f: &Filter) -> Result<Vec<Row>, PageError> {
    let workload = Filter::nonempty(&f.workload).map(str::to_lowercase);
    // The store filters by status and kind; a workload is matched here, over more rows.
    let fetch = if workload.is_some() { 10_000 } else { f.rows() };
    let mut rows = Vec::new();
    for incident in incident_list(
        &s.api,
        Filter::nonempty(&f.status),
        Filter::nonempty(&f.kind),
        fetch,
    )? {
        if let Some(w) = &workload {
            if !incident
                .workload_key
                .to_string()
                .to_lowercase()
                .contains(w.as_str())
            {
                continue;
            }
        }
        let diagnosis = s.api.diagnoses.diagnosis(incident.id)?;
        rows.push(Row {
            incident,
            diagnosis,
        });
        if rows.len() == f.rows() {
            break;
        }
    }
    Ok(rows)
}

/// Where the evidence places the fault: the diagnosis' subject, the top-ranked root cause of
/// an anomaly, else the incident's own workload.
pub fn root_cause(incident: &Incident, diagnosis: Option<&Diagnosis>) -> String {
    if let Some(subject) = diagnosis.and_then(|d| d.subject.as_ref()) {
        return subject.to_string();
    }
    if let Details::ServiceAnomaly(a) = incident.details() {
        if let Some(top) = a.root_causes.first() {
            return top.entity.to_string();
        }
    }
    incident.workload_key.to_string()
}

/// The table: what the live stream re-renders and pushes.
pub fn table(rows: &[Row]) -> Markup {
    html! {
        p.count { (rows.len()) " incident" @if rows.len() != 1 { "s" } }
        table.incidents {
            thead { tr {
                th { "#" } th { "Severity" } th { "Status" } th { "Kind" } th { "Class" }
                th { "Confidence" } th { "Root cause" } th { "Title" } th { "Opened" }
            } }
            tbody {
                @for r in rows {
                    @let i = &r.incident;
                    tr.incident data-id=(i.id.0) data-status=(i.status.as_str()) data-kind=(i.kind.as_str()) data-workload=(i.workload_key) {
                        td { a href={ "/console/incidents/" (i.id.0) } { (i.id.0) } }
                        td { span class={ "sev " (i.severity.as_str()) } { (i.severity.as_str()) } }
                        td { span class={ "status " (i.status.as_str()) } { (i.status.as_str()) } }
                        td { (i.kind.as_str()) }
                        @match &r.diagnosis {
                            Some(d) => {
                                td.class { (d.class.map(|c| c.id()).unwrap_or("unknown")) }
                                td { (format::confidence(d.confidence)) " " span class={ "route " (d.route.as_str()) } { (d.route.as_str()) } }
                            }
                            None => { td.muted { "diagnosing…" } td {} }
                        }
                        td { code { (root_cause(i, r.diagnosis.as_ref())) } }
                        td.title { a href={ "/console/incidents/" (i.id.0) } { (i.title) } }
                        td { (format::time(i.opened_unix_ns)) }
                    }
                }
            }
        }
    }
}

fn filters(f: &Filter) -> Markup {
    let selected = |v: &Option<String>, want: &str| v.as_deref() == Some(want);
    html! {
        form.filters method="get" action="/console" {
            label { "Status "
                select name="status" data-autosubmit {
                    option value="" { "any" }
                    @for s in ["open", "resolved"] {
                        option value=(s) selected[selected(&f.status, s)] { (s) }
                    }
                }
            }
            label { "Kind "
                select name="kind" data-autosubmit {
                    option value="" { "any" }
                    @for k in IncidentKind::ALL {
                        option value=(k.as_str()) selected[selected(&f.kind, k.as_str())] { (k.as_str()) }
                    }
                }
            }
            label { "Workload "
                input type="search" name="workload" placeholder="cgroup/…, k8s/ns/…"
                    value=(f.workload.clone().unwrap_or_default());
            }
            input type="hidden" name="limit" value=(f.rows());
            button type="submit" { "Filter" }
        }
    }
}

pub async fn page(
    State(s): State<ConsoleState>,
    Extension(who): Extension<Principal>,
    Query(f): Query<Filter>,
) -> Result<Response, PageError> {
    let body = {
        let f = f.clone();
        blocking(move || Ok(table(&rows(&s, &f)?))).await?
    };
    let live_url = format!("/console/live/incidents?{}", f.query());
    Ok(respond(layout::page(
        "incidents",
        "/console",
        &who,
        html! {
            h1 { "Incidents" }
            (filters(&f))
            (region::region("incidents", &live_url, body))
        },
    )))
}

/// The table alone (what a script or a test may fetch).
pub async fn table_fragment(
    State(s): State<ConsoleState>,
    Query(f): Query<Filter>,
) -> Result<Response, PageError> {
    let body = blocking(move || Ok(table(&rows(&s, &f)?))).await?;
    Ok(respond(body))
}
