//! The lab's TLS: a certificate authority the lab's clients trust, and the certificate web
//! serves on :443, signed by it. The expired-certificate fault issues web a new one from the
//! same authority and key with its validity in the past, so clients that verify (curl, the
//! lab's own client) fail the handshake exactly as they would on a real lapsed certificate.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::error::{LabError, Result};

/// The authority's name: fixed, so it can re-sign with its stored key at any time.
const CA_NAME: &str = "vigil-lab CA";
const DAY: i64 = 86_400;

/// Where the lab's TLS files live.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The authority's certificate (what clients trust).
    pub ca_cert: PathBuf,
    ca_key: PathBuf,
    /// What web serves.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Names and addresses the certificate is valid for.
    names: Vec<String>,
}

fn invalid(what: &str) -> impl FnOnce(rcgen::Error) -> LabError + '_ {
    move |e| LabError::Invalid(format!("{what}: {e}"))
}

fn at(unix: i64) -> Result<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map_err(|e| LabError::Invalid(format!("certificate time {unix}: {e}")))
}

fn now_unix() -> i64 {
    (crate::state::now_unix_ms() / 1000) as i64
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(LabError::io(format!("writing {}", path.display())))?;
    f.write_all(text.as_bytes())
        .map_err(LabError::io(format!("writing {}", path.display())))
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(LabError::io(format!("reading {}", path.display())))
}

impl TlsFiles {
    /// A new authority and a certificate for `names` valid for a year, under `dir`.
    pub fn create(dir: &Path, names: Vec<String>) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(LabError::io(format!("creating {}", dir.display())))?;
        let files = Self {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca.key"),
            cert: dir.join("web.pem"),
            key: dir.join("web.key"),
            names,
        };
        let ca_key = KeyPair::generate().map_err(invalid("making the lab CA key"))?;
        let ca = ca_certificate(&ca_key)?;
        std::fs::write(&files.ca_cert, ca.pem())
            .map_err(LabError::io(format!("writing {}", files.ca_cert.display())))?;
        write_private(&files.ca_key, &ca_key.serialize_pem())?;
        let key = KeyPair::generate().map_err(invalid("making web's key"))?;
        write_private(&files.key, &key.serialize_pem())?;
        let now = now_unix();
        let pem = files.issue(now - DAY, now + 365 * DAY)?;
        std::fs::write(&files.cert, pem)
            .map_err(LabError::io(format!("writing {}", files.cert.display())))?;
        Ok(files)
    }

    /// A certificate for web's key valid from `not_before` to `not_after` (Unix seconds),
    /// signed by the lab's authority, as PEM.
    pub fn issue(&self, not_before: i64, not_after: i64) -> Result<String> {
        let ca_key = KeyPair::from_pem(&read(&self.ca_key)?).map_err(invalid("the lab CA key"))?;
        let ca = ca_certificate(&ca_key)?;
        let key = KeyPair::from_pem(&read(&self.key)?).map_err(invalid("web's key"))?;
        let mut params =
            CertificateParams::new(self.names.clone()).map_err(invalid("web's names"))?;
        params.distinguished_name.push(
            DnType::CommonName,
            self.names.first().cloned().unwrap_or_default(),
        );
        params.not_before = at(not_before)?;
        params.not_after = at(not_after)?;
        let cert = params
            .signed_by(&key, &ca, &ca_key)
            .map_err(invalid("signing web's certificate"))?;
        Ok(cert.pem())
    }

    /// The certificate web serves now, as PEM.
    pub fn served(&self) -> Result<String> {
        read(&self.cert)
    }
}

/// The authority's certificate for `key`. Re-made with the same name and key whenever it
/// signs: what a client checks is the issuer's name and the signature, both unchanged.
fn ca_certificate(key: &KeyPair) -> Result<Certificate> {
    let mut params = CertificateParams::new(Vec::new()).map_err(invalid("the lab CA"))?;
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = at(0)?;
    params.not_after = at(now_unix() + 3650 * DAY)?;
    params
        .self_signed(key)
        .map_err(invalid("self-signing the lab CA"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_certificates_with_the_asked_validity_from_one_authority() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = TlsFiles::create(dir.path(), vec!["web.lab".into(), "10.0.0.1".into()])
            .expect("create");
        let now = now_unix();
        let expired = files.issue(now - 30 * DAY, now - DAY).expect("issue");
        assert!(expired.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(expired, files.served().expect("served"));
        // openssl verifies the served one against the authority and refuses the expired one.
        let verify = |pem: &str| {
            let path = dir.path().join("check.pem");
            std::fs::write(&path, pem).expect("write");
            std::process::Command::new("openssl")
                .args(["verify", "-CAfile"])
                .arg(&files.ca_cert)
                .arg(&path)
                .output()
                .expect("run openssl verify")
        };
        let good = verify(&files.served().expect("served"));
        assert!(
            good.status.success(),
            "{}",
            String::from_utf8_lossy(&good.stdout)
        );
        let bad = verify(&expired);
        assert!(!bad.status.success());
        assert!(
            String::from_utf8_lossy(&bad.stdout).contains("expired")
                || String::from_utf8_lossy(&bad.stderr).contains("expired"),
            "{bad:?}"
        );
    }
}
