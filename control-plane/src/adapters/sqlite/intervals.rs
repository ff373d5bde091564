//! Metric intervals in the SQLite store: one row per (node, interval) for deduplication and
//! one row per sample, its observation kept as JSON and its kind, workload and time indexed.

use rusqlite::{params, OptionalExtension};

use super::{
    errors::{backend, corrupt, json_err},
    filter::Filter,
    SqliteStore,
};
use crate::domain::{
    interval::{
        ports::{IntervalStore, SampleQuery},
        FlowObservation, MapUsage, MetricInterval, Sample, SampleKind, StoredSample,
    },
    store::StoreError,
};

/// A stored sample's observation, read as its kind says. A row that does not read back is an
/// error naming it, never a default.
fn decode_sample(id: i64, kind: &str, text: &str) -> Result<Sample, StoreError> {
    let key = || format!("#{id}");
    let bad = |e: serde_json::Error| corrupt("sample", key(), e);
    Ok(match SampleKind::parse(kind) {
        Some(SampleKind::Flow) => Sample::Flow(serde_json::from_str(text).map_err(bad)?),
        Some(SampleKind::Syscall) => Sample::Syscall(serde_json::from_str(text).map_err(bad)?),
        Some(SampleKind::Latency) => Sample::Latency(serde_json::from_str(text).map_err(bad)?),
        Some(SampleKind::Dns) => Sample::Dns(serde_json::from_str(text).map_err(bad)?),
        Some(SampleKind::Request) => Sample::Request(serde_json::from_str(text).map_err(bad)?),
        Some(SampleKind::Resource) => Sample::Resource(serde_json::from_str(text).map_err(bad)?),
        None => {
            return Err(corrupt(
                "sample",
                key(),
                format!("unknown sample kind {kind:?}"),
            ))
        }
    })
}

impl SqliteStore {
    /// Deletes intervals and samples that ended before `before_unix_ns`; returns samples
    /// deleted.
    fn delete_samples_before(&self, before_unix_ns: i64) -> Result<usize, StoreError> {
        let conn = self.conn();
        let n = conn
            .execute(
                "DELETE FROM samples WHERE end_unix_ns < ?1",
                [before_unix_ns],
            )
            .map_err(backend("pruning samples"))?;
        conn.execute(
            "DELETE FROM metric_intervals WHERE end_unix_ns < ?1 AND seq < \
             (SELECT MAX(seq) FROM metric_intervals m2 WHERE m2.node = metric_intervals.node)",
            [before_unix_ns],
        )
        .map_err(backend("pruning intervals"))?;
        Ok(n)
    }
}

fn encode<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(json_err("encoding a sample"))
}

impl IntervalStore for SqliteStore {
    fn prune_samples(&self, before_unix_ns: i64) -> Result<usize, StoreError> {
        self.delete_samples_before(before_unix_ns)
    }

    fn insert_interval(&self, i: &MetricInterval) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction()
            .map_err(backend("starting a transaction"))?;
        let maps = serde_json::to_string(&i.maps).map_err(json_err("encoding map usage"))?;
        let new = tx
            .execute(
                "INSERT OR IGNORE INTO metric_intervals (node, seq, start_unix_ns, end_unix_ns, maps) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![i.node, i.seq as i64, i.start_unix_ns, i.end_unix_ns, maps],
            )
            .map_err(backend("inserting an interval"))?
            == 1;
        if new {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO samples (node, interval_seq, start_unix_ns, end_unix_ns, kind, \
                     workload_key, sample) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(backend("preparing the sample insert"))?;
            let mut put = |kind: SampleKind, key: &str, json: String| {
                // (`key` is the workload's entity id, indexed for `?workload=`.)
                stmt.execute(params![
                    i.node,
                    i.seq as i64,
                    i.start_unix_ns,
                    i.end_unix_ns,
                    kind.as_str(),
                    key,
                    json
                ])
                .map(|_| ())
                .map_err(backend("inserting a sample"))
            };
            for f in &i.flows {
                put(SampleKind::Flow, f.workload.key.as_str(), encode(f)?)?;
            }
            for x in &i.syscalls {
                put(SampleKind::Syscall, x.workload.key.as_str(), encode(x)?)?;
            }
            for l in &i.latencies {
                put(SampleKind::Latency, l.workload.key.as_str(), encode(l)?)?;
            }
            for d in &i.dns {
                put(SampleKind::Dns, d.workload.key.as_str(), encode(d)?)?;
            }
            for r in &i.requests {
                put(SampleKind::Request, r.workload.key.as_str(), encode(r)?)?;
            }
            for r in &i.resources {
                put(SampleKind::Resource, r.workload.key.as_str(), encode(r)?)?;
            }
        }
        tx.commit().map_err(backend("committing an interval"))?;
        Ok(new)
    }

    fn last_interval_seq(&self, node: &str) -> Result<u64, StoreError> {
        let last: Option<i64> = self
            .conn()
            .query_row(
                "SELECT MAX(seq) FROM metric_intervals WHERE node = ?1",
                [node],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend("reading the last interval"))?
            .flatten();
        Ok(last.map_or(0, |s| s as u64))
    }

    fn map_usage(&self, node: &str) -> Result<Vec<MapUsage>, StoreError> {
        let text: Option<String> = self
            .conn()
            .query_row(
                "SELECT maps FROM metric_intervals WHERE node = ?1 ORDER BY seq DESC LIMIT 1",
                [node],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend("reading map usage"))?;
        text.map_or(Ok(Vec::new()), |t| {
            serde_json::from_str(&t).map_err(json_err("decoding map usage"))
        })
    }

    fn samples(&self, q: &SampleQuery) -> Result<Vec<StoredSample>, StoreError> {
        let filter = Filter::default()
            .and("kind", "=", q.kind.map(|k| k.as_str().to_string()))
            .and("node", "=", q.node.clone())
            .and("workload_key", "=", q.workload_key.clone())
            .and("end_unix_ns", ">=", q.since_unix_ns);
        let sql = format!(
            "SELECT node, interval_seq, start_unix_ns, end_unix_ns, kind, workload_key, sample, id \
             FROM samples{}",
            filter.sql(" ORDER BY end_unix_ns DESC, id DESC LIMIT ?")
        );
        let mut params = filter.params;
        params.push(rusqlite::types::Value::Integer(
            q.limit.min(i64::MAX as usize) as i64,
        ));
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&sql)
            .map_err(backend("preparing the sample query"))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params), |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, i64>(7)?,
                ))
            })
            .map_err(backend("querying samples"))?;
        let rows = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend("reading samples"))?;
        // Decoded after the connection is free: ingest and detection wait on it, not on JSON.
        drop(stmt);
        drop(conn);
        let mut out = Vec::with_capacity(rows.len());
        for (node, interval_seq, start_unix_ns, end_unix_ns, kind, workload_key, text, id) in rows {
            let sample = decode_sample(id, &kind, &text)?;
            out.push(StoredSample {
                node,
                interval_seq,
                start_unix_ns,
                end_unix_ns,
                kind: sample.kind(),
                workload_key,
                sample,
            });
        }
        Ok(out)
    }

    fn intervals_since(&self, since: i64) -> Result<Vec<MetricInterval>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT i.node, i.seq, i.start_unix_ns, i.end_unix_ns, s.sample \
                 FROM metric_intervals i LEFT JOIN samples s \
                 ON s.node = i.node AND s.interval_seq = i.seq AND s.kind = 'flow' \
                 WHERE i.end_unix_ns >= ?1 ORDER BY i.end_unix_ns, i.node, i.seq",
            )
            .map_err(backend("preparing the interval query"))?;
        let mut rows = stmt.query([since]).map_err(backend("querying intervals"))?;
        let mut out: Vec<MetricInterval> = Vec::new();
        while let Some(r) = rows.next().map_err(backend("reading intervals"))? {
            let node: String = r.get(0).map_err(backend("reading intervals"))?;
            let seq = r.get::<_, i64>(1).map_err(backend("reading intervals"))? as u64;
            let flow: Option<String> = r.get(4).map_err(backend("reading intervals"))?;
            let same = out.last().is_some_and(|l| l.node == node && l.seq == seq);
            if !same {
                out.push(MetricInterval {
                    node,
                    seq,
                    start_unix_ns: r.get(2).map_err(backend("reading intervals"))?,
                    end_unix_ns: r.get(3).map_err(backend("reading intervals"))?,
                    flows: Vec::new(),
                    syscalls: Vec::new(),
                    latencies: Vec::new(),
                    dns: Vec::new(),
                    maps: Vec::new(),
                    requests: Vec::new(),
                    resources: Vec::new(),
                    filesystems: Vec::new(),
                });
            }
            if let (Some(text), Some(last)) = (flow, out.last_mut()) {
                let f: FlowObservation =
                    serde_json::from_str(&text).map_err(json_err("decoding a stored flow"))?;
                last.flows.push(f);
            }
        }
        Ok(out)
    }
}
