//! Detection baselines, keyed by their subject (encoded by `codec`).

use rusqlite::params;

use super::{codec::BaselineCodec, errors::backend, SqliteStore};
use crate::domain::{
    detection::{
        baseline::EntityBaseline,
        ports::{BaselineStore, StoredBaseline},
    },
    entity::Subject,
    store::StoreError,
};

impl BaselineStore for SqliteStore {
    fn load_baselines(&self) -> Result<Vec<StoredBaseline>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT entity, state FROM baselines ORDER BY entity")
            .map_err(backend("reading baselines"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(backend("reading baselines"))?;
        rows.map(|row| {
            let (key, state) = row.map_err(backend("reading baselines"))?;
            let state = BaselineCodec::decode(&key, &state);
            Ok(StoredBaseline { key, state })
        })
        .collect()
    }

    fn save_baselines(&self, baselines: &[(Subject, EntityBaseline)]) -> Result<(), StoreError> {
        // Encode all before writing any: a baseline that cannot be encoded fails the save.
        let rows: Vec<(String, String)> = baselines
            .iter()
            .map(|(subject, b)| BaselineCodec::encode(subject, b))
            .collect::<Result<_, _>>()?;
        let mut conn = self.conn();
        let tx = conn
            .transaction()
            .map_err(backend("starting a transaction"))?;
        {
            let mut stmt = tx
                .prepare(
                    "INSERT INTO baselines (entity, state) VALUES (?1, ?2) \
                     ON CONFLICT (entity) DO UPDATE SET state = excluded.state",
                )
                .map_err(backend("saving baselines"))?;
            for (entity, state) in &rows {
                stmt.execute(params![entity, state])
                    .map_err(backend("saving baselines"))?;
            }
        }
        tx.commit().map_err(backend("committing baselines"))
    }
}
