//! `vigil-bench-storm`: the agent under a storm of short-lived processes and connections for a
//! while (60 s by default), through the real pipeline. Prints the kernel events per second it
//! produced, the agent's resident memory (sampled every second, and its high-water mark), the
//! control plane's backlog (events the agent held unsent), every loss by where it happened,
//! the agent's budget mode, and whether every event the agent read and did not count as lost
//! was stored. Run it with `cargo xtask bench` (release build, root).

use std::{
    net::{TcpListener, TcpStream},
    process::Command,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use vigil_tests::{
    procstat::memory_kib,
    prometheus::{self, free_port, sample_sum},
    require_root, wait_for, Agent, AgentOptions, Api, ControlPlane,
};

const NODE: &str = "storm-node";

struct Args {
    secs: u64,
    exec_threads: usize,
    connect_threads: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        secs: 60,
        exec_threads: 2,
        connect_threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--secs" => a.secs = value.parse().context("--secs")?,
            "--exec-threads" => a.exec_threads = value.parse().context("--exec-threads")?,
            "--connect-threads" => {
                a.connect_threads = value.parse().context("--connect-threads")?
            }
            other => anyhow::bail!(
                "unknown flag {other}; usage: vigil-bench-storm [--secs N] [--exec-threads N] [--connect-threads N]"
            ),
        }
    }
    anyhow::ensure!(a.secs > 0, "--secs must be positive");
    Ok(a)
}

/// A sample of an OpenMetrics text, 0 when absent (a counter not yet incremented is absent).
fn sample(text: &str, name: &str, labels: &str) -> f64 {
    if labels == "*" {
        return sample_sum(text, name);
    }
    prometheus::sample(text, name, labels).unwrap_or(0.0)
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    require_root();
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(dir.path());
    let api = cp.api();
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let mut options = AgentOptions::new(NODE);
    options.buffer_max_events = 1_000_000;
    options.metrics_listen = metrics_addr.clone();
    // The budget as installed (the harness turns it off for its tests).
    options.extra_toml = String::new();
    let agent = Agent::start(dir.path(), &cp.endpoint(), &api, &options);
    let agent_metrics = Api::new(format!("http://{metrics_addr}"));
    let scrape = || agent_metrics.try_text("/metrics").unwrap_or_default();

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let target = listener.local_addr()?;
    let stop = AtomicBool::new(false);
    let (execs, connects) = (AtomicU64::new(0), AtomicU64::new(0));
    let read_before = sample(&scrape(), "vigil_agent_ring_buffer_read_events_total", "");
    let (rss_idle, _) = memory_kib(agent.pid());
    let (mut rss_max, mut backlog_max, mut degraded_secs) = (0u64, 0f64, 0u64);
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            for c in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                drop(c);
            }
        });
        for _ in 0..args.exec_threads {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let _ = Command::new("/bin/true").status();
                    execs.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        for _ in 0..args.connect_threads {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    if TcpStream::connect(target).is_ok() {
                        connects.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        while started.elapsed() < Duration::from_secs(args.secs) {
            std::thread::sleep(Duration::from_secs(1));
            let (rss, _) = memory_kib(agent.pid());
            rss_max = rss_max.max(rss);
            let text = scrape();
            backlog_max = backlog_max.max(sample(&text, "vigil_agent_buffered_events", ""));
            degraded_secs += u64::from(sample(&text, "vigil_agent_degraded", "*") > 0.0);
        }
        stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect(target);
    });
    let storm = started.elapsed().as_secs_f64();
    let text = scrape();
    let read = sample(&text, "vigil_agent_ring_buffer_read_events_total", "");
    let storm_events = read - read_before;

    // Drained: what the agent read and did not count lost is stored, exactly once.
    let (stored, stats) = wait_for(
        Duration::from_secs(300),
        "the agent's backlog to drain into the store",
        || {
            let stats = api
                .get("/api/v1/nodes")
                .as_array()?
                .iter()
                .find(|n| n["name"] == NODE)?["stats"]
                .clone();
            let stored = sample(&api.try_text("/metrics")?, "vigil_ingest_events_total", "*");
            let expected = stats["events_read"].as_f64()?
                - stats["buffer_dropped"].as_f64()?
                - stats["malformed"].as_f64()?;
            (stored >= expected && sample(&scrape(), "vigil_agent_buffered_events", "") == 0.0)
                .then_some((stored, stats))
        },
    );
    let (_, hwm) = memory_kib(agent.pid());
    let expected = stats["events_read"].as_f64().unwrap_or(0.0)
        - stats["buffer_dropped"].as_f64().unwrap_or(0.0)
        - stats["malformed"].as_f64().unwrap_or(0.0);
    let (execs, connects) = (execs.into_inner(), connects.into_inner());
    println!(
        "vigil-bench-storm: {storm:.0} s of short-lived processes and connections ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  storm                      {execs} execs ({:.0}/s), {connects} connections ({:.0}/s)",
        execs as f64 / storm,
        connects as f64 / storm
    );
    println!(
        "  kernel events read         {storm_events:.0} ({:.0}/s)",
        storm_events / storm
    );
    println!(
        "  agent RSS                  idle {rss_idle} KiB, max sampled {rss_max} KiB, high-water {hwm} KiB"
    );
    println!("  control-plane backlog      at most {backlog_max:.0} events held by the agent");
    println!(
        "  lost, by where             kernel ring {}   agent buffer {}   malformed {}   metric intervals {}",
        stats["kernel_dropped"],
        stats["buffer_dropped"],
        stats["malformed"],
        stats["metric_intervals_dropped"]
    );
    println!("  budget                     degraded in {degraded_secs} of {storm:.0} s sampled");
    println!(
        "  stored                     {stored:.0} of {expected:.0} read and not counted lost ({} unaccounted)",
        expected - stored
    );
    println!(
        "{}",
        serde_json::json!({
            "storm_secs": storm, "execs": execs, "connections": connects,
            "kernel_events_per_s": storm_events / storm,
            "agent_rss_idle_kib": rss_idle, "agent_rss_max_kib": rss_max, "agent_rss_hwm_kib": hwm,
            "backlog_max_events": backlog_max, "degraded_secs": degraded_secs,
            "kernel_dropped": stats["kernel_dropped"], "buffer_dropped": stats["buffer_dropped"],
            "stored": stored, "expected": expected,
        })
    );
    drop(agent);
    Ok(())
}
