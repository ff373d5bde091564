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
/// Faults the demo injects, in order: an OOM (Vigil raises the limit on its own) and CPU
/// throttling (Vigil proposes a higher quota and waits for an approver), then a crash loop,
/// network and dependency faults it detects and diagnoses.
const DEMO_FAULTS: &str = "oom,cpu-throttling,crash-loop,dns-failure,latency,revoked-credential";
/// The demo's phases: a memory limit is raised autonomously, a CPU quota only once someone
/// approves (the demo's operator, from the CLI); every other class is decided and logged.
/// The window and cooldown are the demo's time scale: its two actions are on the same
/// workload some 15 s apart.
const DEMO_REMEDIATION: &str = "[remediation]\nruntime = \"local\"\nverify_after_secs = 5\n\
     window_secs = 10\ncooldown_secs = 10\n\
     [remediation.phases]\nraise_memory_limit = \"autonomous\"\nchange_cpu_quota = \"assist\"\n";

/// The demo's on-call operator: holds an approver token (issued with `vigil tokens create`)
/// and approves, from the CLI, every action that waits for an approver, saying so.
struct Operator {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Operator {
    fn start(
        dir: &std::path::Path,
        admin: &std::path::Path,
        demo: Arc<AtomicBool>,
    ) -> anyhow::Result<Self> {
        let token = dir.join("operator-token");
        let issued = Command::new(bin_path("vigil"))
            .args([
                "--api",
                &format!("http://{HTTP}"),
                "tokens",
                "create",
                "demo-operator",
                "--role",
                "approver",
            ])
            .env("VIGIL_TOKEN_FILE", admin)
            .output()
            .context("issuing the operator's approver token")?;
        anyhow::ensure!(
            issued.status.success(),
            "issuing the operator's token: {}",
            String::from_utf8_lossy(&issued.stderr)
        );
        std::fs::write(&token, &issued.stdout)
            .with_context(|| format!("writing {}", token.display()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let done = stop.clone();
        let thread = std::thread::spawn(move || {
            let vigil = |args: &[&str]| {
                Command::new(bin_path("vigil"))
                    .args(["--api", &format!("http://{HTTP}")])
                    .args(args)
                    .env("VIGIL_TOKEN_FILE", &token)
                    .output()
            };
            while !done.load(Ordering::Relaxed) && !demo.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(500));
                let Ok(out) = vigil(&["--json", "actions"]) else {
                    continue;
                };
                let listed: serde_json::Value =
                    serde_json::from_slice(&out.stdout).unwrap_or_default();
                for a in listed.as_array().into_iter().flatten() {
                    if a["state"] != "pending_approval" {
                        continue;
                    }
                    let (incident, id) =
                        (a["request"]["incident"].to_string(), a["id"].to_string());
                    println!(
                        "    operator: vigil approve {incident} {id} --reason \"demo: checked the throttling\"  ({} on {})",
                        a["request"]["class"].as_str().unwrap_or("?"),
                        a["request"]["target"].as_str().unwrap_or("?")
                    );
                    if let Ok(out) = vigil(&[
                        "approve",
                        &incident,
                        &id,
                        "--reason",
                        "demo: checked the throttling",
                    ]) {
                        print!("    {}", String::from_utf8_lossy(&out.stdout));
                        eprint!("{}", String::from_utf8_lossy(&out.stderr));
                    }
                }
            }
        });
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

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
    // The console's lab page shows the report this demo's lab run writes.
    let config = format!(
        "{}[console]\nlab_report = {:?}\n",
        crate::lab::config_with(&lab_state, DEMO_REMEDIATION),
        dir.join("lab").join("summary.md").display().to_string()
    );
    let cp = ControlPlane::start_at_with(&dir, grpc, http, &config);
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
        "    operator console: http://{HTTP}/console (sign in with the admin token in {})",
        token.display()
    );
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
    let operator = Operator::start(&dir, &token, stop.clone())?;
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
    drop(operator);
    if !interrupted(&stop, Duration::from_secs(1)) {
        step("what Vigil did (`vigil actions`) and each action class's record (`vigil actions --record`)");
        vigil(&["actions"]);
        vigil(&["actions", "--record"]);
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
