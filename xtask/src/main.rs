//! `cargo xtask <task>`: the one documented way to set up, build, test, demo and benchmark.

mod build;
mod datasets;
mod demo;
mod fuzz;
mod imports;
mod lab;
mod process;
mod setup;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "Vigil tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install what a fresh machine lacks (idempotent): nightly rust-src, bpf-linker built
    /// against the nightly's LLVM, cargo-nextest, Debian packages; check the kernel.
    Setup {
        /// Only the eBPF toolchain (nightly rust-src, bpf-linker): what an image build needs.
        #[arg(long)]
        toolchain_only: bool,
    },
    /// Compile the eBPF programs (nightly, bpfel-unknown-none).
    BuildEbpf,
    /// Fail if two source files of a crate import each other (the suite runs this too).
    CheckImports,
    /// Build the eBPF object and every binary.
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Set up, build, and run every test, the privileged ones included (needs root).
    Test {
        /// Extra arguments for `cargo nextest run`.
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Run every cargo-fuzz target (fuzz/) on libFuzzer, its kept regressions first.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        secs: u64,
        /// Unoptimised build, as the test suite's short run uses.
        #[arg(long)]
        dev: bool,
    },
    /// Set up, build, start the control plane and the agent on this host, inject an OOM kill
    /// and a crash loop, and show incidents as they open. Ctrl-C stops and cleans up.
    Demo {
        /// Stop by itself after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        duration: Option<u64>,
    },
    /// The fault lab with Vigil watching: control plane + agent, the testbed, every
    /// scenario, a healthy soak; writes the report (JSON, Markdown, HTML) to `--out`.
    Lab {
        #[arg(long, default_value = "reports/lab")]
        out: std::path::PathBuf,
        /// Seconds each fault stays in (default: each scenario's own).
        #[arg(long)]
        duration: Option<u64>,
        #[arg(long, default_value_t = 20)]
        soak: u64,
        /// Only these scenarios (comma-separated names, `vigil-lab list`); the report then
        /// belongs elsewhere than the committed one.
        #[arg(long)]
        only: Option<String>,
    },
    /// Evaluate on public labelled data: `cargo xtask eval nab` (the detector on NAB),
    /// `cargo xtask eval ad` (the same detector and scoring on microsoft/cloud-monitoring-
    /// dataset, exported from its fetched snapshot), or
    /// `cargo xtask eval rca --dataset D` (root-cause ranking on a public dataset converted
    /// from its fetched snapshot, dev and held-out halves; `--dataset lab` replays the lab's
    /// recorded cases).
    Eval {
        /// `nab`, `ad` or `rca`.
        what: String,
        /// The NAB checkout.
        #[arg(long, default_value = "../shared/datasets/nab")]
        data: std::path::PathBuf,
        /// The report (default: reports/nab.md, reports/rca-<dataset>.md).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// For `rca`: rcd-sockshop, udevops-sockshop, udevops-trainticket or lab.
        #[arg(long)]
        dataset: Option<String>,
        /// For `rca` and `ad`: the snapshot's git directory (default: where `fetch` puts it).
        #[arg(long)]
        from: Option<std::path::PathBuf>,
    },
    /// Release build, then the exec-storm benchmark: kernel-event→stored latency p50/p99
    /// and the agent's CPU% and RSS.
    Bench {
        /// Processes to exec in the storm.
        #[arg(long, default_value_t = 20_000)]
        execs: usize,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Setup {
            toolchain_only: true,
        } => setup::toolchain(),
        Task::Setup {
            toolchain_only: false,
        } => setup::run(),
        Task::BuildEbpf => build::ebpf(),
        Task::CheckImports => imports::check(&process::workspace_root()),
        Task::Build { release } => {
            setup::run()?;
            build::all(release)
        }
        Task::Test { args } => {
            setup::run()?;
            build::all(false)?;
            let tests = build::nextest(&args);
            // The whole suite also runs every fuzz target briefly; a selection does not.
            if args.is_empty() {
                tests.and(fuzz::run_all(fuzz::CI_SECS, fuzz::Build::Dev))
            } else {
                tests
            }
        }
        Task::Fuzz { secs, dev } => fuzz::run_all(
            secs,
            if dev {
                fuzz::Build::Dev
            } else {
                fuzz::Build::Release
            },
        ),
        Task::Demo { duration } => {
            setup::run()?;
            build::all(false)?;
            demo::run(duration)
        }
        Task::Lab {
            out,
            duration,
            soak,
            only,
        } => {
            setup::run()?;
            build::all(false)?;
            lab::run(&out, duration, soak, only.as_deref())
        }
        Task::Eval {
            what,
            data,
            out,
            dataset,
            from,
        } => match what.as_str() {
            "nab" => build::eval_nab(&data, &out.unwrap_or_else(|| "reports/nab.md".into())),
            "ad" => build::eval_labelled(from, out),
            "rca" => {
                let Some(dataset) = dataset else {
                    anyhow::bail!(
                        "`cargo xtask eval rca` needs --dataset: lab, or one of {}",
                        datasets::DATASETS
                            .iter()
                            .map(|(d, what)| format!("{d} ({what})"))
                            .collect::<Vec<_>>()
                            .join("; ")
                    );
                };
                build::eval_rca(&dataset, from, out)
            }
            _ => anyhow::bail!(
                "unknown evaluation {what:?}; try `cargo xtask eval nab`, `cargo xtask eval ad` or `cargo xtask eval rca --dataset lab`"
            ),
        },
        Task::Bench { execs } => {
            setup::run()?;
            build::all(true)?;
            build::bench(execs)
        }
    }
}
