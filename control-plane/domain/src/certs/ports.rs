//! Reading what an endpoint serves.

/// The leaf certificate a TLS server sent, as read off the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    pub subject: String,
    pub issuer: String,
    pub not_after_unix: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("connecting to {endpoint}: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS handshake with {endpoint}: {reason}")]
    Handshake { endpoint: String, reason: String },
    #[error("{endpoint} finished the handshake without a certificate")]
    NoCertificate { endpoint: String },
    #[error("the certificate {endpoint} served does not parse as X.509: {reason}")]
    Parse { endpoint: String, reason: String },
}

/// An active check: a TLS handshake with the endpoint that reads its certificate and sends
/// no request.
pub trait CertificateProbe: Send + Sync {
    fn served(&self, endpoint: &str) -> Result<PeerCertificate, ProbeError>;
}
