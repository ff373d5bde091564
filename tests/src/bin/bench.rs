//! `vigil-bench`: an exec storm through the real pipeline (kernel → agent → gRPC → store).
//! Prints kernel-event→stored latency quantiles, the agent's CPU% and RSS, and what was lost.
//! Run it with `cargo xtask bench` (release build, root).

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{ensure, Context as _};
use vigil_tests::{
    procstat::{cpu_seconds, memory_kib},
    require_root, wait_for, Agent, AgentOptions, Api, ControlPlane,
};

struct Args {
    execs: usize,
    threads: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        execs: 20_000,
        threads: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--execs" => a.execs = value.parse().context("--execs")?,
            "--threads" => a.threads = value.parse().context("--threads")?,
            other => {
                anyhow::bail!("unknown flag {other}; usage: vigil-bench [--execs N] [--threads N]")
            }
        }
    }
    Ok(a)
}

fn quantile(sorted: &[i64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i] as f64 / 1e6
}

fn storm(marker: &Path, execs: usize, threads: usize) -> Duration {
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let n = execs / threads + usize::from(t < execs % threads);
            s.spawn(move || {
                for _ in 0..n {
                    let _ = Command::new(marker).status();
                }
            });
        }
    });
    started.elapsed()
}

fn marker_latencies(api: &Api, marker: &Path) -> Vec<i64> {
    let name = marker.to_string_lossy();
    api.events("kind=process_exec&node=bench-node")
        .iter()
        .filter(|e| e["kind"]["filename"] == name.as_ref())
        .filter_map(|e| Some(e["stored_unix_ns"].as_i64()? - e["time_unix_ns"].as_i64()?))
        .collect()
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    require_root();
    ensure!(
        args.threads > 0 && args.execs > 0,
        "--execs and --threads must be positive"
    );
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(dir.path());
    let api = cp.api();
    let mut options = AgentOptions::new("bench-node");
    options.buffer_max_events = 1_000_000;
    let agent = Agent::start(dir.path(), &cp.endpoint(), &api, &options);
    let marker = dir.path().join("vigil-bench-marker");
    std::fs::copy("/bin/true", &marker).context("copying /bin/true")?;

    let (rss_idle, _) = memory_kib(agent.pid());
    let cpu_before = cpu_seconds(agent.pid());
    let started = Instant::now();
    let storm_time = storm(&marker, args.execs, args.threads);
    let mut latencies = wait_for(
        Duration::from_secs(300),
        "every exec event to be stored",
        || {
            let l = marker_latencies(&api, &marker);
            (l.len() >= args.execs).then_some(l)
        },
    );
    let elapsed = started.elapsed();
    let cpu = cpu_seconds(agent.pid()) - cpu_before;
    let (rss, hwm) = memory_kib(agent.pid());
    latencies.sort_unstable();
    let nodes = api.get("/api/v1/nodes");
    let stats = &nodes[0]["stats"];

    let exec_rate = args.execs as f64 / storm_time.as_secs_f64();
    println!(
        "vigil-bench: exec storm through kernel → agent → gRPC → SQLite ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  execs                      {} in {:.2}s ({exec_rate:.0}/s, {} threads)",
        args.execs,
        storm_time.as_secs_f64(),
        args.threads
    );
    println!("  all stored after           {:.2}s", elapsed.as_secs_f64());
    println!(
        "  event→stored latency ms    p50 {:.1}   p99 {:.1}   max {:.1}   (n={})",
        quantile(&latencies, 0.50),
        quantile(&latencies, 0.99),
        quantile(&latencies, 1.0),
        latencies.len()
    );
    println!(
        "  agent CPU                  {:.1}% of one core ({cpu:.2}s CPU over {:.2}s)",
        100.0 * cpu / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "  agent RSS                  idle {} KiB, after {} KiB, peak {} KiB",
        rss_idle, rss, hwm
    );
    println!(
        "  events read by the agent   {}   kernel-dropped {}   buffer-dropped {}",
        stats["events_read"], stats["kernel_dropped"], stats["buffer_dropped"]
    );
    println!(
        "{}",
        serde_json::json!({
            "execs": args.execs, "exec_rate_per_s": exec_rate,
            "latency_ms": {"p50": quantile(&latencies, 0.5), "p99": quantile(&latencies, 0.99), "max": quantile(&latencies, 1.0)},
            "agent_cpu_percent": 100.0 * cpu / elapsed.as_secs_f64(),
            "agent_rss_kib": rss, "agent_peak_rss_kib": hwm,
            "kernel_dropped": stats["kernel_dropped"], "buffer_dropped": stats["buffer_dropped"],
        })
    );
    Ok(())
}
