//! The active certificate check: a TLS handshake (rustls) with the endpoint that reads the
//! leaf certificate and closes — no request is sent. The certificate is not verified here (an
//! expired or self-signed one is exactly what must be read); x509-parser reads its validity.

use std::{
    io::{Read, Write},
    net::{TcpStream, ToSocketAddrs},
    sync::Arc,
    time::Duration,
};

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime},
    ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme,
};

use crate::domain::certs::ports::{CertificateProbe, PeerCertificate, ProbeError};

/// Accepts whatever the server presents: the check reads certificates, it trusts nothing.
#[derive(Debug)]
struct ReadOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for ReadOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub struct TlsProbe {
    config: Arc<ClientConfig>,
    timeout: Duration,
}

impl TlsProbe {
    pub fn new(timeout: Duration) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map(|b| {
                b.dangerous()
                    .with_custom_certificate_verifier(Arc::new(ReadOnly(provider)))
                    .with_no_client_auth()
            })
            // The ring provider supports the default versions; this cannot fail.
            .unwrap_or_else(|_| unreachable!("ring supports TLS 1.2 and 1.3"));
        Self {
            config: Arc::new(config),
            timeout,
        }
    }
}

impl CertificateProbe for TlsProbe {
    fn served(&self, endpoint: &str) -> Result<PeerCertificate, ProbeError> {
        let connect = |source| ProbeError::Connect {
            endpoint: endpoint.to_string(),
            source,
        };
        let handshake = |reason: String| ProbeError::Handshake {
            endpoint: endpoint.to_string(),
            reason,
        };
        let addr = endpoint
            .to_socket_addrs()
            .map_err(connect)?
            .next()
            .ok_or_else(|| connect(std::io::Error::other("the name resolves to no address")))?;
        let mut tcp = TcpStream::connect_timeout(&addr, self.timeout).map_err(connect)?;
        tcp.set_read_timeout(Some(self.timeout)).map_err(connect)?;
        tcp.set_write_timeout(Some(self.timeout)).map_err(connect)?;
        // SNI: the host part when it is a name, else the IP (which rustls sends no SNI for).
        let host = endpoint.rsplit_once(':').map_or(endpoint, |(h, _)| h);
        let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
            .map_err(|e| handshake(e.to_string()))?;
        let mut tls = ClientConnection::new(self.config.clone(), name)
            .map_err(|e| handshake(e.to_string()))?;
        while tls.peer_certificates().is_none() {
            if !tls.is_handshaking() {
                break;
            }
            tls.complete_io(&mut tcp)
                .map_err(|e| handshake(e.to_string()))?;
        }
        let leaf = tls
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .ok_or_else(|| ProbeError::NoCertificate {
                endpoint: endpoint.to_string(),
            })?;
        tls.send_close_notify();
        let _ = tls.write_tls(&mut tcp);
        let _ = tcp.flush();
        let _ = tcp.read(&mut [0u8; 0]);
        parse(endpoint, &leaf)
    }
}

fn parse(endpoint: &str, der: &[u8]) -> Result<PeerCertificate, ProbeError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| ProbeError::Parse {
        endpoint: endpoint.to_string(),
        reason: e.to_string(),
    })?;
    Ok(PeerCertificate {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_after_unix: cert.validity().not_after.timestamp(),
    })
}
