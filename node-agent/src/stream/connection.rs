//! The gRPC client both shippers use: one endpoint definition, one compression setting, and
//! with `[control_plane.tls]` mutual TLS whose files are read on every connection — so a
//! rotated certificate is used from the next connection on, and `rotated` tells a connected
//! shipper to make that next connection now.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    path::{Path, PathBuf},
    time::Duration,
};

use tonic::{
    codec::CompressionEncoding,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};
use vigil_proto::v1::agent_ingest_client::AgentIngestClient;

use crate::config::{AgentConfig, ClientTls, Compression};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read {path} (`control_plane.tls.{field}`): {source}")]
    Read {
        field: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the TLS files in [control_plane.tls] do not load: {}", error_chain(.0))]
    Tls(#[source] tonic::transport::Error),
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
}

/// What a connection was made with: the TLS files' contents, hashed (no TLS: 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials(u64);

struct TlsFiles {
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl TlsFiles {
    fn read(tls: &ClientTls) -> Result<Self, ConnectError> {
        let read = |field, path: &Path| {
            std::fs::read(path).map_err(|source| ConnectError::Read {
                field,
                path: path.into(),
                source,
            })
        };
        Ok(Self {
            ca: read("ca_file", &tls.ca_file)?,
            cert: read("cert_file", &tls.cert_file)?,
            key: read("key_file", &tls.key_file)?,
        })
    }

    fn credentials(&self) -> Credentials {
        let mut hash = DefaultHasher::new();
        (&self.ca, &self.cert, &self.key).hash(&mut hash);
        Credentials(hash.finish())
    }
}

pub struct Connector {
    base: Endpoint,
    tls: Option<ClientTls>,
    compression: Compression,
}

impl Connector {
    /// Checks the endpoint and, with TLS, that its files load now: a bad path or PEM stops
    /// the agent's start instead of failing every connection.
    pub fn new(config: &AgentConfig) -> Result<Self, ConnectError> {
        let cp = &config.control_plane;
        let connector = Self {
            base: Endpoint::from_shared(cp.endpoint.clone())?
                .connect_timeout(Duration::from_millis(cp.connect_timeout_ms))
                .timeout(Duration::from_millis(cp.request_timeout_ms)),
            tls: cp.tls.clone(),
            compression: cp.compression,
        };
        connector.endpoint()?;
        Ok(connector)
    }

    fn endpoint(&self) -> Result<(Endpoint, Credentials), ConnectError> {
        let Some(tls) = &self.tls else {
            return Ok((self.base.clone(), Credentials(0)));
        };
        let files = TlsFiles::read(tls)?;
        let mut config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&files.ca))
            .identity(Identity::from_pem(&files.cert, &files.key));
        if !tls.server_name.is_empty() {
            config = config.domain_name(tls.server_name.clone());
        }
        let endpoint = self
            .base
            .clone()
            .tls_config(config)
            .map_err(ConnectError::Tls)?;
        Ok((endpoint, files.credentials()))
    }

    /// A new connection, with the TLS files as they are now.
    pub async fn connect(&self) -> Result<(AgentIngestClient<Channel>, Credentials), ConnectError> {
        let (endpoint, credentials) = self.endpoint()?;
        let channel = endpoint.connect().await?;
        let client = AgentIngestClient::new(channel).max_decoding_message_size(1 << 20);
        let client = match self.compression {
            Compression::None => client,
            Compression::Gzip => client
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip),
            Compression::Zstd => client
                .send_compressed(CompressionEncoding::Zstd)
                .accept_compressed(CompressionEncoding::Zstd),
        };
        Ok((client, credentials))
    }

    /// Whether the TLS files changed since a connection was made with `since`. Files that
    /// cannot be read now count as unchanged: the connection keeps what it has.
    pub fn rotated(&self, since: Credentials) -> bool {
        let Some(tls) = &self.tls else { return false };
        TlsFiles::read(tls).is_ok_and(|files| files.credentials() != since)
    }
}

/// `error: cause: cause…` — tonic's transport errors say only "transport error" on top.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
