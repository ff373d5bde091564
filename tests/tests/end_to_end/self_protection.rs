//! The agent protects the node from itself: over its CPU budget (an exec storm makes every
//! event cost it procfs reads), it detaches probe groups in a fixed order, says so in
//! `/metrics` and to the control plane, and attaches them again once it has been calm.
//!
//! This shows the mechanism, not the saving: an exec storm's cost is attributing process
//! events, which are never shed, so the agent stays over budget and sheds every step.

use std::{
    net::SocketAddr,
    process::Command,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use vigil_tests::{
    prometheus::{free_port, sample},
    wait_for, Agent, AgentOptions, Api, ControlPlane,
};

/// BPF links and perf events the agent holds open: one per attached probe.
fn attach_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter(|t| {
                    let t = t.to_string_lossy();
                    t.contains("bpf_link") || t.contains("perf_event")
                })
                .count()
        })
        .unwrap_or(0)
}

fn options(node: &str, metrics: SocketAddr, budget: &str) -> AgentOptions {
    let mut o = AgentOptions::new(node);
    o.metrics_listen = metrics.to_string();
    o.extra_toml = format!("[budget]\ncheck_interval_ms = 1000\ncalm_checks = 2\n{budget}");
    o
}

fn node_stats(api: &Api, node: &str) -> Option<serde_json::Value> {
    api.try_get("/api/v1/nodes")?
        .as_array()?
        .iter()
        .find(|n| n["name"] == node)
        .map(|n| n["stats"].clone())
}

#[test]
fn an_agent_over_its_budget_sheds_in_order_reports_it_and_restores_when_calm_alone() {
    vigil_tests::require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let cp = ControlPlane::start_with(dir.path(), "");
    let api = cp.api();

    // What this agent costs idle on this machine (a debug build beside the control plane).
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let idle_agent = Agent::start(
        dir.path(),
        &cp.endpoint(),
        &api,
        &options("budget-idle", addr, "enabled = false\n"),
    );
    let metrics = Api::new(format!("http://{addr}"));
    let mut idle: f64 = 0.0;
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(500));
        if let Some(cpu) = metrics
            .try_text("/metrics")
            .and_then(|t| sample(&t, "vigil_agent_cpu_usage_percent", ""))
        {
            idle = idle.max(cpu);
        }
    }
    drop(idle_agent);
    // Calm is under 80 % of the budget: twice the idle cost and 3 points more is calm idle,
    // and at least 8 % (procfs counts CPU in ticks: one tick a second is 1 %).
    let budget = (2.0 * idle + 3.0).max(8.0);

    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let agent = Agent::start(
        dir.path(),
        &cp.endpoint(),
        &api,
        &options("budget-node", addr, &format!("cpu_percent = {budget:.1}\n")),
    );
    let metrics = Api::new(format!("http://{addr}"));
    let full = wait_for(Duration::from_secs(10), "the agent's /metrics", || {
        metrics.try_text("/metrics")
    });
    assert_eq!(
        sample(&full, "vigil_agent_degraded", "cause=\"cpu\""),
        Some(0.0)
    );
    let attached = attach_fds(agent.pid());
    assert!(attached > 10, "only {attached} probes attached at start");

    // The storm: every exec is an event the agent attributes through procfs.
    let stop = Arc::new(AtomicBool::new(false));
    let storms: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let _ = Command::new("/bin/true").status();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let shed = wait_for(
        Duration::from_secs(60),
        "every shed step in the control plane's view of the node",
        || {
            let stats = node_stats(&api, "budget-node")?;
            let shed: Vec<String> = serde_json::from_value(stats["shed"].clone()).ok()?;
            (shed.len() == 3).then_some((shed, stats))
        },
    );
    let text = metrics
        .try_text("/metrics")
        .expect("/metrics while degraded");
    let during = attach_fds(agent.pid());
    let cli = Command::new(vigil_tests::bin_path("vigil"))
        .arg("nodes")
        .env("VIGIL_API", api.base.as_str())
        .env("VIGIL_TOKEN_FILE", cp.token_file())
        .output()
        .expect("run vigil nodes");
    let listed = String::from_utf8_lossy(&cli.stdout).into_owned();
    stop.store(true, Ordering::Relaxed);
    let execs: u64 = storms.into_iter().map(|t| t.join().expect("storm")).sum();

    assert_eq!(
        shed.0,
        ["payload", "latency", "requests"],
        "cheapest loss first"
    );
    let cause = shed.1["degraded_cause"].as_str().unwrap_or_default();
    assert!(cause.contains("budget.cpu_percent"), "{cause}");
    for step in ["payload", "latency", "requests"] {
        assert_eq!(
            sample(
                &text,
                "vigil_agent_telemetry_shed",
                &format!("step=\"{step}\"")
            ),
            Some(1.0),
            "{step}"
        );
    }
    assert_eq!(
        sample(&text, "vigil_agent_degraded", "cause=\"cpu\""),
        Some(1.0)
    );
    // The groups are detached, not just ignored: process and network probes stay.
    assert!(
        during < attached && during > 0,
        "{attached} probe attachments at start, {during} while shedding"
    );
    assert!(
        listed.contains("DEGRADED: shedding payload, latency, requests (cpu:"),
        "vigil nodes: {listed}{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let cp_metrics = api.try_text("/metrics").expect("control plane /metrics");
    assert_eq!(
        sample(&cp_metrics, "vigil_node_degraded", "node=\"budget-node\""),
        Some(1.0)
    );

    // Calm again: back a step per two calm checks, to full telemetry.
    wait_for(
        Duration::from_secs(60),
        "full telemetry again, in the control plane's view",
        || {
            let stats = node_stats(&api, "budget-node")?;
            stats["shed"].as_array()?.is_empty().then_some(())
        },
    );
    wait_for(
        Duration::from_secs(30),
        "the agent's /metrics to say it is whole, every probe attached again",
        || {
            let text = metrics.try_text("/metrics")?;
            (sample(&text, "vigil_agent_degraded", "cause=\"cpu\"") == Some(0.0)
                && attach_fds(agent.pid()) == attached)
                .then_some(())
        },
    );
    let log = agent.log();
    assert!(log.contains("over budget: shedding telemetry"), "{log}");
    assert!(log.contains("within budget: telemetry restored"), "{log}");
    println!(
        "idle {idle:.1} % of a core, budget {budget:.1} %, {execs} execs in the storm; {attached} → {during} → {attached} probe attachments"
    );
}
