//! `vigil certs`: a development CA and the certificates it signs, for mutual TLS between
//! agents and the control plane (and TLS on the API). In a cluster cert-manager does this.

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use control_plane::adapters::tls::mint::{self, Role};

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create a CA: DIR/ca.pem (give it to both sides) and DIR/ca.key (keep it private).
    Init {
        #[arg(long, default_value = "vigil-pki")]
        dir: PathBuf,
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Issue DIR/NAME.pem and DIR/NAME.key from DIR's CA; run again to rotate them.
    Issue {
        #[arg(long, default_value = "vigil-pki")]
        dir: PathBuf,
        /// `agent`: a client certificate that may speak for node NAME only; `server`: the
        /// control plane's, valid for NAME and every --san.
        #[arg(long, value_enum)]
        role: RoleArg,
        name: String,
        /// More names (DNS names or IP addresses) the certificate is valid for.
        #[arg(long = "san")]
        sans: Vec<String>,
        #[arg(long, default_value_t = 90)]
        days: u32,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Agent,
    Server,
}

pub fn run(command: CertsCommand) -> anyhow::Result<()> {
    match command {
        CertsCommand::Init { dir, days } => {
            let ca = mint::init(&dir, days)?;
            println!(
                "CA {} (key {}), valid {days} days",
                ca.cert.display(),
                ca.key.display()
            );
        }
        CertsCommand::Issue {
            dir,
            role,
            name,
            sans,
            days,
        } => {
            let role = match role {
                RoleArg::Agent => Role::Agent,
                RoleArg::Server => Role::Server,
            };
            let issued = mint::issue(&dir, role, &name, &sans, days)?;
            println!(
                "{} (key {}) for {name}, valid {days} days",
                issued.cert.display(),
                issued.key.display()
            );
        }
    }
    Ok(())
}
