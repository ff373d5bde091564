//! The Ed25519 key that signs the audit log's checkpoints: a file of its 32-byte seed in hex,
//! created on first start with mode 0600 (never overwritten), and its public half beside it
//! (`<key>.pub`) for whoever verifies the log elsewhere.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer as _, SigningKey};

use crate::{
    adapters::private_file::{self, PrivateFileError},
    domain::audit::{hex, ports::Signer},
};

const WHAT: &str = "audit signing key";

#[derive(Debug, thiserror::Error)]
pub enum AuditKeyError {
    #[error(transparent)]
    File(#[from] PrivateFileError),
    #[error("the audit signing key {path} is not 64 hex characters (a 32-byte Ed25519 seed); restore it from a backup, or move it away to start a new key (the old checkpoints then verify only against the old public key)")]
    Malformed { path: PathBuf },
    #[error("cannot write the audit signing key's public half {path}")]
    Public {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub struct KeyFile {
    key: SigningKey,
}

impl KeyFile {
    /// Reads the key at `path`, or creates one there if there is none.
    pub fn load_or_create(path: &Path) -> Result<Self, AuditKeyError> {
        let Some(text) = private_file::read(WHAT, path)? else {
            return Self::create(path);
        };
        let seed = hex::decode::<32>(&text)
            .ok_or_else(|| AuditKeyError::Malformed { path: path.into() })?;
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    fn create(path: &Path) -> Result<Self, AuditKeyError> {
        let key = Self {
            key: SigningKey::generate(&mut rand_core::OsRng),
        };
        private_file::create(
            WHAT,
            path,
            &format!("{}\n", hex::encode(&key.key.to_bytes())),
        )?;
        let mut pub_path = path.as_os_str().to_owned();
        pub_path.push(".pub");
        let public = hex::encode(&key.public_key());
        std::fs::write(&pub_path, format!("{public}\n")).map_err(|source| {
            AuditKeyError::Public {
                path: pub_path.into(),
                source,
            }
        })?;
        tracing::info!(key = %path.display(), public_key = %public, "created the audit log's signing key");
        Ok(key)
    }
}

impl Signer for KeyFile {
    fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_key_is_created_private_then_read_back_the_same() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("k/audit.key");
        let first = KeyFile::load_or_create(&path).expect("create");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = KeyFile::load_or_create(&path).expect("read");
        assert_eq!(first.public_key(), again.public_key());
        let published = std::fs::read_to_string(dir.path().join("k/audit.key.pub")).expect("pub");
        assert_eq!(published.trim(), hex::encode(&first.public_key()));
    }

    #[test]
    fn a_readable_or_garbled_key_is_refused_naming_the_fix() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("audit.key");
        std::fs::write(&path, "not a key\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let e = KeyFile::load_or_create(&path).err().expect("garbled");
        assert!(e.to_string().contains("64 hex characters"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = KeyFile::load_or_create(&path).err().expect("exposed");
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }
}
