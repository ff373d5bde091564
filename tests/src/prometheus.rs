//! A real Prometheus server (Debian's package) scraping the targets a test names, queried
//! through its HTTP API.

use std::{
    net::{SocketAddr, TcpListener},
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{wait_for, Api};

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub struct Prometheus {
    child: Child,
    pub api: Api,
    log: std::path::PathBuf,
}

impl Prometheus {
    /// Starts Prometheus in `dir`, scraping each (job, address) every second.
    pub fn start(dir: &Path, targets: &[(&str, SocketAddr)]) -> Self {
        let jobs: String = targets
            .iter()
            .map(|(job, addr)| {
                format!("  - job_name: {job}\n    static_configs:\n      - targets: ['{addr}']\n")
            })
            .collect();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n{jobs}"
            ),
        )
        .expect("write prometheus.yml");
        let listen = format!("127.0.0.1:{}", free_port());
        let log = dir.join("prometheus.log");
        let out = std::fs::File::create(&log).expect("prometheus log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address={listen}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log clone"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start prometheus ({e}): run `cargo xtask setup` (Debian package prometheus)")
            });
        let me = Self {
            child,
            api: Api::new(format!("http://{listen}")),
            log,
        };
        wait_for(Duration::from_secs(30), "Prometheus to be ready", || {
            me.api.try_text("/-/ready").map(|_| ())
        });
        me
    }

    /// Runs an instant PromQL query; returns `data.result`.
    pub fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let url = format!("{}/api/v1/query", self.api.base);
        let response: serde_json::Value = reqwest::blocking::Client::new()
            .get(url)
            .query(&[("query", promql)])
            .send()
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("PromQL {promql:?} failed: {e}"));
        assert_eq!(
            response["status"], "success",
            "PromQL {promql:?}: {response:#}"
        );
        response["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Every target's scrape health, as (job, health, last error).
    pub fn targets(&self) -> Vec<(String, String, String)> {
        let v = self.api.get("/api/v1/targets");
        v["data"]["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["labels"]["job"].as_str().unwrap_or("").to_string(),
                    t["health"].as_str().unwrap_or("").to_string(),
                    t["lastError"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- prometheus log ---\n{}", self.log());
        }
    }
}

/// The value of the first sample of `name` with exactly `labels` (e.g. `step="payload"`, or
/// empty for none) in an OpenMetrics text, as an agent's or the control plane's `/metrics`
/// serves it.
pub fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let head = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&head))
        .and_then(|v| v.trim().parse().ok())
}

/// The sum of every labelled sample of `name` in an OpenMetrics text.
pub fn sample_sum(text: &str, name: &str) -> f64 {
    let head = format!("{name}{{");
    text.lines()
        .filter(|l| l.starts_with(&head))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
