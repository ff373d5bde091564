//! The embedded store: one SQLite file (WAL) for events, incidents, nodes, baselines and metric
//! intervals, one module per port it implements.
//!
//! Domain values that the store never filters on (workload details, event payloads, incident
//! attributes) are kept as JSON (`codec`); everything queried has its own column and index. A
//! stored value that no longer reads back is an error naming the row (`StoreError::Corrupt`),
//! never a silent default.

mod audit;
mod baselines;
mod codec;
mod diagnoses;
mod errors;
mod events;
mod feedback;
mod filter;
mod incidents;
mod intervals;
mod nodes;
mod remediation;
mod schema;
mod tokens;

use std::{path::Path, sync::Mutex};

use rusqlite::Connection;

use self::errors::backend;
use crate::domain::store::StoreError;

pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::backend("creating the store directory", e))?;
        }
        let conn = Connection::open(path).map_err(backend("opening the store"))?;
        Self::init(conn)
    }

    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(backend("opening the store"))?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend("configuring the store"))?;
        conn.execute_batch(schema::SCHEMA)
            .map_err(backend("creating the schema"))?;
        conn.execute_batch(schema::INTERVALS)
            .map_err(backend("creating the interval schema"))?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}
