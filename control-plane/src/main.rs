use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use control_plane::{app, config::ControlPlaneConfig};
use tracing_subscriber::EnvFilter;

/// Vigil control plane: gRPC ingest from node agents, incidents, REST API.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// TOML config file; every field has a default.
    #[arg(long, short, env = "VIGIL_CONTROL_PLANE_CONFIG")]
    config: Option<PathBuf>,
    /// SQLite store file (overrides the config).
    #[arg(long)]
    store: Option<PathBuf>,
    /// gRPC listen address (overrides the config).
    #[arg(long)]
    grpc_listen: Option<std::net::SocketAddr>,
    /// HTTP listen address (overrides the config).
    #[arg(long)]
    http_listen: Option<std::net::SocketAddr>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
    /// Once listening, write the bound addresses here as JSON (for supervisors and tests).
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = match &args.config {
        Some(path) => ControlPlaneConfig::from_file(path)?,
        None => ControlPlaneConfig::default(),
    };
    if let Some(p) = args.store {
        config.store_path = p;
    }
    if let Some(a) = args.grpc_listen {
        config.grpc_listen = a;
    }
    if let Some(a) = args.http_listen {
        config.http_listen = a;
    }
    config.validate("the command line")?;

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_json {
        fmt.json().init();
    } else {
        fmt.init();
    }

    let ready_file = args.ready_file;
    // Installed before anything starts: a handler that cannot be installed is a start-up
    // error, never a shutdown request (a failed `ctrl_c()` resolves at once).
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context(
        "cannot install the SIGTERM handler, so the control plane could not drain when stopped",
    )?;
    let mut int = signal(SignalKind::interrupt()).context(
        "cannot install the SIGINT handler, so the control plane could not drain when stopped",
    )?;
    let shutdown = async move {
        tokio::select! {
            Some(()) = term.recv() => {}
            Some(()) = int.recv() => {}
            // Both streams ended: the runtime itself is going away.
            else => {}
        }
        tracing::info!("shutting down");
    };
    app::run(config, shutdown, move |bound| {
        if let Some(path) = ready_file {
            let json = format!(r#"{{"grpc":"{}","http":"{}"}}"#, bound.grpc, bound.http);
            // Write then rename, so a reader never sees a half-written file.
            let tmp = path.with_extension("tmp");
            if let Err(e) = std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, &path)) {
                tracing::error!(path = %path.display(), error = %e, "cannot write the ready file");
            }
        }
    })
    .await
    .context("vigil-control-plane failed")
}
