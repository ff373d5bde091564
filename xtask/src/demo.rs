//! `cargo xtask demo`: the control plane and the agent on this host, the fault lab's testbed,
//! real faults one after another, incidents shown as they open, the lab's summary table and
//! the service graph.

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
use vigil_tests::{bin_path, Agent, AgentOptions, ControlPlane};

use crate::process::{step, workspace_root};

const GRPC: &str = "127.0.0.1:7070";
const HTTP: &str = "127.0.0.1:8080";
/// Faults the demo injects, in order: two Vigil detects and diagnoses today, then network
/// and dependency faults whose impact the lab measures.
const DEMO_FAULTS: &str = "oom,crash-loop,dns-failure,latency,revoked-credential";

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
    let lab_state = dir.join("lab-state");
    let cp = ControlPlane::start_at_with(&dir, grpc, http, &crate::lab::lab_config(&lab_state));
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
    let token = cp.token_file();
    println!(
        "    in another terminal: VIGIL_TOKEN_FILE={} {}/vigil incidents | incident <id> | events | nodes",
        token.display(),
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
            .env("VIGIL_TOKEN_FILE", &token)
            .spawn()
            .context("starting `vigil watch`")?,
    );

    let vigil = |args: &[&str]| {
        let _ = Command::new(bin_path("vigil"))
            .args(["--api", &format!("http://{HTTP}")])
            .args(args)
            .env("VIGIL_TOKEN_FILE", &token)
            .status();
    };
    if !interrupted(&stop, Duration::from_secs(1)) {
        step("fault lab: nginx → 2 app replicas → redis + PostgreSQL, DNS, load; then faults one after another");
        println!("    (incidents appear above as Vigil opens them; each fault is torn down and the path verified healthy)");
        let status = Command::new(bin_path("vigil-lab"))
            .args([
                "run",
                "--only",
                DEMO_FAULTS,
                "--api",
                &format!("http://{HTTP}"),
                "--warmup",
                &crate::lab::LAB_WARMUP_SECS.to_string(),
                "--out",
            ])
            .arg(dir.join("lab"))
            .env("VIGIL_LAB_STATE", &lab_state)
            .env("VIGIL_TOKEN_FILE", &token)
            .status()
            .context("running the fault lab")?;
        if !status.success() {
            println!(
                "    the fault lab failed ({status}); its logs are in {}",
                lab_state.display()
            );
        }
    }
    if !interrupted(&stop, Duration::from_secs(1)) {
        step("the service graph the kernel saw (`vigil graph`; `vigil graph --dot` for Graphviz)");
        vigil(&["graph"]);
        step("what breaks if redis does (`vigil blast-radius cgroup/vigil-lab-redis`)");
        vigil(&["blast-radius", "cgroup/vigil-lab-redis"]);
    }
    if !interrupted(&stop, Duration::from_secs(3)) {
        step("incidents so far");
        vigil(&["incidents"]);
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
    step("tearing down: agent and control plane (the lab removed its namespaces and cgroups)");
    drop(watch);
    drop(agent);
    drop(cp);
    println!(
        "    done; the demo's store and logs stay in {}",
        dir.display()
    );
    Ok(())
}
