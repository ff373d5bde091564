//! `cargo xtask fuzz`: every cargo-fuzz target in `fuzz/` on libFuzzer for a while. The inputs
//! kept in `fuzz/regressions/<target>/` (each one a crash found and fixed) and the examples in
//! `fuzz/seeds/<target>/` (valid inputs to mutate from) run first, every time; what libFuzzer
//! learns goes to `fuzz/corpus/<target>/` (not committed). A crash fails the run naming its
//! input, to be fixed and then kept as a regression.

use std::process::Command;

use anyhow::{bail, Context as _};

use crate::process::{run, step, workspace_root};

/// Seconds each target runs in `cargo xtask test`: enough to catch what a change broke, not
/// a search (run `cargo xtask fuzz --secs 600` for that).
pub const CI_SECS: u64 = 30;

/// How the targets are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// Optimised: many more inputs a second, for a search (`cargo xtask fuzz`).
    Release,
    /// Unoptimised, with debug assertions and no sanitizer: compiles the control plane's
    /// dependencies (polars among them) much faster, for the short run in the test suite.
    Dev,
}

fn targets() -> anyhow::Result<Vec<String>> {
    let dir = workspace_root().join("fuzz/fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok()?.path().file_stem()?.to_str().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

pub fn run_all(secs: u64, build: Build) -> anyhow::Result<()> {
    crate::setup::cargo_fuzz()?;
    let root = workspace_root().join("fuzz");
    let mut failed = Vec::new();
    for target in targets()? {
        step(&format!("fuzz {target} for {secs} s"));
        let corpus = root.join("corpus").join(&target);
        let regressions = root.join("regressions").join(&target);
        let seeds = root.join("seeds").join(&target);
        for dir in [&corpus, &regressions, &seeds] {
            std::fs::create_dir_all(dir)?;
        }
        let mut c = Command::new("cargo");
        c.current_dir(&root).args(["+nightly", "fuzz", "run"]);
        if build == Build::Dev {
            // No AddressSanitizer either: the short run looks for panics (safe Rust), and
            // sanitized builds of the C dependencies cost more than the run itself.
            c.args(["--dev", "--sanitizer", "none"]);
        }
        c.arg(&target)
            .arg(&corpus)
            .arg(&regressions)
            .arg(&seeds)
            .args([
                "--",
                &format!("-max_total_time={secs}"),
                "-rss_limit_mb=2048",
                "-print_final_stats=1",
            ]);
        if run(&mut c, &format!("fuzzing {target}")).is_err() {
            failed.push(target);
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzz targets found crashes: {failed:?}. The inputs are in fuzz/artifacts/<target>/: \
             reproduce with `cargo +nightly fuzz run <target> <input>`, fix, then copy the input \
             into fuzz/regressions/<target>/"
        );
    }
    Ok(())
}
