//! Turning SQLite and JSON failures into the domain's `StoreError`, naming what was being done
//! or which row does not read back.

use crate::domain::store::StoreError;

pub fn backend(action: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::backend(action, e)
}

pub fn json_err(action: &'static str) -> impl FnOnce(serde_json::Error) -> StoreError {
    move |e| StoreError::backend(action, e)
}

/// A stored value that does not read back.
pub fn corrupt(
    what: &'static str,
    key: impl Into<String>,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> StoreError {
    StoreError::Corrupt {
        what,
        key: key.into(),
        source: source.into(),
    }
}
