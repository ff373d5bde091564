use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use node_agent::{app, config::AgentConfig, logging, shutdown::Shutdown};

/// Vigil node agent: kernel events (OOM kills, exits, fatal signals) to the control plane.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// TOML config file; every field has a default.
    #[arg(long, short, env = "VIGIL_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Control plane gRPC endpoint (overrides the config file).
    #[arg(long, env = "VIGIL_CONTROL_PLANE")]
    control_plane: Option<String>,
    /// Node name (overrides the config file and $NODE_NAME).
    #[arg(long)]
    node_name: Option<String>,
    /// Mutual TLS from a directory in the layout of a cert-manager Secret: `ca.crt`,
    /// `tls.crt`, `tls.key` (overrides `[control_plane.tls]`).
    #[arg(long, env = "VIGIL_TLS_DIR")]
    tls_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = match &args.config {
        Some(path) => AgentConfig::from_file(path)?,
        None => AgentConfig::default(),
    };
    if let Some(endpoint) = args.control_plane {
        config.control_plane.endpoint = endpoint;
    }
    if let Some(name) = args.node_name {
        config.node_name = Some(name);
    }
    if let Some(dir) = args.tls_dir {
        config.control_plane.tls = Some(node_agent::config::ClientTls {
            ca_file: dir.join("ca.crt"),
            cert_file: dir.join("tls.crt"),
            key_file: dir.join("tls.key"),
            server_name: String::new(),
        });
    }
    config.validate("the command line")?;
    logging::init(config.log.format);
    // Installed before anything starts: a handler that cannot be installed stops the agent
    // here, with the reason, instead of reading as a shutdown request later.
    let shutdown = Shutdown::install().context("vigil-agent cannot start")?;
    app::run(config, async {
        let signal = shutdown.wait().await;
        tracing::info!(signal, "stop requested");
    })
    .await
    .context("vigil-agent failed")
}
