//! `vigil-bench-overhead`: what the probes cost. In one run, side by side:
//! - a syscall-heavy loop's throughput without the agent and with every probe attached;
//! - wrk → nginx → app → redis throughput without and with the agent, and the agent's CPU%
//!   and RSS while it watches that load.
//!
//! Run it with `cargo xtask bench` (release build, root).

use std::{
    ffi::CString,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use vigil_tests::{
    procstat::{cpu_seconds, memory_kib},
    require_root,
    topology::ServiceChain,
    Agent, AgentOptions, ControlPlane,
};

/// Syscalls per second of one thread doing read(/dev/zero), write(/dev/null) and a failing
/// open (ENOENT) in a loop for `duration`.
fn syscall_loop(duration: Duration) -> anyhow::Result<f64> {
    let zero = std::fs::File::open("/dev/zero").context("/dev/zero")?;
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .context("/dev/null")?;
    let missing = CString::new("/nonexistent/vigil-bench").context("path")?;
    let mut buf = [0u8; 64];
    let (zfd, nfd) = (
        std::os::fd::AsRawFd::as_raw_fd(&zero),
        std::os::fd::AsRawFd::as_raw_fd(&null),
    );
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < duration {
        for _ in 0..1000 {
            // SAFETY: valid fds and buffer; the path is NUL-terminated.
            unsafe {
                libc::read(zfd, buf.as_mut_ptr().cast(), buf.len());
                libc::write(nfd, buf.as_ptr().cast(), buf.len());
                libc::open(missing.as_ptr(), libc::O_RDONLY);
            }
            calls += 3;
        }
    }
    Ok(calls as f64 / start.elapsed().as_secs_f64())
}

/// Requests per second wrk reports.
fn requests_per_sec(report: &str) -> f64 {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Syscall-loop and wrk throughput with an agent running `telemetry` settings.
fn with_agent(
    dir: &std::path::Path,
    chain: &ServiceChain,
    name: &str,
    telemetry: &str,
    seconds: u64,
) -> anyhow::Result<(f64, f64, Option<AgentUsage>)> {
    let cp = ControlPlane::start(dir);
    let api = cp.api();
    let options = AgentOptions {
        telemetry_toml: telemetry.to_string(),
        ..AgentOptions::new(name)
    };
    let agent = Agent::start(dir, &cp.endpoint(), &api, &options);
    let syscalls = syscall_loop(Duration::from_secs(seconds))?;
    let (rss_idle, _) = memory_kib(agent.pid());
    let cpu_before = cpu_seconds(agent.pid());
    let started = Instant::now();
    let (_, report) = chain.load(seconds as u32, 8);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_percent = 100.0 * (cpu_seconds(agent.pid()) - cpu_before) / elapsed;
    let (rss, peak) = memory_kib(agent.pid());
    // Let the last interval land, then read the kernel map usage the agent reported.
    std::thread::sleep(Duration::from_millis(1500));
    let nodes = api.get("/api/v1/nodes");
    let maps = nodes[0]["maps"].as_array().cloned().unwrap_or_default();
    let maps = maps
        .iter()
        .filter(|m| m["inserted"].as_u64().unwrap_or(0) > 0)
        .map(|m| {
            format!(
                "{} {}/{} inserted {} evicted {}",
                m["name"].as_str().unwrap_or("?"),
                m["entries"],
                m["capacity"],
                m["inserted"],
                m["evicted"]
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Ok((
        syscalls,
        requests_per_sec(&report),
        Some(AgentUsage {
            cpu_percent,
            rss_idle,
            rss,
            peak,
            maps,
        }),
    ))
}

struct AgentUsage {
    cpu_percent: f64,
    rss_idle: u64,
    rss: u64,
    peak: u64,
    /// Kernel map usage after the wrk run.
    maps: String,
}

fn main() -> anyhow::Result<()> {
    require_root();
    let seconds = 4;
    let dir = tempfile::tempdir()?;
    let chain = ServiceChain::start(dir.path());
    // Warm up the chain (page cache, nginx worker) before measuring.
    chain.load(1, 8);

    let bare_syscalls = syscall_loop(Duration::from_secs(seconds))?;
    let (_, bare_report) = chain.load(seconds as u32, 8);
    let bare_rps = requests_per_sec(&bare_report);
    println!(
        "vigil-bench-overhead ({} cores, {seconds}s per run; syscall loop = read+write+failing open on 1 thread; wrk -c8 → nginx → app → redis)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  {:<30} {:>12} {:>8} {:>10} {:>8} {:>9} {:>10}",
        "probes", "syscalls/s", "ratio", "wrk req/s", "ratio", "agent CPU", "agent RSS"
    );
    println!(
        "  {:<30} {:>10.2}M {:>8} {:>10.0} {:>8} {:>9} {:>10}",
        "none (no agent)",
        bare_syscalls / 1e6,
        "1.000",
        bare_rps,
        "1.000",
        "-",
        "-"
    );
    let off = "network = false\nrequests = false\nsyscalls = false\nrunqueue = false\n\
               block_io = false\n";
    let only = |g: &str| off.replace(&format!("{g} = false"), &format!("{g} = true"));
    let configs = [
        ("all", String::new()),
        ("process lifecycle only", off.to_string()),
        ("+ network (tcp, skb, dns)", only("network")),
        (
            "+ network + requests, tls",
            only("network").replace("requests = false", "requests = true"),
        ),
        (
            "+ network + requests, no tls",
            only("network").replace("requests = false", "requests = true\ntls = false"),
        ),
        ("+ syscalls", only("syscalls")),
        ("+ run queue", only("runqueue")),
        ("+ block io", only("block_io")),
    ];
    let mut json = serde_json::Map::new();
    for (i, (label, telemetry)) in configs.iter().enumerate() {
        let (syscalls, rps, usage) = with_agent(
            dir.path(),
            &chain,
            &format!("overhead-{i}"),
            telemetry,
            seconds,
        )?;
        let u = usage.context("agent usage")?;
        println!(
            "  {:<30} {:>10.2}M {:>8.3} {:>10.0} {:>8.3} {:>8.1}% {:>7} KiB",
            label,
            syscalls / 1e6,
            syscalls / bare_syscalls.max(1.0),
            rps,
            rps / bare_rps.max(1.0),
            u.cpu_percent,
            u.rss
        );
        if i == 0 {
            println!(
                "  {:<30} agent RSS idle {} KiB, under wrk {} KiB, peak {} KiB",
                "", u.rss_idle, u.rss, u.peak
            );
            println!("  {:<30} kernel maps: {}", "", u.maps);
        }
        json.insert(
            label.to_string(),
            serde_json::json!({
                "syscalls_per_s": syscalls, "syscall_ratio": syscalls / bare_syscalls.max(1.0),
                "wrk_rps": rps, "wrk_ratio": rps / bare_rps.max(1.0),
                "agent_cpu_percent": u.cpu_percent, "agent_rss_kib": u.rss, "agent_peak_rss_kib": u.peak,
            }),
        );
    }
    json.insert(
        "baseline".into(),
        serde_json::json!({"syscalls_per_s": bare_syscalls, "wrk_rps": bare_rps}),
    );
    println!("{}", serde_json::Value::Object(json));
    Ok(())
}
