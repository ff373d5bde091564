//! `[tls]`: mutual TLS on the agents' gRPC ingest, TLS on the REST API and console, and the
//! rule that plaintext is served on loopback only unless `allow_plaintext` says otherwise.

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;
use vigil_config_file::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Mutual TLS on `grpc_listen`: agents present certificates signed by `client_ca_file`.
    pub grpc: Option<GrpcTls>,
    /// TLS on `http_listen` (the REST API, the console, MCP and `/metrics`).
    pub api: Option<ApiTls>,
    /// Serve plaintext on an address other than loopback (e.g. behind a service mesh that
    /// encrypts for you). Off: such a config is refused at start.
    pub allow_plaintext: bool,
    /// How often the certificate files are checked for a rotation.
    pub reload_interval_secs: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            grpc: None,
            api: None,
            allow_plaintext: false,
            reload_interval_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The CA agents' client certificates must chain to; an agent may send events only as
    /// a node its certificate names (common name or DNS name).
    pub client_ca_file: PathBuf,
    /// Certificate names that may speak for any node: for a DaemonSet whose agents share
    /// one Secret. Weaker — one stolen key speaks for every node — so empty by default;
    /// per-node certificates keep each agent to its own node.
    #[serde(default)]
    pub fleet_identities: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl TlsConfig {
    pub fn validate(
        &self,
        origin: &str,
        grpc: SocketAddr,
        http: SocketAddr,
    ) -> Result<(), ConfigError> {
        if self.reload_interval_secs == 0 {
            return Err(ConfigError::invalid(
                origin,
                "tls.reload_interval_secs",
                "must be at least 1 (5 is the default)",
            ));
        }
        if self.allow_plaintext {
            return Ok(());
        }
        let open = |field: &'static str, addr: SocketAddr, section: &str, what: &str| {
            Err(ConfigError::invalid(
                origin,
                field,
                format!(
                    "{addr} is not a loopback address and [{section}] is not set: {what} would cross the network in clear. \
                     Set [{section}] (`vigil certs` mints development certificates; cert-manager in a cluster) \
                     or, if something else encrypts the traffic, tls.allow_plaintext = true"
                ),
            ))
        };
        if self.grpc.is_none() && !grpc.ip().is_loopback() {
            return open("grpc_listen", grpc, "tls.grpc", "the agents' events");
        }
        if self.api.is_none() && !http.ip().is_loopback() {
            return open("http_listen", http, "tls.api", "API tokens and incidents");
        }
        Ok(())
    }
}
