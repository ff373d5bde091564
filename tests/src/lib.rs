//! Harness for Vigil's end-to-end tests: real processes, real cgroups, real kernel.
//!
//! Every resource a test creates is held by a guard that removes it on drop, so a failing
//! test leaves no cgroup or process behind. Names start with `vigil-test-`.

pub mod bpfstats;
pub mod browser;
pub mod cgroup;
pub mod otlp;
pub mod pki;
pub mod procs;
pub mod procstat;
pub mod prometheus;
pub mod supervisor;
pub mod topology;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

pub use cgroup::Cgroup;
pub use procs::{Agent, AgentOptions, ControlPlane};
pub use supervisor::Supervisor;

/// A control plane with its own store and an agent connected to it: what most end-to-end
/// tests start from. Destructure it; locals drop in reverse, agent first, store dir last.
pub struct Stack {
    pub dir: tempfile::TempDir,
    pub cp: ControlPlane,
    pub api: Api,
    pub agent: Agent,
}

impl Stack {
    pub fn start(options: &AgentOptions) -> Self {
        Self::start_with(options, "")
    }

    /// With a control plane config file of `cp_toml`.
    pub fn start_with(options: &AgentOptions, cp_toml: &str) -> Self {
        require_root();
        let dir = tempfile::tempdir().expect("tempdir");
        let cp = ControlPlane::start_with(dir.path(), cp_toml);
        let api = cp.api();
        let agent = Agent::start(dir.path(), &cp.endpoint(), &api, options);
        Self {
            dir,
            cp,
            api,
            agent,
        }
    }
}

/// Runs the crash helper (`vigil-test-crash <args>`) inside `cgroup`, from this process (the
/// supervisor, outside it). Returns its pid and how it ended.
pub fn run_crash_helper(cgroup: &Cgroup, args: &[&str]) -> (u32, std::process::ExitStatus) {
    let mut command = std::process::Command::new(bin_path("vigil-test-crash"));
    command.args(args);
    cgroup.place(&mut command);
    let mut child = command.spawn().expect("start the crash helper");
    let pid = child.id();
    (pid, child.wait().expect("wait"))
}

/// `2026-12-12` for a Unix time (UTC), as the control plane writes dates.
pub fn utc_date(unix: i64) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{unix}"), "+%Y-%m-%d"])
        .output()
        .expect("run date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A unique resource name: `vigil-test-<what>-<pid>-<random>`.
pub fn unique_name(what: &str) -> String {
    format!(
        "vigil-test-{what}-{}-{:06x}",
        std::process::id(),
        rand::random::<u32>() & 0xff_ffff
    )
}

/// Path of a workspace binary (built by `cargo xtask build`, or
/// `cargo build --workspace --exclude node-agent-ebpf --bins`).
pub fn bin_path(name: &str) -> PathBuf {
    let dir = std::env::var_os("VIGIL_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // Test binaries live in target/<profile>/deps; workspace binaries one level up.
            let exe = std::env::current_exe().expect("current_exe");
            let mut dir = exe.parent().expect("exe dir").to_path_buf();
            if dir.ends_with("deps") {
                dir.pop();
            }
            dir
        });
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (`cargo xtask build`)",
        path.display()
    );
    path
}

/// Polls `f` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether this process may load eBPF programs. Privileged tests do not skip when it may
/// not: they fail, naming the reason.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test loads eBPF programs and creates cgroups: run it as root (CI runs as root)"
    );
}

/// A blocking client for the control plane's REST API.
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    http: reqwest::blocking::Client,
}

impl Api {
    /// A client that sends no token (Prometheus, an agent's metrics, public paths).
    pub fn new(base: String) -> Self {
        Self::with_headers(base, reqwest::header::HeaderMap::new())
    }

    /// A client that sends `token` as its bearer token, as the vigil CLI does.
    pub fn with_token(base: String, token: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        let mut value: reqwest::header::HeaderValue = format!("Bearer {}", token.trim())
            .parse()
            .expect("a token is a header value");
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
        Self::with_headers(base, headers)
    }

    fn with_headers(base: String, headers: reqwest::header::HeaderMap) -> Self {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .default_headers(headers)
            .build()
            .expect("http client");
        Self { base, http }
    }

    /// GET `path` → JSON, or `None` when the server is unreachable or answers an error.
    pub fn try_get(&self, path: &str) -> Option<serde_json::Value> {
        let r = self.http.get(format!("{}{path}", self.base)).send().ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().ok()
    }

    /// POST a JSON body to `path` → (status, JSON answer).
    pub fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let url = format!("{}{path}", self.base);
        let r = self
            .http
            .post(&url)
            .json(body)
            .send()
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(serde_json::Value::Null))
    }

    /// GET `path` → body text, or `None` when unreachable or an error status.
    pub fn try_text(&self, path: &str) -> Option<String> {
        let r = self.http.get(format!("{}{path}", self.base)).send().ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.text().ok()
    }

    /// The value of the first `/metrics` sample named `name` whose labels contain every one
    /// of `labels` (as `key="value"`).
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let text = self.try_text("/metrics")?;
        text.lines()
            .filter(|l| l.split(['{', ' ']).next() == Some(name))
            .find(|l| {
                labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    pub fn get(&self, path: &str) -> serde_json::Value {
        let url = format!("{}{path}", self.base);
        let r = self
            .http
            .get(&url)
            .send()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = r.status();
        let body: serde_json::Value = r
            .json()
            .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"));
        assert!(status.is_success(), "GET {url}: {status}: {body}");
        body
    }

    pub fn list(&self, path: &str) -> Vec<serde_json::Value> {
        self.get(path).as_array().cloned().unwrap_or_default()
    }

    pub fn incidents(&self) -> Vec<serde_json::Value> {
        self.list("/api/v1/incidents?limit=1000")
    }

    pub fn events(&self, query: &str) -> Vec<serde_json::Value> {
        self.list(&format!("/api/v1/events?limit=100000&{query}"))
    }
}

/// The kernel map usage `node` last reported in `/api/v1/nodes` (empty when unknown).
pub fn node_maps(nodes: &serde_json::Value, node: &str) -> Vec<serde_json::Value> {
    nodes
        .as_array()
        .and_then(|n| n.iter().find(|n| n["name"] == node))
        .and_then(|n| n["maps"].as_array().cloned())
        .unwrap_or_default()
}

/// The directory after `--report` in a benchmark's arguments, if any.
pub fn report_dir(args: &[String]) -> Result<Option<PathBuf>, String> {
    match args.iter().position(|a| a == "--report") {
        None => Ok(None),
        Some(i) => args
            .get(i + 1)
            .map(|d| Some(PathBuf::from(d)))
            .ok_or_else(|| "--report needs a directory".to_string()),
    }
}

/// The middle value (the upper one of an even count; 0 for none).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Now, in Unix nanoseconds.
pub fn now_unix_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}
