//! `vigil-eval nab --data <NAB dir>`: runs Vigil's univariate detector over every NAB series
//! and scores it with NAB's rules (see `control_plane::eval::nab`), beside published scores.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use control_plane::{
    domain::detection::{
        conformal::{self, ConformalConfig},
        likelihood::LikelihoodConfig,
        robust::RobustConfig,
        univariate::{self, UnivariateConfig},
    },
    eval::{
        nab::{sweep, Series},
        rca::{accuracy, find_cases, Case},
    },
};
use vigil_domain::{
    rca::{self, RankConfig},
    scoring::{CombineConfig, EvidenceConfig},
};

#[derive(Debug, Parser)]
#[command(about = "Evaluate Vigil's detectors on public labelled data")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The Numenta Anomaly Benchmark, or any corpus of series labelled point by point scored
    /// the same way (`--layout per-point`).
    Nab {
        /// NAB checkout with data/ and labels/combined_windows.json; with `--layout
        /// per-point`, a directory of CSVs with a timestamp, a value and a 0/1 label column.
        #[arg(long, default_value = "../shared/datasets/nab")]
        data: PathBuf,
        /// `nab`, or `per-point`: NAB's windows are built from the labelled points by NAB's
        /// own recipe (10 % of the series' length shared among its anomalies, centred on
        /// each).
        #[arg(long, default_value = "nab")]
        layout: String,
        /// A title for the report.
        #[arg(long, default_value = "NAB")]
        title: String,
        /// Also write the report (Markdown) here.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = RobustConfig::default().long)]
        long: usize,
        #[arg(long, default_value_t = RobustConfig::default().short)]
        short: usize,
        #[arg(long, default_value_t = RobustConfig::default().z_half)]
        z_half: f64,
        /// Score steps between values too.
        #[arg(long, default_value_t = RobustConfig::default().steps, action = clap::ArgAction::Set)]
        steps: bool,
        /// Alert on the anomaly likelihood of the raw scores instead of the raw scores.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        likelihood: bool,
        /// Quiet period after an alert, as a share of the series' length.
        #[arg(long, default_value_t = 0.02)]
        refractory: f64,
        /// robust, knn, or both (the larger score).
        #[arg(long, default_value = "both")]
        detector: String,
        #[arg(long, default_value_t = ConformalConfig::default().dim)]
        dim: usize,
        #[arg(long, default_value_t = ConformalConfig::default().k)]
        k: usize,
        #[arg(long, default_value_t = ConformalConfig::default().train)]
        train: usize,
    },
    /// Root-cause replay: rank the services of recorded cases and score AC@1, AC@3, Avg@5,
    /// for Vigil and for the robust z-score baseline.
    Rca {
        /// A case directory, or a directory of them (searched recursively).
        #[arg(long)]
        cases: PathBuf,
        /// Also write the report (Markdown) here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print every case's full ranking as JSON (one object per line) instead of the
        /// report.
        #[arg(long)]
        json: bool,
        /// Which cases to score: `all`, or the half a case's path hashes to, `dev` (to develop
        /// on) or `held-out` (to report on).
        #[arg(long, default_value = "all")]
        split: Split,
        /// A title for the report (default: the cases' directory).
        #[arg(long)]
        title: Option<String>,
        /// Points in the rolling median a metric's move is read from.
        #[arg(long, default_value_t = EvidenceConfig::default().sustain)]
        sustain: usize,
        /// The most evidence one metric can give (soft cap).
        #[arg(long, default_value_t = EvidenceConfig::default().max_evidence)]
        max_evidence: f64,
        /// Kinds of evidence a service counts.
        #[arg(long, default_value_t = CombineConfig::default().top)]
        top: usize,
        /// Weight of each further kind relative to the one before.
        #[arg(long, default_value_t = CombineConfig::default().decay)]
        decay: f64,
        /// Score the service that changed first gains.
        #[arg(long, default_value_t = RankConfig::default().onset_weight)]
        onset_weight: f64,
    },
}

/// `2014-04-10 07:15:00.000000` and `2014-04-10 07:15:00` compare as the same instant.
fn ts(s: &str) -> &str {
    s.get(..19).unwrap_or(s)
}

fn load(dir: &Path) -> anyhow::Result<Vec<(Series, Vec<f64>)>> {
    let labels_path = dir.join("labels/combined_windows.json");
    let labels: BTreeMap<String, Vec<[String; 2]>> = serde_json::from_str(
        &std::fs::read_to_string(&labels_path)
            .with_context(|| format!("reading {}", labels_path.display()))?,
    )
    .with_context(|| format!("parsing {}", labels_path.display()))?;
    let mut corpus = Vec::new();
    for (file, windows) in &labels {
        let path = dir.join("data").join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut stamps = Vec::new();
        let mut values = Vec::new();
        for (n, line) in text.lines().enumerate().skip(1) {
            let (t, v) = line.split_once(',').with_context(|| {
                format!("{}:{}: expected timestamp,value", path.display(), n + 1)
            })?;
            stamps.push(ts(t).to_string());
            values.push(
                v.trim()
                    .parse::<f64>()
                    .with_context(|| format!("{}:{}: value {v:?}", path.display(), n + 1))?,
            );
        }
        let rows = values.len();
        let mut ranges = Vec::new();
        for [a, b] in windows {
            let start = stamps.iter().position(|t| t.as_str() >= ts(a));
            let end = stamps.iter().rposition(|t| t.as_str() <= ts(b));
            match (start, end) {
                (Some(s), Some(e)) if s <= e => ranges.push((s, e)),
                _ => bail!("{file}: window {a}..{b} matches no rows"),
            }
        }
        corpus.push((
            Series {
                name: file.clone(),
                rows,
                windows: ranges,
            },
            values,
        ));
    }
    Ok(corpus)
}

/// Every CSV under `dir` with a value and a 0/1 label per row (`TimeStamp,Value,Label`,
/// `timestamp,value,is_anomaly`, in any order and quoting). Rows without a value repeat the
/// last one, so positions stay those of the labels. A series' labelled runs become NAB
/// windows by NAB's recipe: 10 % of the series' length shared among its runs, each window
/// centred on its run and never shorter than it, overlapping ones merged.
fn load_per_point(dir: &Path) -> anyhow::Result<Vec<(Series, Vec<f64>)>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "csv") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut corpus = Vec::new();
    for path in &files {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap_or_default()
            .split(',')
            .map(|h| h.trim().trim_matches('"').to_ascii_lowercase())
            .collect();
        let col = |names: &[&str]| header.iter().position(|h| names.contains(&h.as_str()));
        let (Some(v), Some(l)) = (col(&["value"]), col(&["label", "is_anomaly"])) else {
            bail!(
                "{}: needs a `value` and a `label` (or `is_anomaly`) column, has {header:?}",
                path.display()
            );
        };
        let mut values = Vec::new();
        let mut labels = Vec::new();
        let mut last = None;
        for (n, line) in lines.enumerate() {
            let cells: Vec<&str> = line
                .split(',')
                .map(|c| c.trim().trim_matches('"'))
                .collect();
            if cells.len() != header.len() {
                bail!(
                    "{}:{}: {} cells, header has {}",
                    path.display(),
                    n + 2,
                    cells.len(),
                    header.len()
                );
            }
            let value = match cells[v].parse::<f64>() {
                Ok(x) if x.is_finite() => Some(x),
                _ => last,
            };
            let Some(value) = value else { continue };
            last = Some(value);
            values.push(value);
            labels.push(cells[l] == "1" || cells[l] == "1.0");
        }
        let rows = values.len();
        let mut runs = Vec::new();
        let mut start = None;
        for (i, a) in labels.iter().chain(std::iter::once(&false)).enumerate() {
            match (a, start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    runs.push((s, i - 1));
                    start = None;
                }
                _ => {}
            }
        }
        let mut windows: Vec<(usize, usize)> = Vec::new();
        if !runs.is_empty() {
            let length = (rows as f64 * 0.10 / runs.len() as f64) as usize;
            for (s, e) in runs {
                let mid = (s + e) / 2;
                let a = mid.saturating_sub(length / 2).min(s);
                let b = (mid + length / 2).max(e).min(rows.saturating_sub(1));
                match windows.last_mut() {
                    Some(w) if a <= w.1 => w.1 = w.1.max(b),
                    _ => windows.push((a, b)),
                }
            }
        }
        let name = path.strip_prefix(dir).unwrap_or(path).display().to_string();
        corpus.push((
            Series {
                name,
                rows,
                windows,
            },
            values,
        ));
    }
    if corpus.is_empty() {
        bail!("no .csv files under {}", dir.display());
    }
    Ok(corpus)
}

const PUBLISHED: &[(&str, f64)] = &[
    ("ARTime", 74.9),
    ("Numenta HTM", 70.1),
    ("CAD OSE", 69.9),
    ("KNN CAD", 58.0),
    ("Random Cut Forest", 51.7),
    ("Twitter ADVec", 47.1),
    ("Windowed Gaussian", 39.6),
    ("random", 11.0),
];

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        c @ Command::Nab { .. } => nab(c),
        Command::Rca {
            cases,
            out,
            json,
            split,
            title,
            sustain,
            max_evidence,
            top,
            decay,
            onset_weight,
        } => {
            let config = RankConfig {
                evidence: EvidenceConfig {
                    sustain,
                    max_evidence,
                    ..EvidenceConfig::default()
                },
                combine: CombineConfig {
                    top,
                    decay,
                    ..CombineConfig::default()
                },
                onset_weight,
            };
            rca(&cases, out.as_deref(), json, split, title, config)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Split {
    All,
    Dev,
    HeldOut,
}

impl Split {
    /// Whether the case at `name` (its path under the cases' root) is in this part: FNV-1a of
    /// the path, even for dev and odd for held-out, so the split is the same on every machine
    /// and does not depend on which other cases exist.
    fn holds(self, name: &str) -> bool {
        let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        match self {
            Split::All => true,
            Split::Dev => h % 2 == 0,
            Split::HeldOut => h % 2 == 1,
        }
    }
}

fn rca(
    root: &Path,
    out: Option<&Path>,
    json: bool,
    split: Split,
    title: Option<String>,
    config: RankConfig,
) -> anyhow::Result<()> {
    let dirs = find_cases(root);
    if dirs.is_empty() {
        bail!(
            "no cases under {}: a case is a directory with data.csv, simple_data.csv or metrics.csv and inject_time.txt or case.json",
            root.display()
        );
    }
    let mut table = String::from(
        "| case | truth | Vigil rank | baseline rank | Vigil's top 3 (metric that moved most, robust z) |\n|---|---|---|---|---|\n",
    );
    let (mut ours, mut baseline) = (Vec::new(), Vec::new());
    let mut skipped = Vec::new();
    let mut services = 0usize;
    for dir in &dirs {
        let name = dir.strip_prefix(root).unwrap_or(dir).display().to_string();
        let name = if name.is_empty() { ".".into() } else { name };
        if !split.holds(&name) {
            continue;
        }
        let case = match Case::load(dir) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("skipping {}: {e}", dir.display());
                skipped.push(e.to_string());
                continue;
            }
        };
        let Some(truth) = case.truth.clone() else {
            let why = format!(
                "{}: no root_cause in case.json or label.json and no <service>_<fault> directory",
                dir.display()
            );
            eprintln!("skipping {why}");
            skipped.push(why);
            continue;
        };
        let ranked = rca::rank(&case.recording, config);
        let base = rca::rank_robust_z(&case.recording);
        let rank_of = |r: &[rca::Ranked]| r.iter().position(|r| r.service == truth).map(|i| i + 1);
        let (rank, base_rank) = (rank_of(&ranked), rank_of(&base));
        ours.push(rank);
        baseline.push(base_rank);
        services = services.max(ranked.len());
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "case": name, "truth": truth, "rank": rank, "baseline_rank": base_rank,
                    "ranking": ranked, "baseline": base,
                })
            );
        }
        let shown = |r: Option<usize>| r.map_or("–".into(), |r| r.to_string());
        table.push_str(&format!(
            "| {name} | {truth} | {} | {} | {} |\n",
            shown(rank),
            shown(base_rank),
            ranked
                .iter()
                .take(3)
                .map(|r| format!("{} ({}, {:.1})", r.service, r.metric, r.z))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if ours.is_empty() {
        bail!(
            "no case under {} could be scored ({} skipped{}){}",
            root.display(),
            skipped.len(),
            if split == Split::All {
                ""
            } else {
                " in this split"
            },
            skipped
                .first()
                .map(|w| format!("; the first: {w}"))
                .unwrap_or_default()
        );
    }
    let (a, b) = (accuracy(&ours), accuracy(&baseline));
    let mut report = format!(
        "# Root-cause replay — {}\n\n{} cases scored ({} skipped), split `{split:?}`, up to {services} services a case.\n\n\
         | ranking | AC@1 | AC@3 | Avg@5 |\n|---|---|---|---|\n\
         | Vigil (comparable scores, graph-free) | {:.2} | {:.2} | {:.2} |\n\
         | robust z-score baseline | {:.2} | {:.2} | {:.2} |\n\n",
        title.unwrap_or_else(|| root.display().to_string()),
        a.cases,
        skipped.len(),
        a.ac[0],
        a.ac[2],
        a.avg5,
        b.ac[0],
        b.ac[2],
        b.avg5,
    );
    report.push_str(&table);
    if !json {
        print!("{report}");
    }
    if let Some(out) = out {
        std::fs::write(out, &report).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

fn nab(command: Command) -> anyhow::Result<()> {
    let Command::Nab {
        data,
        layout,
        title,
        out,
        long,
        short,
        z_half,
        steps,
        likelihood,
        refractory,
        detector,
        dim,
        k,
        train,
    } = command
    else {
        bail!("not the nab command");
    };
    let knn_config = ConformalConfig { dim, k, train };
    let started = Instant::now();
    let raw = match layout.as_str() {
        "nab" => load(&data)
            .with_context(|| format!("loading NAB from {} (set --data)", data.display()))?,
        "per-point" => load_per_point(&data)
            .with_context(|| format!("loading labelled series from {}", data.display()))?,
        other => bail!("unknown --layout {other:?}: nab or per-point"),
    };
    let config = RobustConfig {
        long,
        short,
        z_half,
        steps,
        ..RobustConfig::default()
    };
    let corpus: Vec<(Series, Vec<f64>)> = raw
        .into_iter()
        .map(|(s, v)| {
            let likelihood = likelihood.then(LikelihoodConfig::default);
            let (robust, conformal) = match detector.as_str() {
                "robust" => (true, false),
                "knn" => (false, true),
                _ => (true, true),
            };
            let scores = if robust {
                univariate::score_series(
                    &v,
                    UnivariateConfig {
                        robust: config,
                        likelihood,
                        conformal: conformal.then_some(knn_config),
                    },
                )
            } else {
                conformal::score_series(&v, knn_config)
            };
            (s, scores)
        })
        .collect();
    let rows: usize = corpus.iter().map(|(s, _)| s.rows).sum();
    let windows: usize = corpus.iter().map(|(s, _)| s.windows.len()).sum();
    // Fine steps near 1: likelihoods crowd there.
    let mut thresholds: Vec<f64> = (0..=140).map(|i| 0.30 + i as f64 * 0.005).collect();
    thresholds.extend((1..=12).map(|k| 1.0 - 10f64.powf(-(k as f64) / 2.0)));
    // One alert per anomaly: stay quiet for a share of the series' length after alerting
    // (NAB sizes its windows from the series' length too).
    let results = sweep(&corpus, &thresholds, |s| {
        ((s.rows as f64 * refractory) as usize).max(1)
    });
    let mut report = format!(
        "# {title} — Vigil univariate detector, NAB scoring\n\n{} series, {rows} rows, {windows} labelled windows; detector `{detector}`: rolling median/MAD \
         (long window {}, short window {}, steps {}, anomaly likelihood {likelihood}) and k-NN conformal \
         (dim {dim}, k {k}, {train} training points), the larger score; refractory {:.0} % of the series; threshold swept 0.30..1.00 per profile.\n\n\
         | profile | Vigil | best threshold |\n|---|---|---|\n",
        corpus.len(),
        config.long,
        config.short,
        config.steps,
        refractory * 100.0
    );
    for r in &results {
        report.push_str(&format!(
            "| {} | {:.1} | {:.3} |\n",
            r.profile.name, r.score, r.threshold
        ));
    }
    if layout == "nab" {
        report.push_str("\nPublished (standard profile):\n\n| detector | score |\n|---|---|\n");
        for (name, score) in PUBLISHED {
            report.push_str(&format!("| {name} | {score} |\n"));
        }
    }
    report.push_str(&format!(
        "\n(scored in {:.1} s)\n",
        started.elapsed().as_secs_f64()
    ));
    print!("{report}");
    if let Some(out) = out {
        std::fs::write(&out, &report).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
