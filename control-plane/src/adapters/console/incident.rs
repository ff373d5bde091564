//! One incident: what it is, the timeline of its stages, the evidence (kernel events, the
//! figures the evidence tools read, charts of the signals), the diagnosis with each voter's
//! stand and its citations, the actions with their policy decisions (approve and deny for
//! approvers), and the incident's audit trail. Everything below the title is one live region.

use axum::{
    extract::{Path, State},
    response::Response,
    Extension,
};
use maud::{html, Markup};

use super::{blocking, evidence, format, layout, region, respond, ConsoleState, PageError};
use crate::{
    adapters::http::{incident_detail, IncidentDetail},
    domain::{
        access::{Principal, Role},
        audit::AuditRecord,
        diagnose::Diagnosis,
        incident::IncidentId,
        remediate::{ActionRecord, ActionState},
    },
};

/// Audit records read to find one incident's trail (the newest this many).
const AUDIT_SCAN: usize = 10_000;

/// One step of the timeline: (stage, when, what it concluded).
struct Step {
    stage: String,
    at_unix_ns: i64,
    took_ns: Option<i64>,
    note: String,
}

fn timeline(d: &IncidentDetail, actions: &[ActionRecord]) -> Vec<Step> {
    // The pipeline's stages are those of the finding that last updated the incident.
    let latest = if d.incident.occurrences > 1 {
        " (latest occurrence)"
    } else {
        ""
    };
    let mut steps: Vec<Step> = vec![Step {
        stage: "open".into(),
        at_unix_ns: d.incident.opened_unix_ns,
        took_ns: None,
        note: format!("{} occurrence(s) since", d.incident.occurrences),
    }];
    steps.extend(d.incident.stages().iter().map(|s| {
        Step {
            stage: s.stage.clone(),
            at_unix_ns: s.start_unix_ns,
            took_ns: Some(s.end_unix_ns - s.start_unix_ns),
            note: s
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
                + latest,
        }
    }));
    if let Some(dx) = &d.diagnosis {
        steps.push(Step {
            stage: "diagnose".into(),
            at_unix_ns: dx.diagnosed_unix_ns,
            took_ns: None,
            note: format!(
                "{} at {}",
                dx.class.map(|c| c.id()).unwrap_or("no class"),
                format::confidence(dx.confidence)
            ),
        });
    }
    for a in actions {
        steps.push(Step {
            stage: "remediate".into(),
            at_unix_ns: a.decided_unix_ns,
            took_ns: None,
            note: format!(
                "{} on {}: {}",
                a.step.action.as_str(),
                a.request.target,
                format::wire(&a.verdict)
            ),
        });
        if let Some(executed) = a.executed_unix_ns {
            let judged = !matches!(a.state, ActionState::Verifying);
            steps.push(Step {
                stage: "verify".into(),
                at_unix_ns: executed,
                took_ns: None,
                note: if judged {
                    format!("{}: {}", a.state.as_str(), a.outcome)
                } else {
                    "watching the incident's signals".into()
                },
            });
        }
    }
    if let Some(resolved) = d.incident.resolved_unix_ns {
        steps.push(Step {
            stage: "resolve".into(),
            at_unix_ns: resolved,
            took_ns: None,
            note: String::new(),
        });
    }
    steps.sort_by_key(|s| s.at_unix_ns);
    steps
}

fn timeline_view(d: &IncidentDetail, actions: &[ActionRecord]) -> Markup {
    let steps = timeline(d, actions);
    let origin = steps
        .first()
        .map_or(d.incident.opened_unix_ns, |s| s.at_unix_ns);
    html! {
        section #timeline {
            h2 { "Timeline" }
            ol.timeline {
                @for s in &steps {
                    li data-stage=(s.stage) {
                        span.stage { (s.stage) }
                        span.at { (format::time(s.at_unix_ns)) " (+" (format::span(s.at_unix_ns - origin)) ")" }
                        @if let Some(took) = s.took_ns { span.took { "took " (format::span(took)) } }
                        @if !s.note.is_empty() { span.note { (s.note) } }
                    }
                }
            }
        }
    }
}

fn diagnosis_view(dx: Option<&Diagnosis>) -> Markup {
    let Some(dx) = dx else {
        return html! { section #diagnosis { h2 { "Diagnosis" } p.muted { "Not diagnosed yet." } } };
    };
    html! {
        section #diagnosis {
            h2 { "Diagnosis" }
            p.verdict {
                strong.class { (dx.class.map(|c| c.id()).unwrap_or("no class")) }
                " at " strong { (format::confidence(dx.confidence)) }
                " (gate " (format::confidence(dx.gate)) ") → "
                span class={ "route " (dx.route.as_str()) } { (dx.route.as_str()) }
                @if let Some(s) = &dx.subject { " · acts on " code { (s) } }
                @if dx.llm { " · an LLM took part, checked against the evidence" }
            }
            p.explanation { (dx.explanation) }
            h3 { "Confidence by evidence tool" }
            table.breakdown {
                thead { tr { th { "Tool" } th { "Voted" } th { "Strength" } th { "Agrees" } th { "Why" } } }
                tbody {
                    @for b in &dx.breakdown {
                        tr.agrees[b.agrees] {
                            td { (b.voter) }
                            td { (b.class.map(|c| c.id()).unwrap_or("–")) }
                            td { meter min="0" max="1" value=(b.strength) {} " " (format!("{:.2}", b.strength)) }
                            td { @if b.agrees { "yes" } @else { "no" } }
                            td { (b.reason) }
                        }
                    }
                }
            }
            @if !dx.citations.is_empty() {
                h3 { "Cited runbooks and postmortems" }
                ul.citations {
                    @for c in &dx.citations {
                        li { a href={ "/console/docs/" (format::segment(&c.id)) } { (c.title) } " (" (c.kind) ", " (format!("{:.2}", c.score)) ")" }
                    }
                }
            }
            @if !dx.recommended_actions.is_empty() {
                h3 { "Recommended" }
                ul { @for r in &dx.recommended_actions { li { (r) } } }
            }
        }
    }
}

fn actions_view(
    incident: IncidentId,
    actions: &[ActionRecord],
    who: &Principal,
    now_unix_ns: i64,
) -> Markup {
    let approver = who.role.permits(Role::Approver);
    // An approval past its time is refused by the server; the page does not offer it.
    let open = |a: &ActionRecord| {
        a.state == ActionState::PendingApproval && a.expires_unix_ns.is_none_or(|e| e > now_unix_ns)
    };
    html! {
        section #actions {
            h2 { "Actions" }
            @if actions.is_empty() { p.muted { "None proposed." } }
            @for a in actions {
                div.action data-action=(a.id.0) data-state=(a.state.as_str()) {
                    p {
                        strong { (a.step.action.as_str()) } " on " code { (a.request.target) }
                        " · phase " (format::wire(&a.phase)) " · policy: " (format::wire(&a.verdict))
                        " · " span class={ "state " (a.state.as_str()) } { (a.state.as_str()) }
                    }
                    p.muted {
                        "decided " (format::time(a.decided_unix_ns))
                        @if let Some(e) = a.expires_unix_ns { " · approval until " (format::time(e)) }
                        @if let Some(by) = &a.approved_by { " · approved by " (by) }
                        @if let Some(x) = a.executed_unix_ns { " · ran " (format::time(x)) }
                    }
                    @if !a.outcome.is_empty() { p.outcome { (a.outcome) } }
                    @if approver && open(a) {
                        div.buttons {
                            @let base = format!("/api/v1/incidents/{}/actions/{}", incident.0, a.id.0);
                            button.approve hx-post={ (base) "/approve" } hx-swap="none"
                                hx-confirm={ "Run " (a.step.action.as_str()) " on " (a.request.target) "?" } { "Approve" }
                            button.deny hx-post={ (base) "/deny" } hx-swap="none"
                                hx-confirm={ "Deny " (a.step.action.as_str()) " on " (a.request.target) "?" } { "Deny" }
                        }
                    }
                }
            }
        }
    }
}

fn audit_view(records: &[AuditRecord]) -> Markup {
    html! {
        section #audit {
            h2 { "Audit trail" }
            table.audit {
                thead { tr { th { "#" } th { "When" } th { "Kind" } th { "Actor" } th { "Summary" } } }
                tbody {
                    @for r in records {
                        tr { td { (r.seq) } td { (format::time(r.at_unix_ns)) } td { (format::wire(&r.kind)) } td { (r.actor) } td { (r.summary) } }
                    }
                }
            }
        }
    }
}

/// Everything below the title: the live region's content.
pub fn body(s: &ConsoleState, id: IncidentId, who: &Principal) -> Result<Markup, PageError> {
    Ok(render(s, id, who)?.1)
}

/// The incident's title and the live region's content, from one read of the incident.
fn render(
    s: &ConsoleState,
    id: IncidentId,
    who: &Principal,
) -> Result<(String, Markup), PageError> {
    let d = incident_detail(&s.api, id)?;
    let actions = s.actions.actions(Some(id), 0)?;
    let audit = s.api.audit.trail(id, AUDIT_SCAN)?;
    let now = s.api.clock.now_unix_ns();
    let i = &d.incident;
    let markup = html! {
        p.badges {
            span class={ "sev " (i.severity.as_str()) } { (i.severity.as_str()) }
            span #status class={ "status " (i.status.as_str()) } { (i.status.as_str()) }
            span { (i.kind.as_str()) }
            span { "workload " code { (i.workload_key) } }
            span { "node " (i.node) }
            span { (i.occurrences) " occurrence" @if i.occurrences != 1 { "s" } }
            span { "opened " (format::time(i.opened_unix_ns)) }
        }
        p.summary { (i.summary) }
        (timeline_view(&d, &actions))
        (diagnosis_view(d.diagnosis.as_ref()))
        (actions_view(id, &actions, who, now))
        (evidence::section(s, &d)?)
        (audit_view(&audit))
    };
    Ok((d.incident.title.clone(), markup))
}

pub async fn page(
    State(s): State<ConsoleState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let id = IncidentId(id);
    let (title, body) = {
        let (s, who) = (s.clone(), who.clone());
        blocking(move || render(&s, id, &who)).await?
    };
    Ok(respond(layout::page(
        &format!("incident {}", id.0),
        "/console",
        &who,
        html! {
            h1 { "#" (id.0) " " (title) }
            (region::region("incident", &format!("/console/live/incidents/{}", id.0), body))
        },
    )))
}
