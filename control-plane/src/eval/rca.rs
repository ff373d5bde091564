//! Root-cause replay: load recorded cases (a wide CSV of per-service metrics and an injection
//! time) for the domain's graph-free ranking (`vigil_domain::rca`), and score the rankings
//! over a directory of cases.
//!
//! Case layout (the fault lab's and RCAEval's): a directory holding `data.csv`,
//! `simple_data.csv` or `metrics.csv` — a `time` column (Unix seconds; `time_unix_ms` in
//! milliseconds) and `<service>_<metric>` columns — and the injection time in
//! `inject_time.txt` (Unix seconds) or `case.json` (`inject_time`, or `injected_unix_ms`).
//! The true root cause is `root_cause` (or `root_cause_service`, `service`) in `case.json`
//! or `label.json`, else the nearest parent directory named `<service>_<fault>` for a
//! service of the CSV.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::Serialize;
use vigil_domain::rca::{service_of, Recording};

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
    pub recording: Recording,
    pub truth: Option<String>,
}

/// In order of preference: RCAEval's `data.csv` carries every metric, `simple_data.csv` a
/// subset.
const DATA_FILES: &[&str] = &["data.csv", "simple_data.csv", "metrics.csv"];

/// Where a case's truth may be written, and under which keys.
const LABEL_FILES: &[&str] = &["case.json", "label.json"];
const LABEL_KEYS: &[&str] = &["root_cause", "root_cause_service", "service"];

fn json_of(path: &Path) -> Result<Option<serde_json::Value>, CaseError> {
    match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| bad(path, e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CaseError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
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
            .map(|h| h.trim().trim_matches('"'))
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
        let labels = LABEL_FILES
            .iter()
            .map(|f| json_of(&dir.join(f)))
            .collect::<Result<Vec<_>, _>>()?;
        let inject_time = match read(&dir.join("inject_time.txt")) {
            Ok(t) => t
                .trim()
                .parse::<f64>()
                .map_err(|e| bad(&dir.join("inject_time.txt"), e.to_string()))?,
            Err(_) => labels
                .iter()
                .flatten()
                .find_map(|c| {
                    c["inject_time"]
                        .as_f64()
                        .or_else(|| c["injected_unix_ms"].as_f64().map(|ms| ms / 1000.0))
                })
                .ok_or_else(|| {
                    bad(
                        dir,
                        "no inject_time.txt and no inject_time in case.json or label.json",
                    )
                })?,
        };
        let recording = Recording {
            time,
            columns,
            inject_time,
        };
        let services = recording.services();
        let truth = labels
            .iter()
            .flatten()
            .find_map(|c| LABEL_KEYS.iter().find_map(|k| c[*k].as_str()))
            .map(str::to_string)
            .or_else(|| {
                dir.ancestors().find_map(|a| {
                    let name = a.file_name()?.to_str()?;
                    let (svc, _) = name.split_once('_')?;
                    services.contains(&svc).then(|| svc.to_string())
                })
            });
        Ok(Self {
            dir: dir.to_path_buf(),
            recording,
            truth,
        })
    }
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
        let ranked = vigil_domain::rca::rank(&case.recording, Default::default());
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
