//! API tokens: a row each, keyed by name, found by the hash of their secret.

use rusqlite::{params, OptionalExtension, Row};

use super::{
    errors::{backend, corrupt},
    SqliteStore,
};
use crate::domain::{
    access::{ports::TokenStore, ApiToken},
    store::StoreError,
};

const COLUMNS: &str = "name, role, hash, created_unix_ns, created_by";

fn raw(r: &Row<'_>) -> rusqlite::Result<(String, String, String, i64, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn decode(
    (name, role, hash, created_unix_ns, created_by): (String, String, String, i64, String),
) -> Result<ApiToken, StoreError> {
    let role = role
        .parse()
        .map_err(|e: String| corrupt("API token", name.clone(), std::io::Error::other(e)))?;
    Ok(ApiToken {
        name,
        role,
        hash,
        created_unix_ns,
        created_by,
    })
}

impl TokenStore for SqliteStore {
    fn put_token(&self, t: &ApiToken) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO api_tokens (name, role, hash, created_unix_ns, created_by) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    t.name,
                    t.role.as_str(),
                    t.hash,
                    t.created_unix_ns,
                    t.created_by
                ],
            )
            .map_err(backend("storing an API token"))?;
        Ok(())
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>, StoreError> {
        self.conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM api_tokens WHERE hash = ?1"),
                [hash],
                raw,
            )
            .optional()
            .map_err(backend("reading an API token"))?
            .map(decode)
            .transpose()
    }

    fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!("SELECT {COLUMNS} FROM api_tokens ORDER BY name"))
            .map_err(backend("reading API tokens"))?;
        let rows = stmt
            .query_map([], raw)
            .map_err(backend("reading API tokens"))?;
        rows.map(|r| decode(r.map_err(backend("reading API tokens"))?))
            .collect()
    }

    fn delete_token(&self, name: &str) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute("DELETE FROM api_tokens WHERE name = ?1", [name])
            .map_err(backend("revoking an API token"))?;
        Ok(n > 0)
    }
}
