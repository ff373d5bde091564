//! The nodes: each agent's kernel, version, probes attached (and why any is not), events
//! lost by where, and whether it sheds telemetry to stay within its budget (its evidence is
//! then weaker: see remediation's `evidence_trusted` rule). Live.

use axum::{extract::State, response::Response, Extension};
use maud::{html, Markup};

use super::{blocking, format, layout, region, respond, ConsoleState, PageError};
use crate::domain::access::Principal;

pub fn table(s: &ConsoleState) -> Result<Markup, PageError> {
    let nodes = s.api.nodes.list_nodes()?;
    Ok(html! {
        @if nodes.is_empty() { p.muted { "No agent has connected yet." } }
        table.nodes {
            thead { tr {
                th { "Node" } th { "Kernel" } th { "Agent" } th { "Probes" } th { "Lost events" }
                th { "Telemetry" } th { "Last seen" }
            } }
            tbody {
                @for n in &nodes {
                    @let failed: Vec<_> = n.probes.iter().filter(|(_, e)| !e.is_empty()).collect();
                    tr.node data-node=(n.name) data-degraded=(n.stats.is_degraded()) {
                        td { (n.name) }
                        td { (n.kernel_release) }
                        td { (n.agent_version) }
                        td {
                            (n.probes.len() - failed.len()) " / " (n.probes.len()) " attached"
                            @if !failed.is_empty() {
                                details { summary { (failed.len()) " not attached" }
                                    ul { @for (p, e) in &failed { li { code { (p) } ": " (e) } } }
                                }
                            }
                        }
                        td {
                            @for (place, n) in n.stats.losses() {
                                span.loss.bad[n > 0] { (place) " " (n) } " "
                            }
                        }
                        td {
                            @if n.stats.is_degraded() {
                                span.state.escalated { "DEGRADED" } " shedding " (n.stats.shed.join(", "))
                                " (" (n.stats.degraded_cause) ")"
                            } @else { "full" }
                        }
                        td { (format::time(n.last_seen_unix_ns)) }
                    }
                }
            }
        }
    })
}

pub async fn page(
    State(s): State<ConsoleState>,
    Extension(who): Extension<Principal>,
) -> Result<Response, PageError> {
    let body = {
        let s = s.clone();
        blocking(move || table(&s)).await?
    };
    Ok(respond(layout::page(
        "nodes",
        "/console/nodes",
        &who,
        html! {
            h1 { "Nodes" }
            (region::region("nodes", "/console/live/nodes", body))
        },
    )))
}
