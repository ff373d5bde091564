//! The tests' mutual TLS: each test process has one development CA, made by `vigil certs init`
//! as a user would, and every control plane and agent the harness starts gets a certificate
//! from it (`vigil certs issue`). So the end-to-end tests run agent ↔ control plane over
//! mutual TLS, the way a cluster does.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use crate::bin_path;

/// A CA and the certificates it issued, in a directory.
pub struct Pki {
    dir: tempfile::TempDir,
}

/// One certificate's files and the CA to verify the other side with.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn vigil_certs(args: &[&str]) {
    let out = Command::new(bin_path("vigil"))
        .arg("certs")
        .args(args)
        .output()
        .expect("run vigil certs");
    assert!(
        out.status.success(),
        "vigil certs {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    /// A new CA of its own (the process-wide one is `shared`).
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("pki dir");
        vigil_certs(&["init", "--dir", &dir.path().to_string_lossy()]);
        Self { dir }
    }

    /// The CA of this test process.
    pub fn shared() -> &'static Pki {
        static SHARED: OnceLock<Pki> = OnceLock::new();
        SHARED.get_or_init(Pki::new)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn ca(&self) -> PathBuf {
        self.dir().join("ca.pem")
    }

    /// Issues (or rotates) the certificate `name` for `role` (`agent` or `server`).
    pub fn issue(&self, role: &str, name: &str, sans: &[&str]) -> Credentials {
        let dir = self.dir().to_string_lossy().into_owned();
        let mut args = vec!["issue", "--dir", &dir, "--role", role, name];
        for san in sans {
            args.extend(["--san", san]);
        }
        vigil_certs(&args);
        Credentials {
            ca: self.ca(),
            cert: self.dir().join(format!("{name}.pem")),
            key: self.dir().join(format!("{name}.key")),
        }
    }

    /// The certificate `name` for `role`, issued the first time it is asked for.
    pub fn credentials(&self, role: &str, name: &str) -> Credentials {
        let cert = self.dir().join(format!("{name}.pem"));
        if !cert.exists() {
            return self.issue(role, name, &[]);
        }
        Credentials {
            ca: self.ca(),
            cert,
            key: self.dir().join(format!("{name}.key")),
        }
    }

    /// The control plane's `[tls.grpc]`: a server certificate for localhost and 127.0.0.1,
    /// agents verified against this CA.
    pub fn control_plane_toml(&self) -> String {
        let c = self.issue("server", "localhost", &["127.0.0.1"]);
        format!(
            "[tls.grpc]\ncert_file = {:?}\nkey_file = {:?}\nclient_ca_file = {:?}\n",
            c.cert, c.key, c.ca
        )
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Credentials {
    /// The agent's `[control_plane.tls]`.
    pub fn agent_toml(&self) -> String {
        format!(
            "[control_plane.tls]\nca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\n",
            self.ca, self.cert, self.key
        )
    }

    /// A gRPC channel to `endpoint` speaking with this certificate, as an agent would.
    pub async fn channel(&self, endpoint: &str) -> tonic::transport::Channel {
        self.connect(endpoint)
            .await
            .unwrap_or_else(|e| panic!("connect over mutual TLS: {e}"))
    }

    /// Like `channel`, the failure returned (the handshake's, or the transport's).
    pub async fn connect(&self, endpoint: &str) -> Result<tonic::transport::Channel, String> {
        let read = |p: &PathBuf| std::fs::read(p).expect("read TLS file");
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(read(&self.ca)))
            .identity(tonic::transport::Identity::from_pem(
                read(&self.cert),
                read(&self.key),
            ));
        tonic::transport::Endpoint::from_shared(endpoint.to_string())
            .expect("endpoint")
            .tls_config(tls)
            .expect("TLS config")
            .connect()
            .await
            .map_err(|e| {
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    text.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                text
            })
    }
}
