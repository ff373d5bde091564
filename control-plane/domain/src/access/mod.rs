//! Who may call Vigil's API: named tokens, each with a role (viewer < approver < admin), kept
//! only as SHA-256 hashes. The API's adapters ask `Access` who a bearer is (a missing or
//! unknown token is *unauthenticated*, 401) and whether that role may do what was asked (a
//! known token with too small a role is *forbidden*, 403); issuing and revoking a token is
//! written to the audit log.

pub mod ports;
mod role;
mod service;
mod token;

#[cfg(test)]
mod tests;

pub use role::Role;
pub use service::{Access, AccessError, Denied, FIRST_ADMIN};
pub use token::{hash_secret, valid_name, ApiToken, Principal, SECRET_PREFIX};
