//! A token as it is kept (its hash, never its secret) and who a request turned out to be.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Role;
use crate::audit::hex;

/// Every secret Vigil issues starts so, which makes one easy to spot in a leaked file and
/// to refuse in a log line.
pub const SECRET_PREFIX: &str = "vigil_";

/// A token as stored: its name, role and the SHA-256 of its secret. A plain hash is enough
/// (no password hashing): secrets are 256 random bits, not something a person chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub name: String,
    pub role: Role,
    #[serde(skip_serializing)]
    pub hash: String,
    pub created_unix_ns: i64,
    /// Who issued it (`vigil` for the first admin token).
    pub created_by: String,
}

/// Who a request is: the name of the token it carried, and that token's role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(&Sha256::digest(secret.trim().as_bytes()))
}

/// Token names are what the audit log records as the actor: short, printable, no spaces.
pub fn valid_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a token name: 1 to 64 of letters, digits, `-`, `_`, `.`, `@`"
        ))
    }
}
