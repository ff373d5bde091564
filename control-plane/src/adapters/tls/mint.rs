//! `vigil certs`: a development certificate authority and the certificates it signs (rcgen),
//! so the demo and the tests run with mutual TLS on. In a cluster, cert-manager issues them
//! instead (see deploy/README.md); these files have the same shape.
//!
//! The CA is `ca.pem` + `ca.key` in a directory; each certificate `NAME.pem` + `NAME.key`
//! beside them. An agent's certificate names its node (the control plane lets it speak for
//! that node only); the control plane's names the hosts agents dial.

use std::{
    io::Write,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// The authority's subject: fixed, so `issue` can sign with the stored key at any time.
const CA_NAME: &str = "Vigil development CA";

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("{0} already exists: a CA is never overwritten (remove the directory's ca.pem and ca.key to start over, and reissue every certificate)")]
    Exists(PathBuf),
    #[error("no CA in {0}: run `vigil certs init --dir {0}` first")]
    NoCa(PathBuf),
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0:?} is not a valid certificate name: use letters, digits, '.', '-' (a node or host name)")]
    Name(String),
    #[error("a validity of {0} days is out of range")]
    Days(u32),
    #[error("cannot build the certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A listener (the control plane): server authentication.
    Server,
    /// An agent: client authentication, speaking for the node it names.
    Agent,
}

/// The files a certificate was written to.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Valid from yesterday (clocks a little behind still accept it) for `days`.
fn set_validity(params: &mut CertificateParams, days: u32) -> Result<(), MintError> {
    let today = jiff::Zoned::now().date();
    let day = |offset: i64| {
        today
            .checked_add(jiff::Span::new().days(offset))
            .map_err(|_| MintError::Days(days))
    };
    let (from, until) = (day(-1)?, day(i64::from(days))?);
    let ymd = |d: jiff::civil::Date| {
        rcgen::date_time_ymd(i32::from(d.year()), d.month() as u8, d.day() as u8)
    };
    params.not_before = ymd(from);
    params.not_after = ymd(until);
    Ok(())
}

fn ca_params(days: u32) -> Result<CertificateParams, MintError> {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, days)?;
    Ok(params)
}

fn ca_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("ca.pem"), dir.join("ca.key"))
}

/// Writes `text` to `path` through a temporary file and a rename, so a reader (the control
/// plane's reload, an agent) sees the old file or the new one, never half of one.
fn replace(path: &Path, text: &str, mode: u32) -> Result<(), MintError> {
    let write = |source| MintError::Write {
        path: path.into(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(write)?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(write)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .map_err(write)?;
    std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(mode)).map_err(write)?;
    file.persist(path).map_err(|e| write(e.error))?;
    Ok(())
}

/// Creates a CA in `dir`, valid for `days`; refuses to replace one.
pub fn init(dir: &Path, days: u32) -> Result<Issued, MintError> {
    let (cert, key) = ca_paths(dir);
    for path in [&cert, &key] {
        if path.exists() {
            return Err(MintError::Exists(path.clone()));
        }
    }
    let key_pair = KeyPair::generate()?;
    let ca = ca_params(days)?.self_signed(&key_pair)?;
    replace(&key, &key_pair.serialize_pem(), 0o600)?;
    replace(&cert, &ca.pem(), 0o644)?;
    Ok(Issued { cert, key })
}

fn load_ca(dir: &Path) -> Result<(Certificate, KeyPair), MintError> {
    let (cert, key) = ca_paths(dir);
    if !cert.exists() || !key.exists() {
        return Err(MintError::NoCa(dir.into()));
    }
    let pem = std::fs::read_to_string(&key).map_err(|source| MintError::Read {
        path: key.clone(),
        source,
    })?;
    let key_pair = KeyPair::from_pem(&pem)?;
    // Signing needs the issuer's name and key only: the same subject, re-signed with the
    // stored key, issues certificates that chain to the `ca.pem` on disk.
    let ca = ca_params(1)?.self_signed(&key_pair)?;
    Ok((ca, key_pair))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// Issues `NAME.pem`/`NAME.key` in `dir` from its CA, replacing any earlier pair (a
/// rotation). The certificate's common name is `name`; its DNS names `name` and `sans`
/// (IP addresses among `sans` become IP names).
pub fn issue(
    dir: &Path,
    role: Role,
    name: &str,
    sans: &[String],
    days: u32,
) -> Result<Issued, MintError> {
    if !valid_name(name) {
        return Err(MintError::Name(name.into()));
    }
    let (ca, ca_key) = load_ca(dir)?;
    let mut names = vec![name.to_string()];
    names.extend(sans.iter().cloned());
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![match role {
        Role::Server => ExtendedKeyUsagePurpose::ServerAuth,
        Role::Agent => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    set_validity(&mut params, days)?;
    let key_pair = KeyPair::generate()?;
    let cert = params.signed_by(&key_pair, &ca, &ca_key)?;
    let issued = Issued {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    };
    // The key first: a reader that sees the new certificate finds its key already there
    // (one that sees the new key with the old certificate refuses the pair and retries).
    replace(&issued.key, &key_pair.serialize_pem(), 0o600)?;
    replace(&issued.cert, &cert.pem(), 0o644)?;
    Ok(issued)
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::pem::PemObject;

    use super::*;

    #[test]
    fn issued_certificates_chain_to_the_ca_and_name_what_they_were_issued_for() {
        let dir = tempfile::tempdir().expect("dir");
        init(dir.path(), 30).expect("init");
        assert!(matches!(init(dir.path(), 30), Err(MintError::Exists(_))));
        let agent = issue(dir.path(), Role::Agent, "node-a", &[], 30).expect("issue");
        let key_mode = std::fs::metadata(&agent.key)
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);
        let pem = std::fs::read(&agent.cert).expect("read");
        let der = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
            .next()
            .expect("one")
            .expect("pem");
        let identity = super::super::PeerIdentity::of(&der).expect("parse");
        assert!(
            identity.allows("node-a") && !identity.allows("node-b"),
            "{identity:?}"
        );
        assert!(matches!(
            issue(dir.path(), Role::Agent, "../x", &[], 30),
            Err(MintError::Name(_))
        ));
        let empty = tempfile::tempdir().expect("dir");
        assert!(matches!(
            issue(empty.path(), Role::Server, "cp", &[], 30),
            Err(MintError::NoCa(_))
        ));
    }
}
