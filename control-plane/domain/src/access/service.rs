//! Authentication and authorization of API calls, and the tokens' life: the first admin
//! token at install, then issue and revoke, each written to the audit log.

use std::sync::Arc;

use serde_json::json;

use super::{hash_secret, ports::TokenStore, valid_name, ApiToken, Principal, Role};
use crate::{
    audit::{AuditEntry, AuditKind, AuditLog},
    clock::Clock,
    store::StoreError,
};

/// The name of the token a fresh install creates.
pub const FIRST_ADMIN: &str = "admin";
/// Shortest secret accepted from an operator's own file (Vigil's are 70 characters).
const MIN_SECRET_LEN: usize = 32;

/// Why a request may not go on, or why a token could not be issued or revoked.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    #[error("no API token: send `Authorization: Bearer <token>` (the vigil CLI reads VIGIL_TOKEN or --token-file; a fresh install writes its admin token beside the store, see auth.admin_token_path)")]
    Missing,
    #[error("the API token is not one this control plane issued, or it was revoked")]
    Unknown,
    #[error("token `{name}` is a {has}; this needs the {need} role or above")]
    Forbidden { name: String, has: Role, need: Role },
}

impl Denied {
    /// 401 rather than 403: the caller is nobody Vigil knows.
    pub fn unauthenticated(&self) -> bool {
        matches!(self, Self::Missing | Self::Unknown)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("{0}")]
    BadName(String),
    #[error("a token named `{0}` exists: revoke it first, or pick another name")]
    Exists(String),
    #[error("no token is named `{0}`")]
    NoSuchToken(String),
    #[error("`{0}` is the last admin token: issue another admin token before revoking it, or nobody could manage tokens")]
    LastAdmin(String),
    #[error("the admin token file holds {0} characters; a token needs at least {MIN_SECRET_LEN} (delete the file and restart to have one generated)")]
    WeakSecret(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Access {
    store: Arc<dyn TokenStore>,
    audit: Arc<AuditLog>,
    clock: Arc<dyn Clock>,
}

impl Access {
    pub fn new(store: Arc<dyn TokenStore>, audit: Arc<AuditLog>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            audit,
            clock,
        }
    }

    /// Who carries `secret`, if they may do what needs `need`.
    pub fn authorize(&self, secret: Option<&str>, need: Role) -> Result<Principal, AccessError> {
        let secret = secret
            .filter(|s| !s.trim().is_empty())
            .ok_or(Denied::Missing)?;
        let token = self
            .store
            .token_by_hash(&hash_secret(secret))?
            .ok_or(Denied::Unknown)?;
        if !token.role.permits(need) {
            return Err(Denied::Forbidden {
                name: token.name,
                has: token.role,
                need,
            }
            .into());
        }
        Ok(Principal {
            name: token.name,
            role: token.role,
        })
    }

    /// Makes `secret` (read from, or just written to, the admin token file) the first admin
    /// token, replacing an older one of that name: rotating the file rotates the token.
    /// Whether the store changed.
    pub fn install_admin(&self, secret: &str) -> Result<bool, AccessError> {
        let secret = secret.trim();
        if secret.len() < MIN_SECRET_LEN {
            return Err(AccessError::WeakSecret(secret.len()));
        }
        let hash = hash_secret(secret);
        let known = self.store.tokens()?;
        if known
            .iter()
            .any(|t| t.name == FIRST_ADMIN && t.hash == hash && t.role == Role::Admin)
        {
            return Ok(false);
        }
        let token = self.token(FIRST_ADMIN, Role::Admin, hash, "vigil");
        self.store.put_token(&token)?;
        self.record("vigil", "installed", &token)?;
        Ok(true)
    }

    /// Issues a new token `name` with `role` for `secret` (made by the caller's randomness).
    pub fn issue(
        &self,
        by: &Principal,
        name: &str,
        role: Role,
        secret: &str,
    ) -> Result<ApiToken, AccessError> {
        valid_name(name).map_err(AccessError::BadName)?;
        if self.store.tokens()?.iter().any(|t| t.name == name) {
            return Err(AccessError::Exists(name.into()));
        }
        let token = self.token(name, role, hash_secret(secret), &by.name);
        self.store.put_token(&token)?;
        self.record(&by.name, "issued", &token)?;
        Ok(token)
    }

    /// Revokes `name`; never the last admin token.
    pub fn revoke(&self, by: &Principal, name: &str) -> Result<ApiToken, AccessError> {
        let all = self.store.tokens()?;
        let token = all
            .iter()
            .find(|t| t.name == name)
            .cloned()
            .ok_or_else(|| AccessError::NoSuchToken(name.into()))?;
        let admins = all.iter().filter(|t| t.role == Role::Admin).count();
        if token.role == Role::Admin && admins <= 1 {
            return Err(AccessError::LastAdmin(name.into()));
        }
        if !self.store.delete_token(name)? {
            return Err(AccessError::NoSuchToken(name.into()));
        }
        self.record(&by.name, "revoked", &token)?;
        Ok(token)
    }

    pub fn tokens(&self) -> Result<Vec<ApiToken>, AccessError> {
        Ok(self.store.tokens()?)
    }

    fn token(&self, name: &str, role: Role, hash: String, by: &str) -> ApiToken {
        ApiToken {
            name: name.into(),
            role,
            hash,
            created_unix_ns: self.clock.now_unix_ns(),
            created_by: by.into(),
        }
    }

    /// The audit record names the token and its role, never its secret or hash.
    fn record(&self, actor: &str, what: &str, token: &ApiToken) -> Result<(), StoreError> {
        self.audit.append(AuditEntry {
            kind: AuditKind::Access,
            incident: None,
            actor: actor.into(),
            summary: format!("{what} the {} token `{}`", token.role, token.name),
            body: json!({ "token": token.name, "role": token.role, "change": what }),
        })?;
        Ok(())
    }
}
