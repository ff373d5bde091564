//! Root-cause replay: rank the services of a recorded case (a wide CSV of per-service
//! metrics and an injection time) and score the rankings over a directory of cases.
//!
//! Case layout (the fault lab's and RCAEval's): a directory holding `data.csv`,
//! `metrics.csv` or `simple_data.csv` — a `time` column (Unix seconds; `time_unix_ms` in
//! milliseconds) and `<service>_<metric>` columns — and the injection time in
//! `inject_time.txt` (Unix seconds) or `case.json` (`inject_time`, or `injected_unix_ms`).
//! The true root cause is `case.json`'s `root_cause`, else the nearest parent directory
//! named `<service>_<fault>` for a service of the CSV.
//!
//! Ranking uses the same robust distance as tier 1: each metric after the injection against
//! its own median and robust σ before it; a service scores its most deviant metric.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::Serialize;

use crate::domain::detection::robust::median_sigma;

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("{path}: {reason}")]
    Bad { path: PathBuf, reason: String },
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn bad(path: &Path, reason: impl Into<String>) -> CaseError {
    CaseError::Bad {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read(path: &Path) -> Result<String, CaseError> {
    std::fs::read_to_string(path).map_err(|source| CaseError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// One recorded case.
#[derive(Debug, Clone)]
pub struct Case {
    pub dir: PathBuf,
    /// Unix seconds per row.
    pub time: Vec<f64>,
    /// Column name → values per row.
    pub columns: BTreeMap<String, Vec<f64>>,
    pub inject_time: f64,
    pub truth: Option<String>,
}

const DATA_FILES: &[&str] = &["data.csv", "metrics.csv", "simple_data.csv"];

/// The service a `<service>_<metric>` column belongs to.
pub fn service_of(column: &str) -> Option<&str> {
    column
        .split_once('_')
        .map(|(s, _)| s)
        .filter(|s| !s.is_empty())
}

impl Case {
    pub fn load(dir: &Path) -> Result<Self, CaseError> {
        let data = DATA_FILES
            .iter()
            .map(|f| dir.join(f))
            .find(|p| p.is_file())
            .ok_or_else(|| bad(dir, format!("no {} here", DATA_FILES.join(" or "))))?;
        let text = read(&data)?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .ok_or_else(|| bad(&data, "empty file"))?
            .split(',')
            .map(str::trim)
            .collect();
        let (time_col, scale) = header
            .iter()
            .enumerate()
            .find_map(|(i, h)| match *h {
                "time" | "timestamp" => Some((i, 1.0)),
                "time_unix_ms" => Some((i, 1e-3)),
                _ => None,
            })
            .ok_or_else(|| bad(&data, "no `time` column"))?;
        let mut time = Vec::new();
        let mut columns: Vec<Vec<f64>> = vec![Vec::new(); header.len()];
        for (n, line) in lines.enumerate() {
            let cells: Vec<&str> = line.split(',').collect();
            if cells.len() != header.len() {
                return Err(bad(
                    &data,
                    format!(
                        "row {}: {} cells, header has {}",
                        n + 2,
                        cells.len(),
                        header.len()
                    ),
                ));
            }
            for (i, c) in cells.iter().enumerate() {
                // Empty or non-numeric cells are gaps.
                columns[i].push(c.trim().parse::<f64>().unwrap_or(f64::NAN));
            }
            time.push(columns[time_col].last().copied().unwrap_or(f64::NAN) * scale);
        }
        let columns = header
            .iter()
            .zip(columns)
            .enumerate()
            .filter(|(i, (h, _))| *i != time_col && service_of(h).is_some())
            .map(|(_, (h, v))| (h.to_string(), v))
            .collect::<BTreeMap<_, _>>();
        let case_json: Option<serde_json::Value> = match read(&dir.join("case.json")) {
            Ok(t) => Some(
                serde_json::from_str(&t).map_err(|e| bad(&dir.join("case.json"), e.to_string()))?,
            ),
            Err(_) => None,
        };
        let inject_time = match read(&dir.join("inject_time.txt")) {
            Ok(t) => t
                .trim()
                .parse::<f64>()
                .map_err(|e| bad(&dir.join("inject_time.txt"), e.to_string()))?,
            Err(_) => case_json
                .as_ref()
                .and_then(|c| {
                    c["inject_time"]
                        .as_f64()
                        .or_else(|| c["injected_unix_ms"].as_f64().map(|ms| ms / 1000.0))
                })
                .ok_or_else(|| bad(dir, "no inject_time.txt and no injection time in case.json"))?,
        };
        let services: Vec<&str> = columns.keys().filter_map(|c| service_of(c)).collect();
        let truth = case_json
            .as_ref()
            .and_then(|c| c["root_cause"].as_str().map(str::to_string))
            .or_else(|| {
                dir.ancestors().find_map(|a| {
                    let name = a.file_name()?.to_str()?;
                    let (svc, _) = name.split_once('_')?;
                    services.contains(&svc).then(|| svc.to_string())
                })
            });
        Ok(Self {
            dir: dir.to_path_buf(),
            time,
            columns,
            inject_time,
            truth,
        })
    }

    /// Services ranked by their most deviant metric after the injection, with that metric.
    pub fn rank(&self) -> Vec<ServiceScore> {
        let mut best: BTreeMap<&str, ServiceScore> = BTreeMap::new();
        for (name, values) in &self.columns {
            let Some(service) = service_of(name) else {
                continue;
            };
            let before: Vec<f64> = self
                .time
                .iter()
                .zip(values)
                .filter(|(t, v)| **t < self.inject_time && v.is_finite())
                .map(|(_, v)| *v)
                .collect();
            if before.len() < 3 {
                continue;
            }
            let (median, sigma) = median_sigma(&before);
            // A flat metric moves by at least 1 % of its level (or one unit near 0) to count.
            let sigma = sigma.max(0.01 * median.abs()).max(1e-3);
            let z = self
                .time
                .iter()
                .zip(values)
                .filter(|(t, v)| **t >= self.inject_time && v.is_finite())
                .map(|(_, v)| (v - median).abs() / sigma)
                .fold(0.0, f64::max);
            let slot = best.entry(service).or_insert_with(|| ServiceScore {
                service: service.to_string(),
                score: 0.0,
                metric: name.clone(),
            });
            if z > slot.score {
                slot.score = z;
                slot.metric = name.clone();
            }
        }
        let mut ranked: Vec<ServiceScore> = best.into_values().collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.service.cmp(&b.service)));
        ranked
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceScore {
    pub service: String,
    pub score: f64,
    /// The metric that moved most.
    pub metric: String,
}

/// Every case directory under `root` (depth-first, sorted).
pub fn find_cases(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if DATA_FILES.iter().any(|f| dir.join(f).is_file()) {
            out.push(dir.clone());
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            stack.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
    }
    out.sort();
    out
}

/// AC@k for k = 1..=5 and Avg@5 over the ranks of the truth (None: not ranked).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accuracy {
    pub cases: usize,
    pub ac: [f64; 5],
    pub avg5: f64,
}

pub fn accuracy(ranks: &[Option<usize>]) -> Accuracy {
    let n = ranks.len().max(1) as f64;
    let mut ac = [0.0; 5];
    for (k, slot) in ac.iter_mut().enumerate() {
        *slot = ranks
            .iter()
            .filter(|r| r.is_some_and(|r| r <= k + 1))
            .count() as f64
            / n;
    }
    Accuracy {
        cases: ranks.len(),
        avg5: ac.iter().sum::<f64>() / 5.0,
        ac,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_case(dir: &Path, truth_dir: &str) -> PathBuf {
        let case = dir.join(truth_dir).join("1");
        std::fs::create_dir_all(&case).expect("mkdir");
        let mut csv = String::from("time,front_latency,cart_latency,cart_cpu,db_latency,db_cpu\n");
        for t in 0..120u32 {
            let j = f64::from(t * 7919 % 13) / 13.0;
            let after = t >= 80;
            // db's CPU is the cause; cart and front slow down less, later.
            let db_cpu = if after { 90.0 } else { 20.0 + j };
            let db_lat = if after { 30.0 } else { 5.0 + j };
            let cart = if t >= 82 { 12.0 } else { 8.0 + j };
            csv.push_str(&format!(
                "{},{},{cart},{},{db_lat},{db_cpu}\n",
                1_700_000_000 + t,
                10.0 + j + if t >= 83 { 3.0 } else { 0.0 },
                30.0 + j,
            ));
        }
        std::fs::write(case.join("data.csv"), csv).expect("csv");
        std::fs::write(case.join("inject_time.txt"), "1700000080\n").expect("inject");
        case
    }

    #[test]
    fn ranks_the_injected_service_first_and_reads_the_truth_from_the_path() {
        let dir = tempfile::tempdir().expect("tmp");
        write_case(dir.path(), "db_cpu");
        let cases = find_cases(dir.path());
        assert_eq!(cases.len(), 1);
        let case = Case::load(&cases[0]).expect("load");
        assert_eq!(case.truth.as_deref(), Some("db"));
        let ranked = case.rank();
        assert_eq!(ranked[0].service, "db", "{ranked:?}");
        assert_eq!(ranked.len(), 3);
    }

    #[test]
    fn accuracy_at_k() {
        let a = accuracy(&[Some(1), Some(2), None, Some(4)]);
        assert_eq!(a.ac, [0.25, 0.5, 0.5, 0.75, 0.75]);
        assert!((a.avg5 - 0.55).abs() < 1e-9);
    }

    #[test]
    fn malformed_cases_are_named() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("data.csv"), "time,a_x\n1,2,3\n").expect("csv");
        let e = Case::load(dir.path()).expect_err("ragged row");
        assert!(e.to_string().contains("row 2"), "{e}");
        std::fs::write(dir.path().join("data.csv"), "time,a_x\n1,2\n").expect("csv");
        let e = Case::load(dir.path()).expect_err("no injection time");
        assert!(e.to_string().contains("inject_time"), "{e}");
    }
}
