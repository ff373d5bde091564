//! `vigil-lab`: start the testbed, inject guarded faults, evaluate what Vigil saw.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use fault_lab::{state, testbed::Testbed};

#[derive(Debug, Parser)]
#[command(about = "Vigil's fault lab")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the testbed and keep it up (Ctrl-C or --for N seconds to stop).
    Up {
        #[arg(long = "for")]
        seconds: Option<u64>,
    },
    /// Remove everything a previous lab left behind (faults, namespaces, cgroups).
    Cleanup,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let dir = state::state_dir();
    match cli.command {
        Command::Up { seconds } => {
            let _lock = state::RunLock::acquire(&dir)?;
            let bed =
                Testbed::start(&dir, &|m| println!("==> {m}")).context("starting the testbed")?;
            for s in bed.supervisor.status() {
                println!(
                    "    {:<20} pid {:<8} restarts {}",
                    s.name,
                    s.pid.map_or("-".into(), |p| p.to_string()),
                    s.restarts
                );
            }
            std::thread::sleep(Duration::from_secs(seconds.unwrap_or(u64::MAX / 4)));
            bed.stop(&dir);
        }
        Command::Cleanup => {
            let _lock = state::RunLock::acquire(&dir)?;
            fault_lab::testbed::clean_leftovers(&dir)?;
            println!("lab cleaned");
        }
    }
    Ok(())
}
