//! Public root-cause datasets, converted from a fetched snapshot (a bare git directory) into
//! the case layout `vigil-eval rca` reads: `<service>_<fault>/<run>/data.csv`,
//! `inject_time.txt` and `case.json`. The data stays under `target/datasets/` (it is not
//! ours to commit); the reports are committed.
//!
//! Both sources record a case as two separate runs, a normal one and one during the fault,
//! rather than one recording with an injection time. The converter lays them end to end on
//! one time axis, at the fault run's own step: the normal rows first, then the fault's, the
//! injection at the first fault row. Columns are matched by name; one missing from a run is
//! a gap.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _};

/// The datasets this converts, by the name `cargo xtask eval rca --dataset` takes.
pub const DATASETS: &[(&str, &str)] = &[
    (
        "rcd-sockshop",
        "azamikram/rcd: Sock Shop, 13 containers, CPU and memory hogs on 5 services, 50 cases",
    ),
    (
        "udevops-sockshop",
        "uDEVOPS2020/Multivariate-AD-and-RCA-of-Energy-Issues-in-Microservice-based-Systems: Sock Shop, 13 containers, stress-ng on front-end or orders, 240 cases",
    ),
    (
        "udevops-trainticket",
        "the same repository's Train Ticket, 69 containers, stress-ng on ts-order-service or ts-travel-service, 240 cases",
    ),
];

/// Where `fetch` leaves each source's snapshot, relative to the workspace.
pub fn default_snapshot(dataset: &str) -> PathBuf {
    let repo = if dataset.starts_with("rcd") {
        "azamikram+rcd"
    } else if dataset == CLOUD_MONITORING {
        "microsoft+cloud-monitoring-dataset"
    } else {
        "uDEVOPS2020+Multivariate-AD-and-RCA-of-Energy-Issues-in-Microservice-based-Systems"
    };
    PathBuf::from("../.mirror").join(repo).join("repo")
}

/// The GitHub repository a snapshot directory is named after (`owner+name/repo`).
fn upstream(git_dir: &Path) -> String {
    git_dir
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .find_map(|c| c.split_once('+').map(|(o, n)| format!("{o}/{n}")))
        .unwrap_or_else(|| "<owner>/<repository>".into())
}

struct Snapshot {
    git_dir: PathBuf,
}

impl Snapshot {
    fn open(git_dir: &Path) -> anyhow::Result<Self> {
        let s = Self {
            git_dir: git_dir.to_path_buf(),
        };
        s.git(&["rev-parse", "HEAD"]).with_context(|| {
            format!(
                "{} is not a git directory holding the dataset: clone it first (`git clone --bare https://github.com/{}`) and pass that directory with --from",
                git_dir.display(),
                upstream(git_dir)
            )
        })?;
        Ok(s)
    }

    fn git(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(&self.git_dir)
            .args(args)
            .output()
            .context("running git")?;
        if !out.status.success() {
            bail!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8(out.stdout).context("git printed non-UTF-8")
    }

    fn files(&self, under: &str) -> anyhow::Result<Vec<String>> {
        Ok(self
            .git(&["ls-tree", "-r", "--name-only", "HEAD", under])?
            .lines()
            .map(str::to_string)
            .collect())
    }

    fn table(&self, path: &str) -> anyhow::Result<Table> {
        Table::parse(&self.git(&["show", &format!("HEAD:{path}")])?)
            .with_context(|| format!("reading {path}"))
    }
}

/// A CSV with a `time` column.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    time: usize,
}

impl Table {
    fn parse(text: &str) -> anyhow::Result<Self> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<String> = lines
            .next()
            .context("empty file")?
            .split(',')
            .map(|h| h.trim().trim_matches('"').to_string())
            .collect();
        let time = header
            .iter()
            .position(|h| h == "time")
            .context("no `time` column")?;
        let rows: Vec<Vec<String>> = lines
            .map(|l| l.split(',').map(|c| c.trim().to_string()).collect())
            .collect();
        if let Some((n, r)) = rows
            .iter()
            .enumerate()
            .find(|(_, r)| r.len() != header.len())
        {
            bail!(
                "row {}: {} cells, header has {}",
                n + 2,
                r.len(),
                header.len()
            );
        }
        if rows.len() < 4 {
            bail!("{} rows: too few to judge", rows.len());
        }
        Ok(Self { header, rows, time })
    }

    fn times(&self) -> Vec<f64> {
        self.rows
            .iter()
            .map(|r| r[self.time].parse::<f64>().unwrap_or(f64::NAN))
            .collect()
    }

    /// The median step between rows.
    fn step(&self) -> f64 {
        let t = self.times();
        let mut d: Vec<f64> = t
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|d| d.is_finite() && *d > 0.0)
            .collect();
        d.sort_by(f64::total_cmp);
        d.get(d.len() / 2).copied().unwrap_or(1.0)
    }
}

/// `normal` then `fault` on one axis at the fault run's step; returns the CSV and the
/// injection time.
fn end_to_end(normal: &Table, fault: &Table) -> (String, f64) {
    let columns: BTreeSet<&str> = normal
        .header
        .iter()
        .chain(&fault.header)
        .map(String::as_str)
        .filter(|h| *h != "time")
        .collect();
    let step = fault.step();
    let mut csv = String::from("time");
    for c in &columns {
        csv.push(',');
        csv.push_str(c);
    }
    csv.push('\n');
    let mut t = 0.0;
    for table in [normal, fault] {
        let at: BTreeMap<&str, usize> = table
            .header
            .iter()
            .enumerate()
            .map(|(i, h)| (h.as_str(), i))
            .collect();
        for row in &table.rows {
            csv.push_str(&format!("{t}"));
            for c in &columns {
                csv.push(',');
                if let Some(i) = at.get(c) {
                    csv.push_str(&row[*i]);
                }
            }
            csv.push('\n');
            t += step;
        }
    }
    let inject = normal.rows.len() as f64 * step;
    (csv, inject)
}

fn write_case(
    out: &Path,
    case: &str,
    (csv, inject): (String, f64),
    root_cause: &str,
    source: &str,
) -> anyhow::Result<()> {
    let dir = out.join(case);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("data.csv"), csv)?;
    std::fs::write(dir.join("inject_time.txt"), format!("{inject}\n"))?;
    std::fs::write(
        dir.join("case.json"),
        serde_json::json!({"root_cause": root_cause, "inject_time": inject, "source": source})
            .to_string(),
    )?;
    Ok(())
}

/// microsoft/cloud-monitoring-dataset (MIT): 60 series of real service metrics (crash rates,
/// request rates, dependency latency, ingress), a 0/1 label on every row.
pub const CLOUD_MONITORING: &str = "cloud-monitoring";

/// Copies the labelled series of `cloud-monitoring` out of its snapshot into `out` (emptied
/// first), as they are; returns the number of series.
pub fn export_series(git_dir: &Path, out: &Path) -> anyhow::Result<usize> {
    let snap = Snapshot::open(git_dir)?;
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("emptying {}", out.display()))?;
    }
    let mut n = 0;
    for path in snap.files("data")? {
        if !path.ends_with(".csv") {
            continue;
        }
        let target = out.join(path.trim_start_matches("data/"));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, snap.git(&["show", &format!("HEAD:{path}")])?)
            .with_context(|| format!("writing {}", target.display()))?;
        n += 1;
    }
    if n == 0 {
        bail!(
            "no data/*.csv in {}: is it microsoft/cloud-monitoring-dataset?",
            git_dir.display()
        );
    }
    Ok(n)
}

/// Converts `dataset` from the snapshot at `git_dir` into `out` (emptied first); returns the
/// number of cases.
pub fn convert(dataset: &str, git_dir: &Path, out: &Path) -> anyhow::Result<usize> {
    let snap = Snapshot::open(git_dir)?;
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("emptying {}", out.display()))?;
    }
    let mut n = 0;
    match dataset {
        "rcd-sockshop" => {
            // sock-shop-data/<service>-<fault>/<run>/{normal,anomalous}.csv
            for path in snap.files("sock-shop-data")? {
                let Some(dir) = path.strip_suffix("/anomalous.csv") else {
                    continue;
                };
                let parts: Vec<&str> = dir.split('/').collect();
                let [_, folder, run] = parts[..] else {
                    continue;
                };
                let Some((service, fault)) = folder.rsplit_once('-') else {
                    continue;
                };
                let normal = snap.table(&format!("{dir}/normal.csv"))?;
                let anomalous = snap.table(&path)?;
                write_case(
                    out,
                    &format!("{service}_{fault}/{run}"),
                    end_to_end(&normal, &anomalous),
                    service,
                    &path,
                )?;
                n += 1;
            }
        }
        "udevops-sockshop" | "udevops-trainticket" => {
            let system = dataset.trim_start_matches("udevops-");
            let root = format!("vuDevOps/data_collection/{system}-data");
            // <root>/scenario_X/anomalous/<service>/<users>/repetition_K/metrics.csv, against
            // <root>/scenario_X/baseline/<users>/repetition_K/metrics.csv.
            for path in snap.files(&root)? {
                let Some(rest) = path
                    .strip_prefix(&format!("{root}/"))
                    .and_then(|p| p.strip_suffix("/metrics.csv"))
                else {
                    continue;
                };
                let parts: Vec<&str> = rest.split('/').collect();
                let [scenario, "anomalous", service, users, rep] = parts[..] else {
                    continue;
                };
                let normal = snap.table(&format!(
                    "{root}/{scenario}/baseline/{users}/{rep}/metrics.csv"
                ))?;
                let anomalous = snap.table(&path)?;
                let run = rep.trim_start_matches("repetition_");
                write_case(
                    out,
                    &format!("{service}_stress/{scenario}-{users}users-{run}"),
                    end_to_end(&normal, &anomalous),
                    service,
                    &path,
                )?;
                n += 1;
            }
        }
        other => bail!(
            "unknown dataset {other:?}; known: {}",
            DATASETS
                .iter()
                .map(|(d, _)| *d)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
    if n == 0 {
        bail!(
            "no cases found in {} for {dataset}: is it the right repository's snapshot?",
            git_dir.display()
        );
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_runs_are_laid_end_to_end_with_the_injection_at_the_first_fault_row() {
        let normal =
            Table::parse("time,a_cpu,b_cpu\n100,1,2\n101,1,2\n102,1,2\n103,1,2\n").expect("normal");
        // Recorded earlier than the normal run, at 5 s steps, with a column the other lacks.
        let fault =
            Table::parse("b_cpu,time,c_mem\n9,10,7\n9,15,7\n9,20,7\n9,25,7\n").expect("fault");
        let (csv, inject) = end_to_end(&normal, &fault);
        assert_eq!(inject, 20.0);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "time,a_cpu,b_cpu,c_mem");
        assert_eq!(lines[1], "0,1,2,");
        assert_eq!(lines[5], "20,,9,7");
        assert_eq!(lines.len(), 9);
    }

    #[test]
    fn a_ragged_file_is_refused_with_its_row() {
        let e = Table::parse("time,a\n1,2\n3\n4,5\n6,7\n")
            .err()
            .expect("ragged");
        assert!(format!("{e:#}").contains("row 3"), "{e:#}");
    }

    /// A git repository holding `files`, committed, as a fetched snapshot would be.
    fn snapshot(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tmp");
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        let git = |args: &[&str]| {
            let ok = Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(["-c", "user.name=t", "-c", "user.email=t@t"])
                .args(args)
                .status()
                .expect("git")
                .success();
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q"]);
        git(&["add", "."]);
        git(&["commit", "-qm", "data"]);
        dir
    }

    #[test]
    fn an_rcd_snapshot_becomes_cases_with_their_truth_and_injection_time() {
        let normal = "time,carts_cpu,user_cpu\n1,1,2\n2,1,2\n3,1,2\n4,1,2\n5,1,2\n";
        let fault = "time,carts_cpu,user_cpu\n90,99,2\n91,99,2\n92,99,2\n93,99,2\n";
        let repo = snapshot(&[
            ("sock-shop-data/carts-cpu/1/normal.csv", normal),
            ("sock-shop-data/carts-cpu/1/anomalous.csv", fault),
            ("README.md", "not data"),
        ]);
        let out = tempfile::tempdir().expect("out");
        let cases = out.path().join("rcd");
        let n = convert("rcd-sockshop", &repo.path().join(".git"), &cases).expect("convert");
        assert_eq!(n, 1);
        let case = cases.join("carts_cpu/1");
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(case.join("case.json")).expect("case.json"),
        )
        .expect("json");
        assert_eq!(json["root_cause"], "carts");
        assert_eq!(json["inject_time"], 5.0);
        let csv = std::fs::read_to_string(case.join("data.csv")).expect("data.csv");
        assert_eq!(csv.lines().count(), 10, "{csv}");
        assert_eq!(csv.lines().nth(6), Some("5,99,2"), "{csv}");
        // Not a snapshot: the error says how to get one.
        let e = convert("rcd-sockshop", out.path(), &cases).expect_err("no git dir");
        assert!(format!("{e:#}").contains("git clone --bare"), "{e:#}");
    }

    #[test]
    fn labelled_series_are_exported_as_they_are() {
        let series = "TimeStamp,Value,Label\n\"2018-01-01T00:00:00Z\",1,0\n";
        let repo = snapshot(&[("data/crash-rate/app-01.csv", series), ("LICENSE", "MIT")]);
        let out = tempfile::tempdir().expect("out");
        let n = export_series(&repo.path().join(".git"), out.path()).expect("export");
        assert_eq!(n, 1);
        let copied =
            std::fs::read_to_string(out.path().join("crash-rate/app-01.csv")).expect("copied");
        assert_eq!(copied, series);
    }
}
