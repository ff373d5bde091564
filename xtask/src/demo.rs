//! `cargo xtask demo`: the control plane and the agent on this host, real faults, incidents
//! shown as they open.

use std::{
    net::SocketAddr,
    process::{Child, Command},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use vigil_tests::{bin_path, topology::ServiceChain, Agent, AgentOptions, Cgroup, ControlPlane};

use crate::{build::workspace_root, setup::step};

const GRPC: &str = "127.0.0.1:7070";
const HTTP: &str = "127.0.0.1:8080";

/// Kills the `vigil watch` child on every exit path.
struct Watch(Child);

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn interrupted(stop: &AtomicBool, pause: Duration) -> bool {
    let until = Instant::now() + pause;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.load(Ordering::Relaxed)
}

pub fn run(duration: Option<u64>) -> anyhow::Result<()> {
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "the demo loads eBPF programs and creates cgroups: run it as root"
    );
    let bins = workspace_root().join("target/debug");
    std::env::set_var("VIGIL_BIN_DIR", &bins);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("installing the Ctrl-C handler")?;

    let dir = workspace_root().join("target/demo");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    step(&format!(
        "control plane (gRPC {GRPC}, REST http://{HTTP}, store {})",
        dir.join("vigil.db").display()
    ));
    let grpc: SocketAddr = GRPC.parse()?;
    let http: SocketAddr = HTTP.parse()?;
    let cp = ControlPlane::start_at(&dir, grpc, http);
    let api = cp.api();

    step("node agent (loading eBPF probes)");
    let options = AgentOptions::new(&nix::unistd::gethostname()?.to_string_lossy());
    let agent = Agent::start(&dir, &cp.endpoint(), &api, &options);
    println!(
        "    agent pid {} connected as node {:?}; logs in {}",
        agent.pid(),
        agent.node,
        dir.display()
    );
    println!(
        "    in another terminal: {}/vigil incidents | incident <id> | events | nodes",
        bins.display()
    );

    step("watching incidents (Ctrl-C stops the demo and cleans up)");
    let watch = Watch(
        Command::new(bin_path("vigil"))
            .args([
                "--api",
                &format!("http://{HTTP}"),
                "watch",
                "--interval-ms",
                "300",
            ])
            .spawn()
            .context("starting `vigil watch`")?,
    );

    let mut cgroups = Vec::new();
    if !interrupted(&stop, Duration::from_secs(2)) {
        step("fault: a process allocates past its 48 MiB memory cgroup limit (expect an OOM-kill incident)");
        let cg = Cgroup::memory_v1("vigil-demo-oom", Some(48 << 20));
        let mut hog = Command::new(bin_path("vigil-test-hog"));
        hog.args(["1", "3"]);
        cg.place(&mut hog);
        let status = hog.status().context("running the memory hog")?;
        println!("    hog ended: {status}");
        cgroups.push(cg);
    }
    if !interrupted(&stop, Duration::from_secs(3)) {
        step("fault: a service exits with code 1 three times in a row (expect a crash-loop incident)");
        let cg = Cgroup::memory_v1("vigil-demo-crashloop", None);
        for attempt in 1..=3 {
            let mut crash = Command::new(bin_path("vigil-test-crash"));
            crash.args(["exit", "1"]).env("VIGIL_CRASH_DELAY_MS", "200");
            cg.place(&mut crash);
            let status = crash.status().context("running the crashing service")?;
            println!("    restart {attempt}: {status}");
        }
        cgroups.push(cg);
    }
    let mut chain = None;
    if !interrupted(&stop, Duration::from_secs(1)) {
        step("services: wrk → nginx → app → redis in network namespaces, 3 s of load (expect the service graph)");
        let c = ServiceChain::start(&dir);
        let (_client, report) = c.load(3, 4);
        if let Some(line) = report.lines().find(|l| l.contains("Requests/sec")) {
            println!("    wrk: {}", line.trim());
        }
        // One metric interval (1 s) for the last flows to arrive.
        std::thread::sleep(Duration::from_millis(1500));
        let vigil = |args: &[&str]| {
            let _ = Command::new(bin_path("vigil"))
                .args(["--api", &format!("http://{HTTP}")])
                .args(args)
                .status();
        };
        step("the live service graph (`vigil graph`; `vigil graph --dot` for Graphviz)");
        vigil(&["graph"]);
        step("what breaks if redis does (`vigil blast-radius <entity>`)");
        vigil(&["blast-radius", &c.redis.key()]);
        chain = Some(c);
    }
    if !interrupted(&stop, Duration::from_secs(3)) {
        step("incidents so far");
        let _ = Command::new(bin_path("vigil"))
            .args(["--api", &format!("http://{HTTP}"), "incidents"])
            .status();
        match duration {
            Some(s) => println!("    running for {s}s more (Ctrl-C to stop now)"),
            None => println!("    still watching; Ctrl-C to stop"),
        }
    }
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed)
        && duration.is_none_or(|d| started.elapsed() < Duration::from_secs(d))
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    step("tearing down: agent, control plane, demo cgroups and namespaces");
    drop(watch);
    drop(chain);
    drop(cgroups);
    drop(agent);
    drop(cp);
    println!(
        "    done; the demo's store and logs stay in {}",
        dir.display()
    );
    Ok(())
}
