//! Where tokens are kept.

use super::ApiToken;
use crate::store::StoreError;

pub trait TokenStore: Send + Sync {
    /// Adds a token, or replaces the one of the same name.
    fn put_token(&self, token: &ApiToken) -> Result<(), StoreError>;
    fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>, StoreError>;
    /// Every token, by name.
    fn tokens(&self) -> Result<Vec<ApiToken>, StoreError>;
    /// Whether a token of that name was there to delete.
    fn delete_token(&self, name: &str) -> Result<bool, StoreError>;
}
