//! Who a verified client certificate speaks for: its subject's common name and its DNS
//! subject alternative names. An agent's certificate names its node (`vigil certs issue
//! --role agent NODE`, or cert-manager's `commonName`/`dnsNames`).

use rustls::pki_types::CertificateDer;
use x509_parser::{extensions::GeneralName, prelude::FromDer};

/// The names of a peer whose certificate chain the handshake verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    pub names: Vec<String>,
}

impl PeerIdentity {
    /// Reads the leaf certificate; `None` when it cannot be parsed (rustls verified it, so
    /// this means a certificate form x509-parser does not read: no names, nothing allowed).
    pub fn of(leaf: &CertificateDer<'_>) -> Option<Self> {
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(leaf).ok()?;
        let mut names: Vec<String> = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_string))
            .collect();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                if let GeneralName::DNSName(dns) = name {
                    names.push((*dns).to_string());
                }
            }
        }
        names.dedup();
        Some(Self { names })
    }

    /// Whether this peer may speak for `node`: one of its names is exactly the node's.
    pub fn allows(&self, node: &str) -> bool {
        self.names.iter().any(|n| n == node)
    }

    pub fn describe(&self) -> String {
        self.names.join(",")
    }
}
