//! Ships batches to the control plane: hello, then push; reconnects with exponential backoff.
//!
//! Sequence numbers are assigned when a batch is first formed and never change, so a batch
//! retried after a lost ack is recognised by the control plane as a duplicate. `Hello`
//! returns the highest sequence the control plane has for this node, so a restarted agent
//! continues the sequence instead of reusing numbers.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use tonic::{transport::Channel, Code};
use tracing::{debug, error, info, warn};
use vigil_proto::v1::{self, agent_ingest_client::AgentIngestClient};

use super::{
    buffer::EventBuffer,
    connection::{error_chain, ConnectError, Connector, Credentials},
};
use crate::{
    config::AgentConfig, governor::Degraded, kernel::reader::ReaderStats,
    metrics::queue::MetricQueue,
};

/// What the shipper is doing, for health reporting and draining at shutdown.
#[derive(Debug, Default)]
pub struct ShipperState {
    pub connected: AtomicBool,
    pub acked_through_seq: AtomicU64,
    /// Events in the batch currently being sent (or waiting to be resent).
    pub in_flight: AtomicUsize,
    /// Events the control plane refused as invalid (not retried).
    pub rejected: AtomicU64,
    /// The next sequence number to assign (what the sequence file writes down).
    pub next_seq: AtomicU64,
}

pub struct Shipper {
    config: AgentConfig,
    connector: Connector,
    hello: v1::NodeHello,
    buffer: Arc<EventBuffer>,
    reader_stats: Arc<ReaderStats>,
    metrics: Arc<MetricQueue>,
    degraded: Arc<Degraded>,
    /// Where this run's numbering starts: past what an earlier run assigned or held.
    first_seq: u64,
    pub state: Arc<ShipperState>,
}

/// How long an idle stream waits before sending changed counters on their own.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

enum Outcome {
    /// The connection failed; reconnect.
    Reconnect(tonic::Status),
    /// The TLS files changed: reconnect now with them.
    Rotated,
}

impl Shipper {
    /// Fails on an endpoint that is not a URI (config validation already refuses those) or
    /// TLS files that do not load.
    pub fn new(
        config: AgentConfig,
        hello: v1::NodeHello,
        buffer: Arc<EventBuffer>,
        reader_stats: Arc<ReaderStats>,
        metrics: Arc<MetricQueue>,
        degraded: Arc<Degraded>,
        first_seq: u64,
    ) -> Result<Self, ConnectError> {
        Ok(Self {
            connector: Connector::new(&config)?,
            config,
            hello,
            buffer,
            reader_stats,
            metrics,
            degraded,
            first_seq,
            state: Arc::default(),
        })
    }

    fn stats(&self) -> v1::AgentStats {
        let mode = self.degraded.mode();
        v1::AgentStats {
            kernel_dropped: self.reader_stats.kernel_dropped.load(Ordering::Relaxed),
            buffer_dropped: self.buffer.dropped(),
            events_read: self.reader_stats.events_read.load(Ordering::Relaxed),
            malformed: self.reader_stats.malformed.load(Ordering::Relaxed),
            metric_intervals_dropped: self.metrics.dropped(),
            shed: mode.shed,
            degraded_cause: mode.cause.unwrap_or_default(),
        }
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        let initial = Duration::from_millis(self.config.reconnect.initial_backoff_ms);
        let max = Duration::from_millis(self.config.reconnect.max_backoff_ms);
        let mut backoff = initial;
        let mut next_seq: u64 = self.first_seq;
        self.state.next_seq.store(next_seq, Ordering::Relaxed);
        let mut in_flight: Option<v1::EventBatch> = None;
        loop {
            let (mut client, credentials) = match self.connector.connect().await {
                Ok(c) => c,
                Err(e) => {
                    warn!(endpoint = %self.config.control_plane.endpoint, error = %error_chain(&e),
                        retry_in_ms = backoff.as_millis() as u64, buffered = self.buffer.len(),
                        "control plane unreachable");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(max);
                    continue;
                }
            };
            match client.hello(self.hello.clone()).await {
                Ok(ack) => {
                    let last = ack.into_inner().last_seq;
                    next_seq = next_seq.max(last + 1);
                    self.state.next_seq.store(next_seq, Ordering::Relaxed);
                    info!(
                        last_seq = last,
                        next_seq,
                        buffered = self.buffer.len(),
                        "connected to control plane"
                    );
                }
                Err(status) => {
                    warn!(%status, retry_in_ms = backoff.as_millis() as u64, "hello failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(max);
                    continue;
                }
            }
            backoff = initial;
            self.state.connected.store(true, Ordering::Relaxed);
            let outcome = self
                .push_loop(&mut client, credentials, &mut next_seq, &mut in_flight)
                .await;
            self.state.connected.store(false, Ordering::Relaxed);
            let Outcome::Reconnect(status) = outcome else {
                continue;
            };
            warn!(%status, pending = in_flight.as_ref().map_or(0, |b| b.events.len()),
                "lost the control plane; will resend the unacknowledged batch");
            tokio::time::sleep(backoff).await;
        }
    }

    async fn push_loop(
        &self,
        client: &mut AgentIngestClient<Channel>,
        credentials: Credentials,
        next_seq: &mut u64,
        in_flight: &mut Option<v1::EventBatch>,
    ) -> Outcome {
        // Loss counters must reach the control plane even when no event follows the loss.
        let mut last_sent_stats: Option<v1::AgentStats> = None;
        let mut checked = Instant::now();
        loop {
            // Between batches (nothing in flight), at most once a second: rotated TLS files
            // take a new connection, so the certificate in use is the one on disk.
            if in_flight.is_none() && checked.elapsed() >= STATS_INTERVAL {
                checked = Instant::now();
                if self.connector.rotated(credentials) {
                    info!("the TLS certificates changed on disk: reconnecting with them");
                    return Outcome::Rotated;
                }
            }
            let mut batch = match in_flight.take() {
                Some(b) => b,
                None => {
                    let next = self
                        .buffer
                        .next_batch(self.config.batch.max_events, self.config.flush_interval());
                    let mut events = match tokio::time::timeout(STATS_INTERVAL, next).await {
                        Ok(events) => events,
                        // Idle: send the counters alone if they changed.
                        Err(_) if last_sent_stats.as_ref() != Some(&self.stats()) => Vec::new(),
                        Err(_) => continue,
                    };
                    for e in &mut events {
                        e.seq = *next_seq;
                        *next_seq += 1;
                    }
                    self.state.next_seq.store(*next_seq, Ordering::Relaxed);
                    v1::EventBatch {
                        node_name: self.hello.node_name.clone(),
                        events,
                        stats: None,
                    }
                }
            };
            batch.stats = Some(self.stats());
            last_sent_stats.clone_from(&batch.stats);
            self.state
                .in_flight
                .store(batch.events.len(), Ordering::Relaxed);
            match client.push_events(batch.clone()).await {
                Ok(ack) => {
                    let ack = ack.into_inner();
                    debug!(
                        acked = ack.acked_through_seq,
                        accepted = ack.accepted,
                        duplicates = ack.duplicates,
                        "batch acknowledged"
                    );
                    self.state
                        .acked_through_seq
                        .fetch_max(ack.acked_through_seq, Ordering::Relaxed);
                    self.state.in_flight.store(0, Ordering::Relaxed);
                }
                Err(status) if status.code() == Code::InvalidArgument => {
                    // Retrying a batch the control plane calls invalid would block the stream
                    // forever; drop it loudly instead.
                    error!(%status, events = batch.events.len(), "control plane rejected a batch as invalid; dropping it");
                    self.state
                        .rejected
                        .fetch_add(batch.events.len() as u64, Ordering::Relaxed);
                    self.state.in_flight.store(0, Ordering::Relaxed);
                }
                Err(status) => {
                    *in_flight = Some(batch);
                    return Outcome::Reconnect(status);
                }
            }
        }
    }
}
