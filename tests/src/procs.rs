//! The control plane and the agent as real child processes, stopped on drop.

use std::{
    fs::File,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};

use crate::{bin_path, wait_for, Api};

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// SIGTERM, then SIGKILL if it has not exited within `grace`.
fn terminate(child: &mut Child, grace: Duration) {
    let pid = Pid::from_raw(child.id() as i32);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn spawn_logged(mut command: Command, log: &Path) -> Child {
    let file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let err = file.try_clone().expect("log file clone");
    command
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", command.get_program()))
}

pub struct ControlPlane {
    pub dir: PathBuf,
    /// TOML given with `--config` (empty: defaults).
    config: String,
    child: Option<Child>,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    log: PathBuf,
}

impl ControlPlane {
    /// Starts a control plane with its own store in `dir`, on free loopback ports.
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, "")
    }

    /// Like `start`, with a config file of `toml` (listen addresses and store still come
    /// from the command line).
    pub fn start_with(dir: &Path, toml: &str) -> Self {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        Self::launch(dir, any, any, toml)
    }

    /// Starts a control plane with its store in `dir` on the given addresses.
    pub fn start_at(dir: &Path, grpc: SocketAddr, http: SocketAddr) -> Self {
        Self::launch(dir, grpc, http, "")
    }

    /// At fixed addresses, with a config file of `toml`.
    pub fn start_at_with(dir: &Path, grpc: SocketAddr, http: SocketAddr, toml: &str) -> Self {
        Self::launch(dir, grpc, http, toml)
    }

    fn launch(dir: &Path, grpc: SocketAddr, http: SocketAddr, toml: &str) -> Self {
        let log = dir.join("control-plane.log");
        let ready = dir.join("control-plane.ready");
        let _ = std::fs::remove_file(&ready);
        let mut command = Command::new(bin_path("vigil-control-plane"));
        command
            .arg("--store")
            .arg(dir.join("vigil.db"))
            .arg("--grpc-listen")
            .arg(grpc.to_string())
            .arg("--http-listen")
            .arg(http.to_string())
            .arg("--ready-file")
            .arg(&ready)
            // `VIGIL_CONTROL_PLANE_LOG=vigil_domain::detection=trace` to see the detector's
            // decisions while investigating a run.
            .env(
                "RUST_LOG",
                std::env::var("VIGIL_CONTROL_PLANE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("RUST_LIB_BACKTRACE", "0");
        // Anomaly detection runs polars every window over every workload on the host; the
        // tests that do not exercise it leave it off, so twenty control planes side by side
        // do not starve the timing-sensitive tests of CPU.
        let mut toml = if toml.contains("[detection]") {
            toml.to_string()
        } else {
            format!("{toml}\n[detection]\nenabled = false\n")
        };
        // Agents connect with mutual TLS unless the test set its own `[tls…]`.
        if !toml.contains("[tls") {
            toml.push_str(&crate::pki::Pki::shared().control_plane_toml());
        }
        let file = dir.join("control-plane.toml");
        std::fs::write(&file, &toml).expect("write control plane config");
        command.arg("--config").arg(file);
        let mut child = spawn_logged(command, &log);
        let (grpc, http) = wait_for(
            Duration::from_secs(15),
            "the control plane to listen",
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "control plane exited ({status}) during start-up:\n{}",
                        log_tail(&log)
                    );
                }
                let text = std::fs::read_to_string(&ready).ok()?;
                let v: serde_json::Value = serde_json::from_str(&text).ok()?;
                Some((
                    v["grpc"].as_str()?.parse().ok()?,
                    v["http"].as_str()?.parse().ok()?,
                ))
            },
        );
        Self {
            dir: dir.to_path_buf(),
            config: toml.to_string(),
            child: Some(child),
            grpc,
            http,
            log,
        }
    }

    /// The gRPC ingest's URL: https when it is mutual TLS (the harness's default).
    pub fn endpoint(&self) -> String {
        let scheme = if self.config.contains("[tls.grpc]") {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.grpc)
    }

    /// A gRPC channel to the ingest as node `node`'s agent would open it (over mutual TLS
    /// with a certificate for `node` when the ingest is TLS).
    pub async fn channel(&self, node: &str) -> tonic::transport::Channel {
        self.try_channel(node)
            .await
            .unwrap_or_else(|e| panic!("connect to the ingest: {e}"))
    }

    /// Like `channel`, the failure returned.
    pub async fn try_channel(&self, node: &str) -> Result<tonic::transport::Channel, String> {
        let endpoint = self.endpoint();
        if endpoint.starts_with("https://") {
            return crate::pki::Pki::shared()
                .credentials("agent", node)
                .connect(&endpoint)
                .await;
        }
        tonic::transport::Endpoint::from_shared(endpoint)
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| e.to_string())
    }

    /// The REST API, as its admin: the token the control plane wrote on its first start.
    pub fn api(&self) -> Api {
        let token = std::fs::read_to_string(self.token_file()).unwrap_or_else(|e| {
            panic!(
                "the control plane wrote no admin token at {}: {e}",
                self.token_file().display()
            )
        });
        Api::with_token(format!("http://{}", self.http), &token)
    }

    /// The admin token's file: `admin-token` beside the store (the `[auth]` default).
    pub fn token_file(&self) -> PathBuf {
        self.dir.join("admin-token")
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(5));
        }
    }

    /// SIGKILL: no shutdown, no flush — a crash, or the OOM killer.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same ports with the same store.
    pub fn restart(&mut self) {
        self.stop();
        let next = Self::launch(&self.dir, self.grpc, self.http, &self.config);
        let mut next = next;
        self.child = next.child.take();
    }

    pub fn log(&self) -> String {
        log_tail(&self.log)
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "--- control plane log ({}) ---\n{}",
                self.log.display(),
                log_tail(&self.log)
            );
        }
    }
}

#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub node_name: String,
    pub buffer_max_events: usize,
    pub batch_max_events: usize,
    pub flush_interval_ms: u64,
    pub max_backoff_ms: u64,
    pub compression: &'static str,
    pub ring_buffer_bytes: u32,
    /// How often kernel aggregates are drained into a metric batch.
    pub telemetry_interval_ms: u64,
    /// After this long an unanswered DNS query counts as a timeout.
    pub dns_timeout_ms: u64,
    /// More `[telemetry]` lines, e.g. `syscalls = false`.
    pub telemetry_toml: String,
    /// Where the agent serves Prometheus `/metrics` (port 0: any free port).
    pub metrics_listen: String,
    /// Whole sections appended to the config. By default the budget is off: the harness
    /// runs unoptimized agents, several times the cost the budget's defaults are set from,
    /// and a test of telemetry must not see it shed; the budget's own test sets it.
    pub extra_toml: String,
    /// The agent's certificate for an https endpoint; by default one for its node from the
    /// test process's CA.
    pub tls: Option<crate::pki::Credentials>,
}

impl AgentOptions {
    pub fn new(node_name: &str) -> Self {
        Self {
            node_name: node_name.to_string(),
            buffer_max_events: 100_000,
            batch_max_events: 512,
            flush_interval_ms: 20,
            max_backoff_ms: 1_000,
            compression: "zstd",
            ring_buffer_bytes: 1 << 20,
            telemetry_interval_ms: 500,
            dns_timeout_ms: 5_000,
            telemetry_toml: String::new(),
            metrics_listen: "127.0.0.1:0".into(),
            extra_toml: "[budget]\nenabled = false\n".into(),
            tls: None,
        }
    }
}

pub struct Agent {
    child: Option<Child>,
    pub node: String,
    log: PathBuf,
}

impl Agent {
    /// Starts an agent for `endpoint` and waits until the control plane at `api` knows it
    /// with every probe attached.
    pub fn start(dir: &Path, endpoint: &str, api: &Api, options: &AgentOptions) -> Self {
        let agent = Self::spawn(dir, endpoint, options);
        agent.wait_connected(api);
        agent
    }

    /// Starts an agent without waiting for a control plane.
    pub fn spawn(dir: &Path, endpoint: &str, o: &AgentOptions) -> Self {
        let config = dir.join(format!("agent-{}.toml", o.node_name));
        let tls = match (&o.tls, endpoint.starts_with("https://")) {
            (Some(credentials), true) => credentials.agent_toml(),
            (None, true) => crate::pki::Pki::shared()
                .issue("agent", &o.node_name, &[])
                .agent_toml(),
            (_, false) => String::new(),
        };
        std::fs::write(
            &config,
            format!(
                "node_name = \"{}\"\nstate_file = {:?}\n\
                 [control_plane]\nendpoint = \"{endpoint}\"\ncompression = \"{}\"\n\
                 [batch]\nmax_events = {}\nflush_interval_ms = {}\n\
                 [buffer]\nmax_events = {}\n\
                 [reconnect]\ninitial_backoff_ms = 50\nmax_backoff_ms = {}\n\
                 [kernel]\nrequire_all_probes = true\nring_buffer_bytes = {}\n\
                 [metrics]\nlisten = \"{}\"\n\
                 [telemetry]\ninterval_ms = {}\ndns_timeout_ms = {}\n{}\n{}\n{tls}",
                o.node_name,
                dir.join(format!("agent-{}.sequence.json", o.node_name)),
                o.compression,
                o.batch_max_events,
                o.flush_interval_ms,
                o.buffer_max_events,
                o.max_backoff_ms,
                o.ring_buffer_bytes,
                o.metrics_listen,
                o.telemetry_interval_ms,
                o.dns_timeout_ms,
                o.telemetry_toml,
                o.extra_toml,
            ),
        )
        .expect("write agent config");
        let log = dir.join(format!("agent-{}.log", o.node_name));
        let mut command = Command::new(bin_path("vigil-agent"));
        command
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .env("RUST_LIB_BACKTRACE", "0");
        let child = spawn_logged(command, &log);
        Self {
            child: Some(child),
            node: o.node_name.clone(),
            log,
        }
    }

    pub fn wait_connected(&self, api: &Api) {
        wait_for(
            Duration::from_secs(30),
            "the agent to connect with all probes attached",
            || {
                self.assert_running();
                let nodes = api.try_get("/api/v1/nodes")?;
                let node = nodes
                    .as_array()?
                    .iter()
                    .find(|n| n["name"] == self.node.as_str())?
                    .clone();
                let probes = node["probes"].as_array()?.clone();
                let failed: Vec<_> = probes
                    .iter()
                    .filter(|p| {
                        let error = p[1].as_str().unwrap_or("?");
                        !error.is_empty() && !error.starts_with("disabled by")
                    })
                    .collect();
                assert!(failed.is_empty(), "probes failed to attach: {failed:?}");
                Some(())
            },
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Panics with the agent's log if it has exited.
    pub fn assert_running(&self) {
        // try_wait needs &mut; /proc tells the same without it.
        let pid = self.pid();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or("X");
        assert!(
            !(stat.is_empty() || state == "Z" || state == "X"),
            "the agent exited (the kernel may have refused the probes):\n{}",
            log_tail(&self.log)
        );
    }

    pub fn log(&self) -> String {
        log_tail(&self.log)
    }

    /// Sends `signal` to the agent (SIGSTOP/SIGCONT to simulate a stalled agent).
    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid() as i32), signal).expect("signal the agent");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(8));
        }
        if std::thread::panicking() {
            eprintln!(
                "--- agent log ({}) ---\n{}",
                self.log.display(),
                log_tail(&self.log)
            );
        }
    }
}
