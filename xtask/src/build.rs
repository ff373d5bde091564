//! Building: the eBPF object with nightly, everything else with the workspace toolchain.

use anyhow::Context as _;
use std::{path::PathBuf, process::Command};

use crate::process::{cargo_bin_dir, run, step, workspace_root};

/// The toolchain rustup picks for the workspace itself (`stable-x86_64-…`), if rustup runs.
fn workspace_toolchain() -> Option<String> {
    let out = Command::new("rustup")
        .args(["show", "active-toolchain"])
        .current_dir(workspace_root())
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.split_whitespace().next().map(str::to_string)
}

/// `cargo` of the toolchain this workspace builds with, stripped of variables that the
/// outer `cargo run` set for xtask itself.
fn cargo(toolchain: Option<&str>) -> Command {
    let mut c = match toolchain {
        Some(t) => {
            let mut c = Command::new("rustup");
            c.args(["run", t, "cargo"]);
            c
        }
        // The cargo that is running xtask: the user's toolchain for this workspace.
        None => Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())),
    };
    if toolchain.is_none() {
        // Pin the toolchain for the whole build. Without it rustup's `rustc` proxy, which
        // cargo runs inside each dependency's directory, obeys a `rust-toolchain` file that
        // some crates ship (argminmax, under polars, asks for nightly) and mixes compilers.
        if let Some(t) = workspace_toolchain() {
            c.env("RUSTUP_TOOLCHAIN", t);
        }
    }
    for var in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
    ] {
        c.env_remove(var);
    }
    // CI builds a clean clone once: incremental caches would never be read again, and they
    // took as much disk as the binaries (a clean CI build once ran out of space).
    if std::env::var_os("CI").is_some() && std::env::var_os("CARGO_INCREMENTAL").is_none() {
        c.env("CARGO_INCREMENTAL", "0");
    }
    c.current_dir(workspace_root());
    c
}

/// Where `build-ebpf` puts the object the agent embeds (node-agent/build.rs reads it).
pub fn ebpf_object() -> PathBuf {
    workspace_root().join("target/ebpf/bpfel-unknown-none/release/node-agent-ebpf")
}

pub fn ebpf() -> anyhow::Result<()> {
    step("eBPF programs (nightly, bpfel-unknown-none)");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![cargo_bin_dir()];
    paths.extend(std::env::split_paths(&path));
    let mut c = cargo(Some("nightly"));
    // Never incremental, whatever the caller's environment says: incremental splits the
    // object into more codegen units, and the code that comes out of that was refused by the
    // verifier (`vigil_l7_ingress`: "bitwise operator |= on pointer prohibited").
    c.env("CARGO_INCREMENTAL", "0");
    c.args([
        "build",
        "--package",
        "node-agent-ebpf",
        "--release",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--target-dir",
        "target/ebpf",
    ])
    .env("PATH", std::env::join_paths(paths)?);
    run(
        &mut c,
        "building the eBPF programs (run `cargo xtask setup` if bpf-linker or rust-src is missing)",
    )?;
    println!("    {}", ebpf_object().display());
    Ok(())
}

/// Every host package: the workspace minus the eBPF crate (built by [`ebpf`]). Spelled out
/// because `default-members` also leaves out the privileged test crate, whose tests
/// `nextest` runs and whose binaries (test helpers, the benchmarks) `all` builds.
const HOST_PACKAGES: [&str; 3] = ["--workspace", "--exclude", "node-agent-ebpf"];

pub fn all(release: bool) -> anyhow::Result<()> {
    ebpf()?;
    step(if release {
        "workspace binaries (release)"
    } else {
        "workspace binaries"
    });
    let mut c = cargo(None);
    c.args(["build", "--bins"]).args(HOST_PACKAGES);
    if release {
        c.arg("--release");
    }
    run(&mut c, "building the workspace")
}

/// Tests whose names end in `alone` (timing-sensitive: the detection soak, retry delays; or
/// disturbing for the others: a pid-space wrap) run by themselves, one at a time, and before
/// the rest: the rest of the suite injects faults on
/// this host on purpose and leaves it churned (hundreds of cgroups, network namespaces and
/// processes made and removed, a full page cache), and the soak's healthy bursty load then
/// showed latency peaks that read as symptoms.
const ALONE: &str = "test(/alone$/)";

/// Whether `args` choose the packages themselves (`-p`, `--workspace`, …).
fn selects_packages(args: &[String]) -> bool {
    args.iter().any(|a| {
        matches!(
            a.as_str(),
            "-p" | "--package" | "--workspace" | "--all" | "--exclude"
        ) || a.starts_with("--package=")
            || a.starts_with("--exclude=")
            || (a.starts_with("-p") && a.len() > 2)
    })
}

pub fn nextest(extra: &[String]) -> anyhow::Result<()> {
    if !extra.is_empty() {
        step("tests (cargo nextest; privileged tests need root)");
        let mut c = cargo(None);
        c.args(["nextest", "run", "--no-fail-fast"]);
        if !selects_packages(extra) {
            c.args(HOST_PACKAGES);
        }
        c.args(extra);
        return run(&mut c, "the test suite");
    }
    step("tests that run alone, first (detection soak, retry timing)");
    let mut c = cargo(None);
    c.args(["nextest", "run", "--no-fail-fast", "--test-threads", "1"])
        .args(HOST_PACKAGES)
        .args(["-E", ALONE]);
    let alone = run(&mut c, "the tests that run alone");
    step("tests (cargo nextest; privileged tests need root)");
    let mut c = cargo(None);
    c.args(["nextest", "run", "--no-fail-fast"])
        .args(HOST_PACKAGES)
        .arg("-E")
        .arg(format!("not {ALONE}"));
    let suite = run(&mut c, "the test suite");
    suite.and(alone)
}

pub fn bench(execs: usize) -> anyhow::Result<()> {
    step("benchmark: exec storm");
    let dir = workspace_root().join("target/release");
    let mut c = Command::new(dir.join("vigil-bench"));
    c.arg("--execs")
        .arg(execs.to_string())
        .env("VIGIL_BIN_DIR", &dir);
    run(&mut c, "the benchmark")?;
    step("benchmark: a minute's storm of short-lived processes and connections");
    let mut c = Command::new(dir.join("vigil-bench-storm"));
    c.env("VIGIL_BIN_DIR", &dir);
    run(&mut c, "the storm benchmark")?;
    step("benchmark: probe overhead (syscall loop and wrk, with and without the agent)");
    let mut c = Command::new(dir.join("vigil-bench-overhead"));
    c.env("VIGIL_BIN_DIR", &dir)
        .arg("--report")
        .arg(workspace_root().join("reports"));
    run(&mut c, "the overhead benchmark")?;
    step("benchmark: the agent's cost by workloads watched and connections per second");
    let mut c = Command::new(dir.join("vigil-bench-scale"));
    c.env("VIGIL_BIN_DIR", &dir)
        .arg("--report")
        .arg(workspace_root().join("reports"));
    run(&mut c, "the scale benchmark")?;
    step("benchmark: the console in a browser with 1,000 incidents and a 500-workload graph");
    let mut c = Command::new(dir.join("vigil-bench-console"));
    c.arg("--report").arg(workspace_root().join("reports"));
    run(&mut c, "the console benchmark")?;
    step("benchmark: detection throughput and time to incident");
    let mut c = cargo(None);
    c.args(["bench", "-p", "control-plane", "--bench", "detection"]);
    run(&mut c, "the detection benchmark")?;
    step("benchmark: diagnosis time per incident and retrieval over 10,000 documents");
    let mut c = cargo(None);
    c.args(["bench", "-p", "control-plane", "--bench", "diagnosis"]);
    run(&mut c, "the diagnosis benchmark")
}

fn build_eval() -> anyhow::Result<std::path::PathBuf> {
    step("vigil-eval (release)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(
        Command::new(&cargo).args([
            "build",
            "--release",
            "-p",
            "control-plane",
            "--bin",
            "vigil-eval",
        ]),
        "building vigil-eval",
    )?;
    Ok(workspace_root().join("target/release/vigil-eval"))
}

fn absolute(p: &std::path::Path) -> std::path::PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        workspace_root().join(p)
    }
}

/// The NAB detector and scoring on a corpus labelled point by point (microsoft/cloud-
/// monitoring-dataset), exported from its snapshot. Nothing was tuned on it: every series is
/// held out.
pub fn eval_labelled(
    from: Option<std::path::PathBuf>,
    out: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    use crate::datasets::{default_snapshot, export_series, CLOUD_MONITORING};
    let eval = build_eval()?;
    let from = absolute(&from.unwrap_or_else(|| default_snapshot(CLOUD_MONITORING)));
    let data = workspace_root()
        .join("target/datasets")
        .join(CLOUD_MONITORING);
    step(&format!(
        "exporting {CLOUD_MONITORING} from {}",
        from.display()
    ));
    let n = export_series(&from, &data)?;
    crate::process::done(&format!("{n} series in {}", data.display()));
    let out = absolute(&out.unwrap_or_else(|| "reports/ad-cloud-monitoring.md".into()));
    // The shipped detector, then the plain robust z alone (no likelihood, no k-NN) beside it.
    let mut report = String::new();
    for (what, args) in [
        ("the shipped detector", &[][..]),
        (
            "baseline: robust z alone",
            &["--detector", "robust", "--likelihood", "false"][..],
        ),
    ] {
        step(&format!(
            "every series, NAB scoring with windows from the labels: {what}"
        ));
        let part = workspace_root().join("target/ad-cloud-monitoring-part.md");
        let mut c = Command::new(&eval);
        c.args(["nab", "--layout", "per-point", "--title"])
            .arg(format!("microsoft/cloud-monitoring-dataset, {what}"))
            .arg("--data")
            .arg(&data)
            .args(args)
            .arg("--out")
            .arg(&part);
        append_part(&mut report, &mut c, &part, "the labelled-series evaluation")?;
    }
    write_report(&out, &report)
}

/// Runs one part of a report (`c` writes it to `part`) and appends it.
fn append_part(
    report: &mut String,
    c: &mut Command,
    part: &std::path::Path,
    what: &str,
) -> anyhow::Result<()> {
    run(c, what)?;
    report.push_str(
        &std::fs::read_to_string(part).with_context(|| format!("reading {}", part.display()))?,
    );
    report.push('\n');
    Ok(())
}

fn write_report(out: &std::path::Path, report: &str) -> anyhow::Result<()> {
    std::fs::write(out, report).with_context(|| format!("writing {}", out.display()))?;
    crate::process::done(&format!("report in {}", out.display()));
    Ok(())
}

/// Root-cause ranking on `dataset`: converts a public one from its snapshot, then scores the
/// held-out half (reported) and the dev half (developed on) into one report. The lab's own
/// cases are scored whole.
pub fn eval_rca(
    dataset: &str,
    from: Option<std::path::PathBuf>,
    out: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let eval = build_eval()?;
    let out = absolute(&out.unwrap_or_else(|| format!("reports/rca-{dataset}.md").into()));
    let (cases, splits): (std::path::PathBuf, &[&str]) = if dataset == "lab" {
        (workspace_root().join("reports/lab/cases"), &["all"])
    } else {
        let from = absolute(&from.unwrap_or_else(|| crate::datasets::default_snapshot(dataset)));
        let cases = workspace_root().join("target/datasets").join(dataset);
        step(&format!("converting {dataset} from {}", from.display()));
        let n = crate::datasets::convert(dataset, &from, &cases)?;
        crate::process::done(&format!("{n} cases in {}", cases.display()));
        (cases, &["held-out", "dev"])
    };
    let mut report = String::new();
    for split in splits {
        step(&format!("{dataset}: ranking the {split} cases"));
        let part = workspace_root().join(format!("target/rca-{dataset}-{split}.md"));
        let mut c = Command::new(&eval);
        c.arg("rca")
            .arg("--cases")
            .arg(&cases)
            .args(["--split", split, "--title"])
            .arg(format!("{dataset}, {split} cases"))
            .arg("--out")
            .arg(&part);
        append_part(&mut report, &mut c, &part, "the root-cause replay")?;
    }
    write_report(&out, &report)
}

/// Builds `vigil-eval` (release) and scores the detector on NAB, writing the report.
pub fn eval_nab(data: &std::path::Path, out: &std::path::Path) -> anyhow::Result<()> {
    let eval = build_eval()?;
    step("NAB: every series, NAB scoring, three profiles");
    let mut c = Command::new(eval);
    c.arg("nab")
        .arg("--data")
        .arg(absolute(data))
        .arg("--out")
        .arg(absolute(out));
    run(&mut c, "the NAB evaluation")
}

#[cfg(test)]
mod tests {
    use super::selects_packages;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn extra_arguments_keep_the_whole_suite_unless_they_pick_packages() {
        assert!(!selects_packages(&args(&["oom_kill", "--nocapture"])));
        assert!(!selects_packages(&args(&["-E", "test(/exit/)"])));
        assert!(selects_packages(&args(&["-p", "vigil-tests", "oom"])));
        assert!(selects_packages(&args(&["-pnode-agent"])));
        assert!(selects_packages(&args(&["--package=control-plane"])));
        assert!(selects_packages(&args(&["--workspace"])));
    }
}
