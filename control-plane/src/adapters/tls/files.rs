//! Reading PEM certificates and keys into a rustls server configuration, every failure naming
//! the file and the setting that points at it.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::WebPkiClientVerifier,
    RootCertStore, ServerConfig,
};

/// The files a listener's TLS is built from, with the config keys that named them.
#[derive(Debug, Clone)]
pub struct ServerFiles {
    /// The config section the paths came from, e.g. `tls.grpc`, for error messages.
    pub section: &'static str,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA whose certificates clients must present; `None`: no client certificate asked.
    pub client_ca: Option<PathBuf>,
    /// ALPN protocols offered, e.g. `h2` for gRPC.
    pub alpn: Vec<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path} (`{section}.{field}`): {source}")]
    Read {
        section: &'static str,
        field: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} (`{section}.{field}`) holds no PEM {what}: expected a `-----BEGIN {label}-----` block ({detail})")]
    Pem {
        section: &'static str,
        field: &'static str,
        path: PathBuf,
        what: &'static str,
        label: &'static str,
        detail: String,
    },
    #[error("the client CA {path} (`{section}.client_ca_file`) cannot verify clients: {detail}")]
    ClientCa {
        section: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("the certificate {cert} and the key {key} (`{section}`) cannot serve TLS: {source}. Is the key the certificate's own, in PKCS#8, PKCS#1 or SEC1 PEM?")]
    Config {
        section: &'static str,
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: Box<rustls::Error>,
    },
}

/// The files' bytes, read once: the fingerprint a reload compares and what is parsed.
pub(super) struct Contents {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub client_ca: Option<Vec<u8>>,
}

impl ServerFiles {
    fn read(&self, field: &'static str, path: &PathBuf) -> Result<Vec<u8>, TlsError> {
        std::fs::read(path).map_err(|source| TlsError::Read {
            section: self.section,
            field,
            path: path.clone(),
            source,
        })
    }

    pub(super) fn contents(&self) -> Result<Contents, TlsError> {
        Ok(Contents {
            cert: self.read("cert_file", &self.cert)?,
            key: self.read("key_file", &self.key)?,
            client_ca: match &self.client_ca {
                Some(path) => Some(self.read("client_ca_file", path)?),
                None => None,
            },
        })
    }

    fn certificates(
        &self,
        field: &'static str,
        path: &Path,
        pem: &[u8],
    ) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string());
        match certs {
            Ok(certs) if !certs.is_empty() => Ok(certs),
            other => Err(TlsError::Pem {
                section: self.section,
                field,
                path: path.into(),
                what: "certificate",
                label: "CERTIFICATE",
                detail: other.err().unwrap_or_else(|| "none found".into()),
            }),
        }
    }

    /// The rustls configuration the files describe.
    pub(super) fn server_config(&self, c: &Contents) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = self.certificates("cert_file", &self.cert, &c.cert)?;
        let key = PrivateKeyDer::from_pem_slice(&c.key).map_err(|e| TlsError::Pem {
            section: self.section,
            field: "key_file",
            path: self.key.clone(),
            what: "private key",
            label: "PRIVATE KEY",
            detail: e.to_string(),
        })?;
        let config_error = |source| TlsError::Config {
            section: self.section,
            cert: self.cert.clone(),
            key: self.key.clone(),
            source: Box::new(source),
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(config_error)?;
        let builder = match (&self.client_ca, &c.client_ca) {
            (Some(path), Some(pem)) => {
                let ca_error = |detail: String| TlsError::ClientCa {
                    section: self.section,
                    path: path.clone(),
                    detail,
                };
                let mut roots = RootCertStore::empty();
                for ca in self.certificates("client_ca_file", path, pem)? {
                    roots.add(ca).map_err(|e| ca_error(e.to_string()))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| ca_error(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).map_err(config_error)?;
        config.alpn_protocols.clone_from(&self.alpn);
        Ok(Arc::new(config))
    }
}
