//! Certificates: the expiry of what every TLS server endpoint serves, checked before it
//! lapses. The endpoints are the servers Vigil saw TLS requests to (the OpenSSL uprobes mark
//! them) plus any configured; the check is active and opt-in — a TLS handshake from the
//! control plane that reads the certificate and sends nothing else (`ports::CertificateProbe`).
//! A certificate within `warn_before` of its end is a warning naming the endpoint and the date;
//! an expired one is critical.

pub mod model;
pub mod ports;
pub mod service;

pub use model::{CertPolicy, ServedCertificate};
pub use service::CertificateService;
