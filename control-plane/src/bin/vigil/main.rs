//! `vigil`: the operator's CLI over the control plane's REST API.

mod actions;
mod audit;
mod certs;
mod client;
mod tokens;

use std::{collections::HashMap, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use client::Api;
use serde_json::Value;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Vigil: incidents, events and nodes from the control plane"
)]
struct Cli {
    /// Control plane REST API.
    #[arg(
        long,
        global = true,
        env = "VIGIL_API",
        default_value = "http://127.0.0.1:8080"
    )]
    api: String,
    /// A file holding the API token (a fresh control plane writes its admin token to
    /// `admin-token` beside its store). VIGIL_TOKEN, if set, is used instead.
    #[arg(long, global = true, env = "VIGIL_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,
    /// The CA to trust for an https API (e.g. `vigil certs`' ca.pem), besides the system's.
    #[arg(long, global = true, env = "VIGIL_CA_FILE")]
    ca_file: Option<std::path::PathBuf>,
    /// Print raw JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Development certificates for mutual TLS: a CA and what it signs.
    Certs {
        #[command(subcommand)]
        command: certs::CertsCommand,
    },
    /// List incidents, newest first.
    Incidents {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show one incident with its kernel evidence and diagnosis; or judge the diagnosis.
    Incident {
        id: i64,
        #[command(subcommand)]
        judge: Option<Judge>,
    },
    /// Every operator verdict on a diagnosis, and how often Vigil was right.
    Feedback,
    /// Follow incidents as they open and update (Ctrl-C to stop).
    Watch {
        /// Poll interval in milliseconds.
        #[arg(long, default_value_t = 500)]
        interval_ms: u64,
    },
    /// List kernel events, newest first.
    Events {
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        node: Option<String>,
        #[arg(long)]
        workload: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// List nodes, their probes and what they lost.
    Nodes,
    /// The service dependency graph: who talks to whom, with failures, retransmits and RTT,
    /// and for HTTP, Redis and PostgreSQL edges requests/s, error %, unanswered and p99.
    Graph {
        /// Print Graphviz DOT (pipe into `dot -Tsvg`).
        #[arg(long)]
        dot: bool,
    },
    /// Everything that transitively depends on an entity (a workload key, `ip:port`, …).
    BlastRadius { entity: String },
    /// Print the IncidentReport CustomResourceDefinition (YAML; pipe into `kubectl apply -f -`).
    Crdgen,
    /// Remediation's actions: proposed, decided, run, verified.
    Actions {
        #[arg(long)]
        incident: Option<i64>,
        /// Each action class's record instead: its phase, how often it ran, and how its
        /// verifications ended (what has earned promotion).
        #[arg(long, conflicts_with = "incident")]
        record: bool,
    },
    /// Approve an action waiting for an approver (assist phase); the guardrails judge it again.
    /// The approver recorded is the token's name (an approver or admin token).
    Approve {
        incident: i64,
        action: i64,
        /// Why (kept in the audit log with the approval).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Refuse an action waiting for an approver.
    Deny {
        incident: i64,
        action: i64,
        #[arg(long)]
        reason: Option<String>,
    },
    /// The audit log: every step taken on incidents, chained and signed. With no subcommand,
    /// the latest records.
    Audit {
        #[command(subcommand)]
        command: Option<audit::AuditCommand>,
        /// Records after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// API tokens (admin): list, create with a role, revoke.
    Tokens {
        #[command(subcommand)]
        command: tokens::TokensCommand,
    },
    /// Which token this CLI is using, and its role.
    Whoami,
    /// Serve Vigil's read-only evidence tools and incidents over MCP on stdin/stdout, for an
    /// agent (Claude Desktop, an IDE, your own), with the control plane's API behind them.
    Mcp,
}

/// The operator's word on a diagnosis, kept for accuracy reports and learning.
#[derive(Debug, Subcommand)]
enum Judge {
    /// The diagnosed class is right.
    Confirm {
        #[arg(long)]
        note: Option<String>,
    },
    /// The incident was another class (a taxonomy id, e.g. `network_loss`).
    Correct {
        #[arg(long)]
        class: String,
        #[arg(long)]
        note: Option<String>,
    },
}

fn f(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}

fn edge_line(e: &Value) -> String {
    let rtt = e
        .get("recent_rtt_us")
        .or_else(|| e.get("rtt_us"))
        .and_then(Value::as_f64)
        .map_or("-".to_string(), |us| format!("{:.2}ms", us / 1000.0));
    format!(
        "{:<44} → {:<44} conn {:>7}  failed {:>5}  resets {:>5}  retx {:>5} ({:.2}%)  rtt {:>8}  bytes {}/{}",
        s(e, "from"),
        s(e, "to"),
        n(e, "connections"),
        n(e, "failed_connects"),
        n(e, "resets"),
        n(e, "retransmits"),
        100.0 * f(e, "retransmit_rate"),
        rtt,
        n(e, "bytes_forward"),
        n(e, "bytes_backward")
    ) + &requests_line(e)
}

/// The edge's requests, on a line of their own, when the kernel parsed its protocol.
fn requests_line(e: &Value) -> String {
    let Some(r) = e.get("requests").filter(|r| r.is_object()) else {
        return String::new();
    };
    let p99 = r
        .get("p99_ms")
        .and_then(Value::as_f64)
        .map_or("-".to_string(), |ms| format!("{ms:.2}ms"));
    format!(
        "\n    {:<8} req/s {:>8.1}  errors {:>5.1}%  4xx {:>5.1}%  unanswered {:>4}  p99 {:>9}",
        s(r, "protocol"),
        f(r, "requests_per_s"),
        100.0 * f(r, "error_ratio"),
        100.0 * f(r, "client_error_ratio"),
        n(r, "unanswered"),
        p99
    )
}

fn opt(name: &'static str, v: &Option<String>) -> Option<(&'static str, String)> {
    v.as_ref().map(|v| (name, v.clone()))
}

fn age(unix_ns: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let s = (now - unix_ns).max(0) / 1_000_000_000;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn n(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(Value::as_i64).unwrap_or(0)
}

fn incident_line(i: &Value) -> String {
    format!(
        "#{:<5} {:<9} {:<10} {:<8} {:>4}x  {:<10} {}",
        n(i, "id"),
        s(i, "status"),
        s(i, "kind"),
        s(i, "severity"),
        n(i, "occurrences"),
        age(n(i, "opened_unix_ns")),
        s(i, "title")
    )
}

fn event_line(e: &Value) -> String {
    let kind = e.get("kind").cloned().unwrap_or(Value::Null);
    let task = e.get("task").cloned().unwrap_or(Value::Null);
    let detail = match s(&kind, "type") {
        "process_exec" => format!("exec {}", s(&kind, "filename")),
        "process_exit" => match (kind.get("signal"), kind.get("exit_code")) {
            (Some(sig), _) => format!("exit by signal {sig}"),
            (None, Some(code)) => format!("exit code {code}"),
            _ => "exit".into(),
        },
        "oom_kill" => format!(
            "OOM kill of {} (pid {}, anon rss {} KiB)",
            s(&kind, "victim_comm"),
            n(&kind, "victim_pid"),
            n(&kind, "anon_rss_kb")
        ),
        "dns_failure" => format!(
            "DNS {} for {} (server {})",
            s(&kind, "rcode_name"),
            s(&kind, "query_name"),
            s(&kind, "server")
        ),
        other => other.to_string(),
    };
    format!(
        "{:<8} seq {:<8} {:<8} pid {:<7} {:<16} {:<40} {}",
        s(e, "node"),
        n(e, "seq"),
        age(n(e, "time_unix_ns")),
        n(&task, "tgid"),
        s(&task, "comm"),
        e.get("workload").map_or("", |w| s(w, "key")),
        detail
    )
}

async fn watch(api: &Api, interval: Duration, json: bool) -> anyhow::Result<()> {
    let mut seen: HashMap<i64, i64> = HashMap::new();
    let mut first = true;
    eprintln!("watching incidents at {} (Ctrl-C to stop)", api.base);
    loop {
        match api
            .get("/api/v1/incidents", &[("limit", "200".into())])
            .await
        {
            Ok(list) => {
                let mut items: Vec<Value> = list.as_array().cloned().unwrap_or_default();
                items.reverse();
                for i in items {
                    let id = n(&i, "id");
                    let version =
                        n(&i, "occurrences") * 2 + i64::from(s(&i, "status") == "resolved");
                    let previous = seen.insert(id, version);
                    if previous == Some(version) {
                        continue;
                    }
                    let tag = match (previous, first) {
                        (_, true) => "existing",
                        (None, false) => "OPENED",
                        (Some(_), false) if s(&i, "status") == "resolved" => "RESOLVED",
                        (Some(_), false) => "UPDATED",
                    };
                    if json {
                        println!("{}", serde_json::json!({ "change": tag, "incident": i }));
                    } else {
                        println!("{tag:<9} {}", incident_line(&i));
                        if tag != "existing" {
                            println!("          {}", s(&i, "summary"));
                        }
                    }
                }
                first = false;
            }
            Err(e) => eprintln!("{e:#}"),
        }
        tokio::time::sleep(interval).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Certs { command } = cli.command {
        return certs::run(command);
    }
    let api = Api::new(&cli.api, cli.token_file.as_deref(), cli.ca_file.as_deref())?;
    match cli.command {
        Command::Certs { .. } => {}
        Command::Actions { record: true, .. } => actions::record(&api, cli.json).await?,
        Command::Actions { incident, .. } => actions::list(&api, incident, cli.json).await?,
        Command::Approve {
            incident,
            action,
            reason,
        } => actions::judge(&api, (incident, action), reason, true, cli.json).await?,
        Command::Deny {
            incident,
            action,
            reason,
        } => actions::judge(&api, (incident, action), reason, false, cli.json).await?,
        Command::Tokens { command } => tokens::run(&api, command, cli.json).await?,
        Command::Whoami => tokens::whoami(&api, cli.json).await?,
        Command::Audit {
            command: Some(command),
            ..
        } => audit::run(&api, command, cli.json).await?,
        Command::Audit {
            command: None,
            after,
            limit,
        } => {
            let page = api
                .get(
                    "/api/v1/audit",
                    &[
                        ("after_seq", after.to_string()),
                        ("limit", limit.to_string()),
                    ],
                )
                .await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&page["records"])?);
            } else {
                let records = page["records"].as_array().cloned().unwrap_or_default();
                if records.is_empty() {
                    println!("no audit records after {after}");
                }
                for r in &records {
                    println!("{}", audit::line(r));
                }
            }
        }
        Command::Mcp => {
            use rmcp::ServiceExt as _;
            let backend = control_plane::adapters::mcp::remote::Remote::new(&api.base, api.http);
            let server = control_plane::adapters::mcp::VigilMcp::new(std::sync::Arc::new(backend))
                .serve(rmcp::transport::io::stdio())
                .await
                .context("starting the MCP server on stdio")?;
            server.waiting().await.context("serving MCP on stdio")?;
        }
        Command::Crdgen => {
            print!(
                "{}",
                control_plane::adapters::kube::report::crd_yaml().context("serialising the CRD")?
            );
        }
        Command::Incidents {
            status,
            kind,
            limit,
        } => {
            let q: Vec<_> = [
                opt("status", &status),
                opt("kind", &kind),
                Some(("limit", limit.to_string())),
            ]
            .into_iter()
            .flatten()
            .collect();
            let list = api.get("/api/v1/incidents", &q).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                let items = list.as_array().cloned().unwrap_or_default();
                if items.is_empty() {
                    println!("no incidents");
                }
                for i in items {
                    println!("{}", incident_line(&i));
                }
            }
        }
        Command::Incident {
            id,
            judge: Some(judge),
        } => {
            let body = match judge {
                Judge::Confirm { note } => {
                    serde_json::json!({"verdict": "confirmed", "note": note})
                }
                Judge::Correct { class, note } => {
                    serde_json::json!({"verdict": "corrected", "class": class, "note": note})
                }
            };
            let f = api
                .post(&format!("/api/v1/incidents/{id}/feedback"), &body)
                .await
                .with_context(|| format!("recording feedback on incident {id}"))?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&f)?);
            } else {
                println!(
                    "incident {id}: {} as {} (Vigil said {}, confidence {:.2})",
                    s(&f, "verdict"),
                    s(&f, "class"),
                    f.get("diagnosed")
                        .and_then(Value::as_str)
                        .unwrap_or("no class"),
                    f.get("confidence").and_then(Value::as_f64).unwrap_or(0.0)
                );
            }
        }
        Command::Feedback => {
            let all = api.get("/api/v1/feedback", &[]).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                for f in all["feedback"].as_array().into_iter().flatten() {
                    println!(
                        "#{:<5} {:<9} {:<22} (Vigil said {})",
                        f["incident"],
                        s(f, "verdict"),
                        s(f, "class"),
                        f.get("diagnosed")
                            .and_then(Value::as_str)
                            .unwrap_or("no class")
                    );
                }
                match all["accuracy"].as_f64() {
                    Some(a) => println!(
                        "{} of {} diagnoses confirmed ({:.0} %)",
                        all["confirmed"],
                        all["judged"],
                        a * 100.0
                    ),
                    None => println!(
                        "no feedback yet: `vigil incident N confirm` or `correct --class X`"
                    ),
                }
            }
        }
        Command::Incident { id, judge: None } => {
            let i = api.get(&format!("/api/v1/incidents/{id}"), &[]).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&i)?);
            } else {
                println!("{}", incident_line(&i));
                println!("node:     {}", s(&i, "node"));
                println!("workload: {}", s(&i, "workload_key"));
                println!("summary:  {}", s(&i, "summary"));
                println!(
                    "attributes:\n{}",
                    serde_json::to_string_pretty(i.get("attributes").unwrap_or(&Value::Null))?
                );
                println!("evidence:");
                for e in i
                    .get("evidence")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                {
                    println!("  {}", event_line(&e));
                }
                print!(
                    "{}",
                    diagnosis_text(i.get("diagnosis").unwrap_or(&Value::Null))
                );
                if let Some(f) = i.get("feedback").filter(|f| !f.is_null()) {
                    println!(
                        "feedback: {} as {}{}",
                        s(f, "verdict"),
                        s(f, "class"),
                        f.get("by")
                            .and_then(Value::as_str)
                            .map_or(String::new(), |b| format!(" by {b}"))
                    );
                }
            }
        }
        Command::Watch { interval_ms } => {
            watch(&api, Duration::from_millis(interval_ms), cli.json).await?
        }
        Command::Events {
            kind,
            node,
            workload,
            limit,
        } => {
            let q: Vec<_> = [
                opt("kind", &kind),
                opt("node", &node),
                opt("workload", &workload),
                Some(("limit", limit.to_string())),
            ]
            .into_iter()
            .flatten()
            .collect();
            let list = api.get("/api/v1/events", &q).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for e in list.as_array().cloned().unwrap_or_default() {
                    println!("{}", event_line(&e));
                }
            }
        }
        Command::Nodes => {
            let list = api.get("/api/v1/nodes", &[]).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for node in list.as_array().cloned().unwrap_or_default() {
                    let stats = node.get("stats").cloned().unwrap_or(Value::Null);
                    println!(
                        "{}  kernel {}  agent {}  seen {}  read {}  kernel-dropped {}  buffer-dropped {}  malformed {}  metric-intervals-dropped {}",
                        s(&node, "name"),
                        s(&node, "kernel_release"),
                        s(&node, "agent_version"),
                        age(n(&node, "last_seen_unix_ns")),
                        n(&stats, "events_read"),
                        n(&stats, "kernel_dropped"),
                        n(&stats, "buffer_dropped"),
                        n(&stats, "malformed"),
                        n(&stats, "metric_intervals_dropped"),
                    );
                    let shed: Vec<&str> = stats
                        .get("shed")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    if !shed.is_empty() {
                        println!(
                            "    DEGRADED: shedding {} ({})",
                            shed.join(", "),
                            s(&stats, "degraded_cause")
                        );
                    }
                    for p in node
                        .get("probes")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                    {
                        let name = p.get(0).and_then(Value::as_str).unwrap_or("");
                        let err = p.get(1).and_then(Value::as_str).unwrap_or("");
                        println!(
                            "    {name:<32} {}",
                            if err.is_empty() { "attached" } else { err }
                        );
                    }
                    for m in node
                        .get("maps")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                    {
                        println!(
                            "    map {:<28} {}/{} entries  {} created  {} evicted",
                            s(&m, "name"),
                            n(&m, "entries"),
                            n(&m, "capacity"),
                            n(&m, "inserted"),
                            n(&m, "evicted")
                        );
                    }
                }
            }
        }
        Command::Graph { dot } => {
            if dot {
                print!("{}", api.get_text("/api/v1/graph?format=dot").await?);
            } else {
                let g = api.get("/api/v1/graph", &[]).await?;
                if cli.json {
                    println!("{}", serde_json::to_string_pretty(&g)?);
                } else {
                    let edges = g
                        .get("edges")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    if edges.is_empty() {
                        println!("no edges yet (agents report flows every interval)");
                    }
                    for e in edges {
                        println!("{}", edge_line(&e));
                    }
                }
            }
        }
        Command::BlastRadius { entity } => {
            let b = api
                .get(&format!("/api/v1/graph/blast-radius/{entity}"), &[])
                .await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&b)?);
            } else {
                let deps = b
                    .get("dependents")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                println!("{} entities depend on {entity}:", deps.len());
                for d in deps {
                    println!("  {}", d.as_str().unwrap_or(""));
                }
            }
        }
    }
    Ok(())
}

/// A diagnosis as an on-call engineer reads it: the class and how sure, why, who voted what,
/// what to do.
fn diagnosis_text(d: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if d.is_null() {
        out.push_str("diagnosis: not yet (incidents are diagnosed within a few seconds)\n");
        return out;
    }
    let f = |k: &str| d.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let _ = writeln!(
        out,
        "diagnosis: {} (confidence {:.2}, gate {:.2}) -> {}{}",
        d.get("class").and_then(Value::as_str).unwrap_or("unknown"),
        f("confidence"),
        f("gate"),
        s(d, "route"),
        if d.get("llm").and_then(Value::as_bool).unwrap_or(false) {
            ", with an LLM's opinion checked"
        } else {
            ", from the evidence alone"
        }
    );
    let _ = writeln!(out, "  {}", s(d, "explanation"));
    out.push_str("  votes:\n");
    for b in d
        .get("breakdown")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let voted = b.get("class").and_then(Value::as_str);
        let mark = match (voted, b.get("agrees").and_then(Value::as_bool)) {
            (None, _) => ' ',
            (Some(_), Some(true)) => '+',
            _ => '-',
        };
        let _ = writeln!(
            out,
            "    {mark} {:<22} {:<22} {:.2}  {}",
            s(b, "voter"),
            voted.unwrap_or("(no vote)"),
            b.get("strength").and_then(Value::as_f64).unwrap_or(0.0),
            s(b, "reason")
        );
    }
    out.push_str("  what to do:\n");
    for a in d
        .get("recommended_actions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let _ = writeln!(out, "    - {}", a.as_str().unwrap_or(""));
    }
    let cites: Vec<String> = d
        .get("citations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| format!("{} ({})", s(c, "id"), s(c, "title")))
        .collect();
    let _ = writeln!(
        out,
        "  sources: {}",
        if cites.is_empty() {
            "none".to_string()
        } else {
            cites.join("; ")
        }
    );
    if let Some(r) = d.get("llm_review").filter(|r| !r.is_null()) {
        let inv = &r["investigation"];
        let n = |k: &str| inv.get(k).and_then(Value::as_u64).unwrap_or(0);
        let _ = writeln!(
            out,
            "  second opinion: {} by {} ({}{}) in {} step(s), {} tool call(s), {} repeat(s) refused, {} tokens, {} ms{}",
            s(r, "judgement"),
            s(inv, "model"),
            s(inv, "ending"),
            inv.get("bound")
                .and_then(Value::as_str)
                .map_or(String::new(), |b| format!(" at its {b} bound")),
            n("steps"),
            inv.get("tool_calls").and_then(Value::as_array).map_or(0, Vec::len),
            n("refused_repeats"),
            n("input_tokens") + n("output_tokens"),
            n("elapsed_ms"),
            if r.get("cached").and_then(Value::as_bool).unwrap_or(false) {
                ", reused"
            } else {
                ""
            }
        );
        let rejected: Vec<&str> = r
            .get("rejected_citations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !rejected.is_empty() {
            let _ = writeln!(
                out,
                "    rejected citations (not retrieved for this incident): {}",
                rejected.join(", ")
            );
        }
    }
    out
}
