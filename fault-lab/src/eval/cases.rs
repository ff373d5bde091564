//! Replayable cases: what the kernel showed around a fault, as a wide CSV (one row per
//! second: a `time` column in Unix seconds and `<service>_<metric>` columns) plus the
//! injection time and the truth, for the root-cause replay command (`vigil-eval rca`).
//!
//! A connection's metrics are filed under the service it reaches (`redis_rtt-us-from-app1`):
//! a slow or failing dependency shows on the connections into it.

use std::{collections::BTreeMap, path::Path};

use serde_json::Value;

use super::{
    vigil::{service_of, VigilApi},
    RunRecord,
};
use crate::error::{LabError, Result};
use crate::testbed::SERVICES;

/// Seconds of context before the fault.
const BEFORE_MS: u64 = 30_000;

/// The lab service at `ip`, or `ext-<ip>`.
fn service_of_ip(ip: &str) -> String {
    SERVICES
        .iter()
        .find(|(_, h)| crate::testbed::net::ip(*h) == ip)
        .map_or_else(|| format!("ext-{ip}"), |(s, _)| (*s).to_string())
}

/// Column values from one stored sample.
fn columns(sample: &Value) -> Vec<(String, f64)> {
    let kind = sample["kind"].as_str().unwrap_or("");
    let Some(key) = sample["workload_key"]
        .as_str()
        .and_then(service_of)
        .filter(|k| SERVICES.iter().any(|(s, _)| s == k))
    else {
        return Vec::new();
    };
    let s = &sample["sample"];
    let n = |f: &str| s[f].as_f64().unwrap_or(0.0);
    match kind {
        "flow" => {
            if s["role"] != "client" {
                // The client's view carries the same connection, filed under the server.
                return Vec::new();
            }
            let callee = service_of_ip(s["remote"]["ip"].as_str().unwrap_or("?"));
            let col = |m: &str| format!("{callee}_{m}-from-{key}");
            let c = &s["counts"];
            let cn = |f: &str| c[f].as_f64().unwrap_or(0.0);
            let mut v = vec![
                (col("connects"), cn("connects")),
                (col("failed"), cn("failed")),
                (col("retransmits"), cn("retransmits")),
                (col("resets"), cn("resets_sent") + cn("resets_received")),
                (col("bytes"), cn("bytes_sent") + cn("bytes_received")),
            ];
            let samples = cn("srtt_samples");
            v.push((
                col("rtt-us"),
                if samples > 0.0 {
                    cn("srtt_sum_us") / samples
                } else {
                    0.0
                },
            ));
            v
        }
        "syscall" => {
            let name = s["name"].as_str().unwrap_or("?");
            vec![
                (
                    format!("{key}_syscall-{name}-count"),
                    s["latency"]["count"].as_f64().unwrap_or(0.0),
                ),
                (format!("{key}_syscall-{name}-errors"), n("errors")),
            ]
        }
        "dns" => vec![
            (format!("{key}_dns-queries"), n("queries")),
            (
                format!("{key}_dns-failures"),
                n("nxdomain") + n("servfail") + n("other_errors") + n("timeouts"),
            ),
        ],
        "latency" => {
            let k = s["kind"].as_str().unwrap_or("?");
            let h = &s["latency"];
            let count = h["count"].as_f64().unwrap_or(0.0);
            let mean = if count > 0.0 {
                h["sum_ns"].as_f64().unwrap_or(0.0) / count
            } else {
                0.0
            };
            vec![(format!("{key}_{k}-mean-ns"), mean)]
        }
        _ => Vec::new(),
    }
}

/// Writes `<out>/cases/<scenario>/{metrics.csv,case.json}`.
pub fn write(vigil: &VigilApi, out: &Path, record: &RunRecord) -> Result<()> {
    let since_ns = (record.injected_unix_ms.saturating_sub(BEFORE_MS)) as i64 * 1_000_000;
    let samples = vigil
        .get(&format!(
            "/api/v1/samples?since_unix_ns={since_ns}&limit=100000"
        ))
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    // Only the lab's own workloads: the rest of the host is noise for the case.
    let mut rows: BTreeMap<u64, BTreeMap<String, f64>> = BTreeMap::new();
    let mut names = std::collections::BTreeSet::new();
    for s in samples.iter().filter(|s| {
        s["workload_key"]
            .as_str()
            .is_some_and(|k| k.contains(crate::names::PREFIX))
    }) {
        let second = s["end_unix_ns"].as_u64().unwrap_or(0) / 1_000_000_000;
        for (col, v) in columns(s) {
            *rows
                .entry(second)
                .or_default()
                .entry(col.clone())
                .or_default() += v;
            names.insert(col);
        }
    }
    let dir = out.join("cases").join(&record.scenario);
    std::fs::create_dir_all(&dir).map_err(LabError::io(format!("creating {}", dir.display())))?;
    let mut csv = String::from("time");
    for n in &names {
        csv.push(',');
        csv.push_str(&n.replace(',', ";"));
    }
    csv.push('\n');
    for (t, cols) in &rows {
        csv.push_str(&t.to_string());
        for n in &names {
            csv.push(',');
            csv.push_str(&cols.get(n).map_or(String::from("0"), |v| format!("{v}")));
        }
        csv.push('\n');
    }
    std::fs::write(dir.join("metrics.csv"), csv).map_err(LabError::io("writing metrics.csv"))?;
    let case = serde_json::json!({
        "scenario": record.scenario,
        "class": record.class,
        "target": record.target,
        "injected_unix_ms": record.injected_unix_ms,
        "inject_time": record.injected_unix_ms / 1000,
        "root_cause": record.target,
        "teardown_unix_ms": record.teardown_unix_ms,
        "columns": names.len(),
        "rows": rows.len(),
    });
    std::fs::write(dir.join("case.json"), case.to_string())
        .map_err(LabError::io("writing case.json"))?;
    std::fs::write(
        dir.join("inject_time.txt"),
        format!("{}\n", record.injected_unix_ms / 1000),
    )
    .map_err(LabError::io("writing inject_time.txt"))
}
