//! `vigil-lab`: start the testbed, inject guarded faults, evaluate what Vigil saw.

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use fault_lab::{
    eval::{report, runner, vigil::VigilApi},
    scenarios, state,
    testbed::Testbed,
};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Parser)]
#[command(about = "Vigil's fault lab: a local microservice testbed, guarded faults, evaluation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the scenarios with their defaults.
    List,
    /// Start the testbed and keep it up (Ctrl-C, or --for N seconds).
    Up {
        #[arg(long = "for")]
        seconds: Option<u64>,
    },
    /// Run one scenario, or all of them, against a fresh testbed; write records and a report.
    Run {
        /// Scenario name (see `list`); omit with --all.
        scenario: Option<String>,
        #[arg(long)]
        all: bool,
        /// A comma-separated list of scenarios, in order.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        intensity: Option<f64>,
        /// Seconds the fault stays in.
        #[arg(long)]
        duration: Option<u64>,
        /// Vigil's control plane REST API, to score detection (omit to only inject).
        #[arg(long, env = "VIGIL_API")]
        api: Option<String>,
        /// A file holding a viewer (or larger) API token for `--api`; VIGIL_TOKEN, if set,
        /// is used instead.
        #[arg(long, env = "VIGIL_TOKEN_FILE")]
        token_file: Option<PathBuf>,
        /// Where run records, cases and the report go.
        #[arg(long, default_value = "lab-report")]
        out: PathBuf,
        /// Seconds of healthy soak (no fault, bursty load) after the scenarios; 0 skips it.
        #[arg(long, default_value_t = 0)]
        soak: u64,
        /// Seconds of healthy load before the first fault, so Vigil's baselines of the
        /// testbed's services leave "learning" and anomalies can be judged.
        #[arg(long, default_value_t = 0)]
        warmup: u64,
    },
    /// Remove everything a previous lab left behind (replays fault records first).
    Cleanup,
    /// (internal) Hold packets of an NFQUEUE; run inside the target's namespace.
    #[command(hide = true)]
    NfqDelay {
        #[arg(long)]
        queue: u16,
        #[arg(long)]
        ms: u64,
    },
}

/// The supervisor's socket for Vigil's local runtime (`[remediation.local] supervisor`).
pub fn supervisor_socket(state: &std::path::Path) -> PathBuf {
    state.join("supervisor.sock")
}

/// Runs `work` while the testbed's supervisor answers Vigil's local runtime on its socket.
fn with_supervisor_socket<T>(
    bed: &Testbed,
    state: &std::path::Path,
    work: impl FnOnce() -> T,
) -> anyhow::Result<T> {
    use fault_lab::testbed::supervisor_socket;
    let path = supervisor_socket(state);
    let listener = supervisor_socket::bind(&path)?;
    println!(
        "==> supervisor socket for Vigil's local runtime: {}",
        path.display()
    );
    /// Stops the socket's thread however `work` ends (a panic included), or the scope
    /// would wait for it forever.
    struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    let out = std::thread::scope(|s| {
        s.spawn(|| supervisor_socket::serve(bed, &listener, &stop));
        let _stop = StopOnDrop(&stop);
        work()
    });
    let _ = std::fs::remove_file(&path);
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let dir = state::state_dir();
    match cli.command {
        Command::List => {
            for s in scenarios::catalogue() {
                let i = s.info();
                println!(
                    "{:<20} {:<9} {:>4}s  intensity {} = {}  — {}",
                    i.name,
                    i.default_target,
                    i.default_duration.as_secs(),
                    i.intensity,
                    i.default_intensity,
                    i.about
                );
            }
        }
        Command::Up { seconds } => {
            let _lock = state::RunLock::acquire(&dir)?;
            let bed =
                Testbed::start(&dir, &|m| println!("==> {m}")).context("starting the testbed")?;
            for s in bed.supervisor.status() {
                println!(
                    "    {:<20} pid {}",
                    s.name,
                    s.pid.map_or("-".into(), |p| p.to_string())
                );
            }
            with_supervisor_socket(&bed, &dir, || {
                std::thread::sleep(Duration::from_secs(seconds.unwrap_or(u64::MAX / 4)))
            })?;
            bed.stop(&dir);
        }
        Command::Run {
            scenario,
            all,
            only,
            target,
            intensity,
            duration,
            api,
            token_file,
            out,
            soak,
            warmup,
        } => {
            let chosen: Vec<Box<dyn scenarios::Scenario>> = match (scenario, all, only.is_empty()) {
                (Some(name), false, true) => vec![scenarios::find(&name)?],
                (None, true, true) => scenarios::catalogue(),
                (None, false, false) => only
                    .iter()
                    .map(|n| scenarios::find(n))
                    .collect::<Result<_, _>>()?,
                _ => anyhow::bail!("name one scenario, or pass --all, or --only a,b,c"),
            };
            // Refuse bad targets before building anything.
            for s in &chosen {
                let p = runner::params(s.as_ref(), target.as_deref(), intensity, duration);
                scenarios::check_target(&s.info(), &p.target)?;
            }
            let _lock = state::RunLock::acquire(&dir)?;
            let vigil = match api.as_deref() {
                Some(base) => {
                    let v = VigilApi::new(base, token_file.as_deref())?;
                    v.check_access()?;
                    Some(v)
                }
                None => None,
            };
            let bed =
                Testbed::start(&dir, &|m| println!("==> {m}")).context("starting the testbed")?;
            with_supervisor_socket(&bed, &dir, || -> anyhow::Result<()> {
                let run = runner::Runner::new(&bed, &dir, vigil, &out)?;
                if warmup > 0 {
                    let bar = ProgressBar::new(warmup);
                    bar.set_style(
                        ProgressStyle::with_template(
                            "warm-up (healthy load) {bar:30} {pos}/{len}s",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    for _ in 0..warmup {
                        std::thread::sleep(Duration::from_secs(1));
                        bar.inc(1);
                    }
                    bar.finish_and_clear();
                }
                let bar = ProgressBar::new(chosen.len() as u64);
                bar.set_style(
                    ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                let mut records = Vec::new();
                for s in &chosen {
                    let p = runner::params(s.as_ref(), target.as_deref(), intensity, duration);
                    bar.set_message(format!(
                        "{} on {} for {}s",
                        s.info().name,
                        p.target,
                        p.duration.as_secs()
                    ));
                    let r = run.run(s.as_ref(), &p);
                    bar.println(format!(
                        "{:<20} detected {:>6}  recovered {:>6}  {}",
                        r.scenario,
                        r.detection_latency_ms
                            .map_or("–".into(), |v| format!("{v}ms")),
                        r.recovery_ms.map_or("–".into(), |v| format!("{v}ms")),
                        r.error.clone().unwrap_or_default()
                    ));
                    records.push(r);
                    bar.inc(1);
                }
                bar.finish_and_clear();
                let soak = (soak > 0).then(|| {
                    println!("==> healthy soak: {soak}s of bursty load, no fault");
                    runner::soak(&bed, run.vigil.as_ref(), soak)
                });
                let summary = report::summarize(&run.run_id, records, soak);
                report::write(&out, &summary)?;
                println!("{}", report::markdown(&summary));
                println!("report: {}", out.join("report.html").display());
                drop(run);
                Ok(())
            })??;
            bed.stop(&dir);
        }
        Command::Cleanup => {
            let _lock = state::RunLock::acquire(&dir)?;
            fault_lab::testbed::clean_leftovers(&dir)?;
            println!("lab cleaned: no vigil-lab- namespaces, cgroups or recorded faults left");
        }
        Command::NfqDelay { queue, ms } => fault_lab::delay::run(queue, ms)?,
    }
    Ok(())
}
