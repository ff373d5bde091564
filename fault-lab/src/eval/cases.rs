//! Replayable cases: what the kernel showed around a fault, as a wide CSV (one row per
//! second, one column per entity metric) plus the injection time and the truth, for the
//! root-cause replay command.

use std::{collections::BTreeMap, path::Path};

use serde_json::Value;

use super::{vigil::VigilApi, RunRecord};
use crate::error::{LabError, Result};

/// Seconds of context before the fault.
const BEFORE_MS: u64 = 30_000;

/// Column values from one stored sample.
fn columns(sample: &Value) -> Vec<(String, f64)> {
    let kind = sample["kind"].as_str().unwrap_or("");
    let key = sample["workload_key"].as_str().unwrap_or("?");
    let s = &sample["sample"];
    let n = |f: &str| s[f].as_f64().unwrap_or(0.0);
    match kind {
        "flow" => {
            let peer = format!(
                "{}:{}",
                s["remote"]["ip"].as_str().unwrap_or("?"),
                s["remote"]["port"]
            );
            let base = format!("{key}->{peer}");
            let c = &s["counts"];
            let cn = |f: &str| c[f].as_f64().unwrap_or(0.0);
            let mut v = vec![
                (format!("{base}:connects"), cn("connects")),
                (format!("{base}:failed"), cn("failed")),
                (format!("{base}:retransmits"), cn("retransmits")),
                (
                    format!("{base}:resets"),
                    cn("resets_sent") + cn("resets_received"),
                ),
                (
                    format!("{base}:bytes"),
                    cn("bytes_sent") + cn("bytes_received"),
                ),
            ];
            let samples = cn("srtt_samples");
            v.push((
                format!("{base}:rtt_us"),
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
                    format!("{key}:syscall:{name}:count"),
                    s["latency"]["count"].as_f64().unwrap_or(0.0),
                ),
                (format!("{key}:syscall:{name}:errors"), n("errors")),
            ]
        }
        "dns" => vec![
            (format!("{key}:dns:queries"), n("queries")),
            (
                format!("{key}:dns:failures"),
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
            vec![(format!("{key}:{k}:mean_ns"), mean)]
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
        let second = s["end_unix_ns"].as_u64().unwrap_or(0) / 1_000_000_000 * 1000;
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
    let mut csv = String::from("time_unix_ms");
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
        "teardown_unix_ms": record.teardown_unix_ms,
        "columns": names.len(),
        "rows": rows.len(),
    });
    std::fs::write(dir.join("case.json"), case.to_string())
        .map_err(LabError::io("writing case.json"))
}
