//! `vigil-bench-console`: is the operator console usable at size? A control plane with 1,000
//! incidents (opened through its Alertmanager webhook) and a 500-workload service graph (flows
//! pushed over the agent's gRPC contract by a synthetic agent), measured in a real browser
//! (headless Chromium through chromedriver): the incidents page's load with every row, the
//! time from a new incident to its row on the open page (live update), an incident page, and
//! the graph page's fetch and layout.
//!
//! `vigil-bench-console [--incidents N] [--workloads N] [--report DIR]` (writes
//! `DIR/console.md` and `DIR/console.json`).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use vigil_proto::v1::{self, agent_ingest_client::AgentIngestClient};
use vigil_tests::{browser::Driver, report_dir, wait_for, ControlPlane};

/// Live updates measured this many times.
const UPDATES: usize = 5;

fn arg(args: &[String], name: &str, default: usize) -> anyhow::Result<usize> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{name} takes a number")),
    }
}

fn workload(i: usize) -> v1::Workload {
    v1::Workload {
        kind: v1::WorkloadKind::Cgroup as i32,
        key: format!("cgroup/bench/w{i:04}"),
        cgroup_path: format!("/bench/w{i:04}"),
        ..Default::default()
    }
}

fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", 1 + i / 62_500, (i / 250) % 250, 1 + i % 250)
}

/// A tree of `n` workloads: each calls its parent's port 8080, every seventh with failures.
fn flows(n: usize) -> Vec<v1::FlowSample> {
    let mut flows = Vec::new();
    for i in 1..n {
        let parent = (i - 1) / 2;
        let server = v1::Endpoint {
            ip: ip(parent),
            port: 8080,
        };
        flows.push(v1::FlowSample {
            workload: Some(workload(i)),
            role: v1::FlowRole::Client as i32,
            local: Some(v1::Endpoint { ip: ip(i), port: 0 }),
            remote: Some(server.clone()),
            connects: 20,
            established: 20 - (i % 7 == 0) as u64 * 5,
            failed: (i % 7 == 0) as u64 * 5,
            closed: 20,
            srtt_sum_us: 400 * (1 + (i % 13) as u64),
            srtt_samples: 1,
            process: format!("w{i}"),
            ..Default::default()
        });
        flows.push(v1::FlowSample {
            workload: Some(workload(parent)),
            role: v1::FlowRole::Server as i32,
            local: Some(server),
            remote: Some(v1::Endpoint { ip: ip(i), port: 0 }),
            connects: 20,
            established: 20,
            closed: 20,
            ..Default::default()
        });
    }
    flows
}

async fn push_graph(cp: &ControlPlane, n: usize) -> anyhow::Result<()> {
    let mut client =
        AgentIngestClient::new(cp.channel("bench-node").await).max_decoding_message_size(64 << 20);
    client
        .hello(v1::NodeHello {
            node_name: "bench-node".into(),
            kernel_release: "synthetic".into(),
            agent_version: "bench".into(),
            protocol_version: vigil_proto::PROTOCOL_VERSION,
            probes: vec![],
        })
        .await?;
    let end = vigil_tests::now_unix_ns();
    client
        .push_metrics(v1::MetricBatch {
            node_name: "bench-node".into(),
            interval_seq: 1,
            start_unix_ns: end - 1_000_000_000,
            end_unix_ns: end,
            flows: flows(n),
            ..Default::default()
        })
        .await?;
    Ok(())
}

fn alert(k: usize, workloads: usize) -> serde_json::Value {
    let starts = jiff::Timestamp::now().to_string();
    // Alerts on one workload merge into one incident: the first `workloads` name a graph
    // workload each (its node turns red or orange), the rest none (each its own `alert/…`).
    let mut labels = serde_json::json!({
        "alertname": format!("BenchAlert{k}"),
        "severity": if k.is_multiple_of(5) { "critical" } else { "warning" },
    });
    if k < workloads {
        labels["vigil_entity"] = format!("cgroup/bench/w{k:04}").into();
    }
    serde_json::json!({
        "status": "firing",
        "labels": labels,
        "annotations": { "summary": format!("synthetic alert {k} for the console benchmark") },
        "startsAt": starts,
        "fingerprint": format!("bench{k:06}"),
    })
}

fn post_alerts(api: &vigil_tests::Api, alerts: Vec<serde_json::Value>) -> anyhow::Result<()> {
    let (status, body) = api.post(
        "/api/v1/alertmanager",
        &serde_json::json!({ "version": "4", "receiver": "vigil", "alerts": alerts }),
    );
    if status != 200 {
        bail!("the webhook answered {status}: {body}");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let incidents = arg(&args, "--incidents", 1_000)?;
    let workloads = arg(&args, "--workloads", 500)?;
    let report = report_dir(&args).map_err(anyhow::Error::msg)?;

    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start_with(dir.path(), "[detection]\nenabled = false\n");
    let api = cp.api();
    let base = format!("http://{}", cp.http);
    let token = std::fs::read_to_string(cp.token_file())?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(push_graph(&cp, workloads))?;
    let graph_nodes = wait_for(Duration::from_secs(20), "the graph built", || {
        let g = api.get("/api/v1/graph");
        let n = g["nodes"].as_array().map_or(0, Vec::len);
        (n >= workloads).then_some(n)
    });
    let seeded = Instant::now();
    for chunk in (0..incidents).collect::<Vec<_>>().chunks(100) {
        post_alerts(&api, chunk.iter().map(|k| alert(*k, workloads)).collect())?;
    }
    let stored = wait_for(Duration::from_secs(60), "the incidents stored", || {
        let n = api.list("/api/v1/incidents?limit=100000").len();
        (n >= incidents).then_some(n)
    });
    println!(
        "seeded {stored} incidents in {:.1} s and a graph of {graph_nodes} nodes",
        seeded.elapsed().as_secs_f64()
    );

    let mut driver = Driver::start();
    let browser = driver.browser();
    browser.sign_in(&base, &token);

    // The incidents page with every row.
    let started = Instant::now();
    browser.goto(&format!("{base}/console?limit={incidents}"));
    let list_ms = started.elapsed().as_secs_f64() * 1e3;
    let rows = browser.count("tr.incident");
    let nav = browser.js(
        "const n = performance.getEntriesByType('navigation')[0]; \
         return {server: n.responseStart - n.requestStart, bytes: n.transferSize, dom: n.domContentLoadedEventEnd, load: n.loadEventEnd};",
    );
    println!("incidents page: {rows} rows, loaded in {list_ms:.0} ms ({nav})");

    // A new incident until its row is on the open page.
    let mut updates = Vec::new();
    for k in 0..UPDATES {
        browser.js(
            "window.benchFirst = document.querySelector('tr.incident').dataset.id; \
             window.benchT0 = performance.now(); return 1;",
        );
        post_alerts(&api, vec![alert(incidents + k, workloads)])?;
        let ms = browser.js_async(
            "const done = arguments[0]; const t = setInterval(() => { \
               const f = document.querySelector('tr.incident'); \
               if (f && f.dataset.id !== window.benchFirst) { clearInterval(t); done(performance.now() - window.benchT0); } \
             }, 10);",
        );
        updates.push(ms.as_f64().context("the update's time")?);
    }
    println!("live update (webhook POSTed → row on the open page): {updates:.0?} ms");

    // One incident's page.
    let id = api.incidents()[0]["id"]
        .as_i64()
        .context("an incident id")?;
    let started = Instant::now();
    browser.goto(&format!("{base}/console/incidents/{id}"));
    let incident_ms = started.elapsed().as_secs_f64() * 1e3;

    // The graph.
    let started = Instant::now();
    browser.goto(&format!("{base}/console/graph"));
    let graph = wait_for(Duration::from_secs(60), "the graph drawn", || {
        let g = browser.js("return window.vigilGraph;");
        (g["loads"].as_u64() >= Some(1)).then_some(g)
    });
    let graph_total_ms = started.elapsed().as_secs_f64() * 1e3;
    println!(
        "graph page: {} nodes, {} edges, fetch {:.0} ms, layout and draw {:.0} ms, {graph_total_ms:.0} ms from navigation",
        graph["nodes"], graph["edges"], graph["fetchMs"].as_f64().unwrap_or(f64::NAN),
        graph["renderMs"].as_f64().unwrap_or(f64::NAN)
    );
    drop(browser);

    let median_ms = vigil_tests::median(updates.clone());
    let json = serde_json::json!({
        "incidents": stored,
        "rows_shown": rows,
        "incidents_page_ms": list_ms,
        "incidents_page_navigation": nav,
        "live_update_ms": updates,
        "live_update_median_ms": median_ms,
        "incident_page_ms": incident_ms,
        "graph_nodes": graph["nodes"],
        "graph_edges": graph["edges"],
        "graph_fetch_ms": graph["fetchMs"],
        "graph_render_ms": graph["renderMs"],
        "graph_page_ms": graph_total_ms,
    });
    if let Some(dir) = report {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("console.json"),
            serde_json::to_string_pretty(&json)? + "\n",
        )?;
        let md = format!(
            "# Console at size\n\n`target/release/vigil-bench-console --report reports` (run by `cargo xtask bench`): a control plane (release build) with {stored} incidents opened through its Alertmanager webhook and a service graph of {graph_nodes} workloads pushed as flows over the agent's gRPC contract, measured in headless Chromium through chromedriver on this 2-core VM. Times include the browser's own work on the same 2 cores.\n\n\
             | measure | result |\n|---|---|\n\
             | incidents page, all {rows} rows, navigation to load event | {list_ms:.0} ms |\n\
             | live update, new incident → its row on the open page (median of {UPDATES}; SSE tick 1 s) | {:.0} ms (all: {updates:.0?}) |\n\
             | one incident's page | {incident_ms:.0} ms |\n\
             | graph page: {} nodes, {} edges — fetch / layout and draw / from navigation | {:.0} / {:.0} / {graph_total_ms:.0} ms |\n",
            median_ms,
            graph["nodes"],
            graph["edges"],
            graph["fetchMs"].as_f64().unwrap_or(f64::NAN),
            graph["renderMs"].as_f64().unwrap_or(f64::NAN),
        );
        std::fs::write(dir.join("console.md"), md)?;
        println!("wrote {}/console.{{md,json}}", dir.display());
    }
    Ok(())
}
