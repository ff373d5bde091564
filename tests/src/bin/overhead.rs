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

    let cp = ControlPlane::start(dir.path());
    let api = cp.api();
    let agent = Agent::start(
        dir.path(),
        &cp.endpoint(),
        &api,
        &AgentOptions::new("overhead-node"),
    );
    let probed_syscalls = syscall_loop(Duration::from_secs(seconds))?;
    let (rss_idle, _) = memory_kib(agent.pid());
    let cpu_before = cpu_seconds(agent.pid());
    let started = Instant::now();
    let (_, probed_report) = chain.load(seconds as u32, 8);
    let elapsed = started.elapsed().as_secs_f64();
    let agent_cpu = 100.0 * (cpu_seconds(agent.pid()) - cpu_before) / elapsed;
    let (rss, hwm) = memory_kib(agent.pid());
    let probed_rps = requests_per_sec(&probed_report);
    std::thread::sleep(Duration::from_secs(2));
    let graph = api.get("/api/v1/graph");
    let edges = graph["edges"].as_array().map_or(0, Vec::len);

    let ratio = probed_syscalls / bare_syscalls.max(1.0);
    println!(
        "vigil-bench-overhead ({} cores, {seconds}s per run)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  syscall loop (read+write+failing open, 1 thread)   without probes {:.2} M/s   with all probes {:.2} M/s   ratio {ratio:.3} ({:.1}% slower)",
        bare_syscalls / 1e6,
        probed_syscalls / 1e6,
        100.0 * (1.0 - ratio)
    );
    println!(
        "  wrk -c8 → nginx → app → redis                      without agent {bare_rps:.0} req/s   with agent {probed_rps:.0} req/s   ratio {:.3}",
        probed_rps / bare_rps.max(1.0)
    );
    println!(
        "  agent under wrk load                               CPU {agent_cpu:.1}% of one core   RSS {} KiB (idle {} KiB, peak {} KiB)   graph edges {edges}",
        rss, rss_idle, hwm
    );
    println!(
        "{}",
        serde_json::json!({
            "syscalls_per_s": {"without": bare_syscalls, "with": probed_syscalls, "ratio": ratio},
            "wrk_requests_per_s": {"without": bare_rps, "with": probed_rps},
            "agent_cpu_percent_under_wrk": agent_cpu,
            "agent_rss_kib": rss, "agent_peak_rss_kib": hwm,
        })
    );
    drop(agent);
    Ok(())
}
