//! `vigil-bench-overhead`: what the probes cost. In one run, side by side, for no agent, the
//! default settings, every probe group, and each group alone:
//! - a syscall-heavy loop's throughput;
//! - wrk → nginx → app → redis throughput, and the agent's CPU% and RSS while it watches;
//! - the kernel time of each eBPF program (ns per run, runs per second), so a change shows
//!   where the cost moved: the probes' kernel side, the agent's user space, or the workload.
//!
//! Each configuration is compared with a run without the agent made just before it, not with
//! one baseline at the start: on 2 shared cores the machine's own drift over a minute is as
//! large as the effect measured. Nothing is pinned: 2 cores cannot give the load generator,
//! the chain and the agent a CPU each.
//!
//! Run it with `cargo xtask bench` (release build, root); `--report DIR` also writes
//! `overhead.md` and `overhead.json` there.

use std::{
    ffi::CString,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use vigil_tests::{
    bpfstats::{ProgramCost, Stats},
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

/// One configuration's figures beside the run without the agent made just before it.
#[derive(serde::Serialize)]
struct Row {
    label: String,
    bare_syscalls_per_s: f64,
    syscalls_per_s: f64,
    syscall_ratio: f64,
    bare_wrk_rps: f64,
    wrk_rps: f64,
    wrk_ratio: f64,
    agent_cpu_pct: f64,
    agent_rss_kib: u64,
    agent_peak_rss_kib: u64,
    /// Kernel map usage after the wrk run.
    maps: String,
    /// Kernel time per program during the syscall loop, and during the wrk run.
    programs_syscall_loop: Vec<ProgramCost>,
    programs_wrk: Vec<ProgramCost>,
}

/// How often each configuration is measured against its own run without the agent; the
/// rows carry the median ratio. One pair is not enough here: wrk → nginx on 2 shared cores
/// moves by ±15 % from one run to the next.
const REPEATS: usize = 3;

/// One agent start measured: throughput with it, beside a run without it just before.
struct Pair {
    bare_syscalls: f64,
    syscalls: f64,
    bare_rps: f64,
    rps: f64,
    agent_cpu_pct: f64,
    agent_rss_kib: u64,
    agent_peak_rss_kib: u64,
}

/// Syscall-loop and wrk throughput with an agent running `telemetry` settings, each beside a
/// run without it, [`REPEATS`] times; then one more run of each with the kernel's BPF
/// run-time statistics on, for the per-program costs. (Counting costs two clock reads per
/// program run, so the throughput runs are made without it.)
fn measure(
    dir: &std::path::Path,
    cp: &ControlPlane,
    chain: &ServiceChain,
    (i, label, telemetry): (usize, &str, &str),
    seconds: u64,
) -> anyhow::Result<Row> {
    let api = cp.api();
    // Each start its own node name: the harness waits for the agent's node to appear, and a
    // name seen before would let the measurement begin before the new agent's probes are in.
    let options = |r: usize| AgentOptions {
        telemetry_toml: telemetry.to_string(),
        // The shipped interval, not the harness's faster one.
        telemetry_interval_ms: 1_000,
        ..AgentOptions::new(&format!("overhead-{i}-{r}"))
    };
    let run = Duration::from_secs(seconds);
    let mut pairs = Vec::new();
    for r in 0..REPEATS {
        let bare_syscalls = syscall_loop(run)?;
        let bare_rps = requests_per_sec(&chain.load(seconds as u32, 8).1);
        let agent = Agent::start(dir, &cp.endpoint(), &api, &options(r));
        let syscalls = syscall_loop(run)?;
        let cpu_before = cpu_seconds(agent.pid());
        let started = Instant::now();
        let (_, report) = chain.load(seconds as u32, 8);
        let agent_cpu_pct =
            100.0 * (cpu_seconds(agent.pid()) - cpu_before) / started.elapsed().as_secs_f64();
        let (agent_rss_kib, agent_peak_rss_kib) = memory_kib(agent.pid());
        pairs.push(Pair {
            bare_syscalls,
            syscalls,
            bare_rps,
            rps: requests_per_sec(&report),
            agent_cpu_pct,
            agent_rss_kib,
            agent_peak_rss_kib,
        });
    }
    let agent = Agent::start(dir, &cp.endpoint(), &api, &options(REPEATS));
    let stats = Stats::enable()?;
    let profiled = Duration::from_secs(3);
    let (before, started) = (stats.snapshot(PROGRAM_PREFIX), Instant::now());
    syscall_loop(profiled)?;
    let programs_syscall_loop =
        before.costs_until(&stats.snapshot(PROGRAM_PREFIX), started.elapsed());
    let (before, started) = (stats.snapshot(PROGRAM_PREFIX), Instant::now());
    chain.load(3, 8);
    let programs_wrk = before.costs_until(&stats.snapshot(PROGRAM_PREFIX), started.elapsed());
    drop(stats);
    // Let the last interval land, then read the kernel map usage the agent reported.
    std::thread::sleep(Duration::from_millis(1500));
    let maps = map_usage(
        &api.get("/api/v1/nodes"),
        &format!("overhead-{i}-{REPEATS}"),
    );
    drop(agent);
    let m = |f: fn(&Pair) -> f64| vigil_tests::median(pairs.iter().map(f).collect());
    Ok(Row {
        label: label.to_string(),
        bare_syscalls_per_s: m(|p| p.bare_syscalls),
        syscalls_per_s: m(|p| p.syscalls),
        syscall_ratio: m(|p| p.syscalls / p.bare_syscalls.max(1.0)),
        bare_wrk_rps: m(|p| p.bare_rps),
        wrk_rps: m(|p| p.rps),
        wrk_ratio: m(|p| p.rps / p.bare_rps.max(1.0)),
        agent_cpu_pct: m(|p| p.agent_cpu_pct),
        agent_rss_kib: m(|p| p.agent_rss_kib as f64) as u64,
        agent_peak_rss_kib: pairs
            .iter()
            .map(|p| p.agent_peak_rss_kib)
            .max()
            .unwrap_or(0),
        maps,
        programs_syscall_loop,
        programs_wrk,
    })
}

/// The kernel map usage `node` last reported.
fn map_usage(nodes: &serde_json::Value, node: &str) -> String {
    vigil_tests::node_maps(nodes, node)
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
        .join("; ")
}

/// Every program the agent loads is named `vigil_…`.
const PROGRAM_PREFIX: &str = "vigil_";

const GROUPS: [&str; 5] = ["network", "requests", "syscalls", "runqueue", "block_io"];

/// Telemetry settings with `on` groups enabled and the rest off.
fn groups(on: &[&str]) -> String {
    GROUPS
        .iter()
        .map(|g| format!("{g} = {}\n", on.contains(g)))
        .collect()
}

fn configurations() -> Vec<(&'static str, String)> {
    vec![
        ("default settings", String::new()),
        ("all probe groups", groups(&GROUPS)),
        ("process lifecycle only", groups(&[])),
        ("+ network (tcp, skb, dns)", groups(&["network"])),
        (
            "+ network + requests, no tls",
            groups(&["network", "requests"]) + "tls = false\n",
        ),
        (
            "+ network + requests, tls",
            groups(&["network", "requests"]),
        ),
        ("+ syscalls", groups(&["syscalls"])),
        ("+ run queue", groups(&["runqueue"])),
        ("+ block io", groups(&["block_io"])),
    ]
}

fn table(rows: &[Row], seconds: u64) -> String {
    let mut out = format!(
        "vigil-bench-overhead ({} cores, {seconds} s per run, median of {REPEATS}, no pinning; syscall loop = read + write + failing open on 1 thread; wrk -t1 -c8 → nginx → app → redis)\n\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    out += &format!(
        "  {:<30} {:>12} {:>7} {:>10} {:>7} {:>9} {:>10} {:>9}\n",
        "probes", "syscalls/s", "ratio", "wrk req/s", "ratio", "agent CPU", "agent RSS", "BPF CPU"
    );
    for r in rows {
        let bpf: f64 = r.programs_wrk.iter().map(|p| p.cpu_pct).sum();
        out += &format!(
            "  {:<30} {:>10.2}M {:>7.3} {:>10.0} {:>7.3} {:>8.1}% {:>6} MiB {:>8.1}%\n",
            r.label,
            r.syscalls_per_s / 1e6,
            r.syscall_ratio,
            r.wrk_rps,
            r.wrk_ratio,
            r.agent_cpu_pct,
            r.agent_rss_kib / 1024,
            bpf
        );
    }
    out += &format!("\n  (each ratio is the median of {REPEATS}, each against a run without the agent made just\n   before it; BPF CPU is the programs' kernel time under wrk, as a share of one CPU, from a\n   separate run with the kernel's BPF statistics on)\n");
    if let Some(all) = rows.iter().find(|r| r.label == "all probe groups") {
        out += &format!("\n  kernel maps after wrk, all groups: {}\n", all.maps);
        for (phase, programs) in [
            ("under wrk", &all.programs_wrk),
            ("in the syscall loop", &all.programs_syscall_loop),
        ] {
            out += &format!(
                "\n  eBPF programs {phase}, all groups:\n  {:<16} {:>12} {:>10} {:>8}\n",
                "program", "runs/s", "ns/run", "CPU"
            );
            for p in programs.iter() {
                out += &format!(
                    "  {:<16} {:>12.0} {:>10.0} {:>7.2}%\n",
                    p.program, p.runs_per_s, p.ns_per_run, p.cpu_pct
                );
            }
        }
    }
    out
}

/// The fields the overhead issue tracks, then every row.
fn summary(rows: &[Row]) -> anyhow::Result<serde_json::Value> {
    let find = |label: &str| {
        rows.iter()
            .find(|r| r.label == label)
            .with_context(|| format!("no {label} row"))
    };
    let (all, default) = (find("all probe groups")?, find("default settings")?);
    Ok(serde_json::json!({
        "nginx_ratio_all": all.wrk_ratio,
        "syscall_ratio_all": all.syscall_ratio,
        "syscall_ratio_default": default.syscall_ratio,
        "nginx_ratio_default": default.wrk_ratio,
        "agent_cpu_pct": all.agent_cpu_pct,
        "agent_rss_mib": all.agent_rss_kib as f64 / 1024.0,
        "requests_per_s": all.wrk_rps,
        "rows": rows,
    }))
}

/// Writes `path` whole or not at all.
fn write_atomically(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

fn main() -> anyhow::Result<()> {
    require_root();
    let args: Vec<String> = std::env::args().collect();
    let report_dir = vigil_tests::report_dir(&args).map_err(anyhow::Error::msg)?;
    let seconds = 4;
    // Refused (no root, a kernel before 5.8) before any measuring, not after the first rows.
    drop(Stats::enable()?);
    let dir = tempfile::tempdir()?;
    let chain = ServiceChain::start(dir.path());
    let cp = ControlPlane::start(dir.path());
    // Warm up the chain (page cache, nginx worker) before measuring.
    chain.load(2, 8);
    let mut rows = Vec::new();
    for (i, (label, telemetry)) in configurations().iter().enumerate() {
        let row = measure(dir.path(), &cp, &chain, (i, label, telemetry), seconds)?;
        eprintln!(
            "  {label}: syscalls {:.3}, wrk {:.3}",
            row.syscall_ratio, row.wrk_ratio
        );
        rows.push(row);
    }
    let text = table(&rows, seconds);
    print!("{text}");
    let json = summary(&rows)?;
    if let Some(dir) = report_dir {
        let md = format!(
            "# Probe overhead\n\nWritten by `cargo xtask bench` (`vigil-bench-overhead --report reports`).\n\n```\n{text}```\n"
        );
        write_atomically(&dir.join("overhead.md"), &md)?;
        write_atomically(
            &dir.join("overhead.json"),
            &format!("{}\n", serde_json::to_string_pretty(&json)?),
        )?;
        println!(
            "  written: {0}/overhead.md, {0}/overhead.json",
            dir.display()
        );
    }
    Ok(())
}
