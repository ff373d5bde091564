//! The first admin token's file, and the randomness every token's secret comes from.
//!
//! A private file (see `private_file`), like the audit key.

use std::path::Path;

use rand_core::RngCore;

use crate::{adapters::private_file, domain::access::SECRET_PREFIX};

pub use crate::adapters::private_file::PrivateFileError as TokenFileError;

const WHAT: &str = "admin token file";

/// A new secret: the prefix and 256 random bits in hex.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    format!(
        "{SECRET_PREFIX}{}",
        crate::domain::audit::hex::encode(&bytes)
    )
}

/// The admin token in `path`, and whether it was just created.
pub fn load_or_create(path: &Path) -> Result<(String, bool), TokenFileError> {
    if let Some(secret) = private_file::read(WHAT, path)? {
        return Ok((secret.trim().to_string(), false));
    }
    let secret = new_secret();
    private_file::create(WHAT, path, &format!("{secret}\n"))?;
    Ok((secret, true))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_token_is_created_private_then_read_back_and_an_exposed_one_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("sub/admin-token");
        let (secret, created) = load_or_create(&path).expect("create");
        assert!(created && secret.starts_with(SECRET_PREFIX) && secret.len() == 70);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create(&path).expect("read"), (secret, false));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = load_or_create(&path).expect_err("exposed");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        assert_ne!(new_secret(), new_secret());
    }
}
