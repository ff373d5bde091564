//! One side's view of an edge's requests, read from the control plane's stored samples:
//! shared by the request-level test files.

// Each test file that includes this module uses a part of it.
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vigil_tests::Api;

pub fn unix_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// One side's view of an edge, summed over the intervals that ended after `since`.
#[derive(Debug, Default)]
pub struct EdgeRequests {
    pub requests: u64,
    pub responses: u64,
    pub errors: u64,
    pub unanswered: u64,
    pub statuses: Vec<(String, u64)>,
    pub buckets: Vec<u64>,
    /// Samples read from OpenSSL's plaintext, and all samples.
    pub tls_samples: usize,
    pub samples: usize,
    /// (code, text) of the failing replies the agent sampled.
    pub error_samples: Vec<(String, String)>,
}

impl EdgeRequests {
    pub fn error_ratio(&self) -> f64 {
        self.errors as f64 / self.responses.max(1) as f64
    }

    /// Upper bound of the bucket holding the 99th percentile, in ms.
    pub fn p99_ms(&self) -> f64 {
        let total: u64 = self.buckets.iter().sum();
        let target = (total as f64 * 0.99).ceil() as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= target.max(1) {
                return (1u64 << (i + 1)) as f64 / 1e6;
            }
        }
        0.0
    }

    /// Whether a failing reply with `code` was sampled with a text that `says`.
    pub fn sampled(&self, code: &str, says: impl Fn(&str) -> bool) -> bool {
        self.error_samples.iter().any(|(c, t)| c == code && says(t))
    }

    pub fn status(&self, code: &str) -> u64 {
        self.statuses
            .iter()
            .filter(|(c, _)| c == code)
            .map(|(_, n)| n)
            .sum()
    }
}

/// `workload`'s client-side requests to port `server_port`, since `since`.
pub fn client_edge(api: &Api, workload: &str, server_port: u64, since: i64) -> EdgeRequests {
    view(api, workload, "client", server_port, since)
}

/// One side's (`role`) requests of `workload` on the server port `server_port`.
pub fn view(api: &Api, workload: &str, role: &str, server_port: u64, since: i64) -> EdgeRequests {
    let port_of = if role == "client" { "remote" } else { "local" };
    let mut e = EdgeRequests {
        buckets: vec![0; 32],
        ..EdgeRequests::default()
    };
    let samples = api.list(&format!(
        "/api/v1/samples?kind=request&workload={workload}&limit=100000"
    ));
    for s in samples
        .iter()
        .filter(|s| s["end_unix_ns"].as_i64().unwrap_or(0) > since)
        .map(|s| &s["sample"])
        .filter(|s| s["role"] == role && s[port_of]["port"] == server_port)
    {
        let n = |k: &str| s[k].as_u64().unwrap_or(0);
        e.samples += 1;
        if s["tls"] == true {
            e.tls_samples += 1;
        }
        e.requests += n("requests");
        e.responses += n("responses");
        e.errors += n("errors");
        e.unanswered += n("timeouts") + n("closed_pending");
        for c in s["error_samples"].as_array().into_iter().flatten() {
            e.error_samples.push((
                c["code"].as_str().unwrap_or("").to_string(),
                c["text"].as_str().unwrap_or("").to_string(),
            ));
        }
        for c in s["statuses"].as_array().into_iter().flatten() {
            e.statuses.push((
                c["code"].as_str().unwrap_or("").to_string(),
                c["count"].as_u64().unwrap_or(0),
            ));
        }
        for (i, b) in s["latency"]["log2_buckets"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(slot) = e.buckets.get_mut(i) {
                *slot += b.as_u64().unwrap_or(0);
            }
        }
    }
    e
}

/// Lets `secs` of the fault's intervals arrive, then reads the edge from its start.
pub fn during(secs: u64, read: impl Fn(i64) -> EdgeRequests) -> EdgeRequests {
    let since = unix_ns();
    std::thread::sleep(Duration::from_secs(secs));
    read(since)
}

/// Runs `argv`, checked; its stdout.
pub fn output(argv: &[&str]) -> String {
    let out = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
