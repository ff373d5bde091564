//! `vigil-bench-scale`: how the agent's own cost grows with what it watches.
//! - workloads: 10, 100 and 1,000 cgroups, each one process that makes a few syscalls
//!   (one failing) every 100 ms and one TCP connection every second;
//! - connections per second: one client opening and closing loopback connections at paced
//!   rates, then as fast as it can.
//!
//! For each step: the agent's CPU (its own utime + stime over the window, as a share of one
//! CPU), its RSS, and the kernel map entries it reported. Default telemetry settings; the
//! budget is off (this measures the cost, not the shedding). Run it with `cargo xtask bench`
//! (release build, root); `--report DIR` also writes `scale.md` and `scale.json` there.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use vigil_tests::{
    cgroup::Cgroup,
    procstat::{cpu_seconds, memory_kib},
    require_root, Agent, AgentOptions, ControlPlane,
};

const NODE: &str = "scale-node";
const WORKLOAD_STEPS: [usize; 3] = [10, 100, 1_000];
/// Paced connection rates; 0 is "as fast as one client can".
const CONNECT_RATES: [u64; 4] = [100, 1_000, 5_000, 0];
const WINDOW: Duration = Duration::from_secs(10);
const SETTLE: Duration = Duration::from_secs(4);

/// One workload's loop (`--worker PORT`): a few syscalls every 100 ms, a connection a second.
fn worker(port: u16) -> ! {
    let mut buf = [0u8; 64];
    let mut tick = 0u64;
    loop {
        if let Ok(mut f) = std::fs::File::open("/dev/zero") {
            let _ = f.read(&mut buf);
        }
        let _ = std::fs::File::open("/nonexistent/vigil-bench-scale");
        if tick.is_multiple_of(10) {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.write_all(b"x");
                let _ = s.read(&mut buf[..1]);
            }
        }
        tick += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Answers each connection with one byte, on its own threads, until the process ends.
fn echo_server() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the echo listener")?;
    let port = listener.local_addr()?.port();
    for _ in 0..2 {
        let l = listener.try_clone()?;
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                let mut b = [0u8; 1];
                if s.read(&mut b).is_ok_and(|n| n == 1) {
                    let _ = s.write_all(&b);
                }
            }
        });
    }
    Ok(port)
}

/// A workload: one worker process in its own cgroup v2 group.
struct Workload {
    child: Child,
    _cgroup: Cgroup,
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_workload(i: usize, port: u16) -> anyhow::Result<Workload> {
    let cgroup = Cgroup::unified(&format!("vigil-scale-{}-{i}", std::process::id()));
    let mut c = Command::new(std::env::current_exe()?);
    c.args(["--worker", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cgroup.place(&mut c);
    Ok(Workload {
        child: c.spawn().context("starting a worker")?,
        _cgroup: cgroup,
    })
}

#[derive(serde::Serialize)]
struct Step {
    what: String,
    /// Workloads running, or connections per second made.
    load: f64,
    agent_cpu_pct: f64,
    agent_rss_mib: f64,
    /// Kernel map entries the agent last reported (name → live entries).
    maps: String,
}

/// The agent's CPU share over `WINDOW` while `during` runs (it returns a figure of its own).
fn window(agent: &Agent, during: impl FnOnce() -> f64) -> (f64, f64, f64) {
    let before = cpu_seconds(agent.pid());
    let started = Instant::now();
    let figure = during();
    let cpu = 100.0 * (cpu_seconds(agent.pid()) - before) / started.elapsed().as_secs_f64();
    let rss = memory_kib(agent.pid()).0 as f64 / 1024.0;
    (cpu, rss, figure)
}

fn map_entries(api: &vigil_tests::Api) -> String {
    vigil_tests::node_maps(&api.get("/api/v1/nodes"), NODE)
        .iter()
        .filter(|m| m["entries"].as_u64().unwrap_or(0) > 0)
        .map(|m| format!("{} {}", m["name"].as_str().unwrap_or("?"), m["entries"]))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Opens and closes connections to `port` at `rate` per second (0: unpaced) for `WINDOW`;
/// the rate reached.
fn connect_at(port: u16, rate: u64) -> f64 {
    let made = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let client = {
        let (made, stop) = (made.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 1];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                    let _ = s.write_all(b"x");
                    let _ = s.read(&mut buf);
                }
                let n = made.fetch_add(1, Ordering::Relaxed) + 1;
                if rate > 0 {
                    // Pace against the clock: sleep until this connection's slot.
                    let due = Duration::from_secs_f64(n as f64 / rate as f64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
            }
        })
    };
    std::thread::sleep(WINDOW);
    stop.store(true, Ordering::Relaxed);
    let _ = client.join();
    made.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn table(steps: &[Step]) -> String {
    let mut out = format!(
        "vigil-bench-scale ({} cores, {} s per step after {} s to settle; default telemetry, budget off)\n\n  {:<26} {:>10} {:>10} {:>10}  kernel map entries\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        WINDOW.as_secs(),
        SETTLE.as_secs(),
        "step",
        "load",
        "agent CPU",
        "agent RSS"
    );
    for s in steps {
        out += &format!(
            "  {:<26} {:>10.0} {:>9.2}% {:>6.1} MiB  {}\n",
            s.what, s.load, s.agent_cpu_pct, s.agent_rss_mib, s.maps
        );
    }
    out += "\n  (workloads: each a process in its own cgroup making 4 syscalls, one failing, every\n   100 ms and a loopback connection every second; connections: one client, each connection\n   one byte each way, load = connections/s reached)\n";
    out
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--worker") {
        let port = args
            .get(i + 1)
            .and_then(|p| p.parse().ok())
            .context("--worker needs a port")?;
        worker(port);
    }
    require_root();
    let report_dir = vigil_tests::report_dir(&args).map_err(anyhow::Error::msg)?;
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(dir.path());
    let api = cp.api();
    let options = AgentOptions {
        telemetry_interval_ms: 1_000,
        ..AgentOptions::new(NODE)
    };
    let agent = Agent::start(dir.path(), &cp.endpoint(), &api, &options);
    let port = echo_server()?;
    let mut steps = Vec::new();
    let mut record = |what: String, (cpu, rss, load): (f64, f64, f64)| {
        eprintln!("  {what}: {load:.0}, agent {cpu:.2} % CPU, {rss:.1} MiB");
        steps.push(Step {
            what,
            load,
            agent_cpu_pct: cpu,
            agent_rss_mib: rss,
            maps: map_entries(&api),
        });
    };

    std::thread::sleep(SETTLE);
    record(
        "idle".into(),
        window(&agent, || {
            std::thread::sleep(WINDOW);
            0.0
        }),
    );
    let mut workloads = Vec::new();
    for n in WORKLOAD_STEPS {
        while workloads.len() < n {
            workloads.push(spawn_workload(workloads.len(), port)?);
        }
        std::thread::sleep(SETTLE);
        let running = workloads.len() as f64;
        record(
            format!("{n} workloads"),
            window(&agent, || {
                std::thread::sleep(WINDOW);
                running
            }),
        );
    }
    drop(workloads);
    std::thread::sleep(SETTLE);
    for rate in CONNECT_RATES {
        let what = if rate == 0 {
            "connections, unpaced".to_string()
        } else {
            format!("{rate} connections/s")
        };
        record(what, window(&agent, || connect_at(port, rate)));
    }
    agent.assert_running();
    drop(agent);

    let text = table(&steps);
    print!("{text}");
    if let Some(dir) = report_dir {
        std::fs::write(
            dir.join("scale.md"),
            format!("# Agent cost by scale\n\nWritten by `cargo xtask bench` (`vigil-bench-scale --report reports`).\n\n```\n{text}```\n"),
        )
        .context("writing scale.md")?;
        std::fs::write(
            dir.join("scale.json"),
            format!("{}\n", serde_json::to_string_pretty(&steps)?),
        )
        .context("writing scale.json")?;
        println!("  written: {0}/scale.md, {0}/scale.json", dir.display());
    }
    Ok(())
}
