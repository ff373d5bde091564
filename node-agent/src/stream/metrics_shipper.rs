//! Ships metric batches: hello (for the last stored interval), then one `PushMetrics` per
//! interval, oldest first. Interval numbers are assigned when a batch is first sent and kept
//! across retries, so the control plane can drop a retried duplicate.

use std::{sync::Arc, time::Duration};

use tonic::{transport::Channel, Code};
use tracing::{debug, error, info, warn};
use vigil_proto::v1::{self, agent_ingest_client::AgentIngestClient};

use super::connection::{error_chain, ConnectError, Connector, Credentials};
use crate::{config::AgentConfig, metrics::queue::MetricQueue};

pub struct MetricsShipper {
    config: AgentConfig,
    connector: Connector,
    hello: v1::NodeHello,
    queue: Arc<MetricQueue>,
}

impl MetricsShipper {
    pub fn new(
        config: AgentConfig,
        hello: v1::NodeHello,
        queue: Arc<MetricQueue>,
    ) -> Result<Self, ConnectError> {
        Ok(Self {
            connector: Connector::new(&config)?,
            config,
            hello,
            queue,
        })
    }

    async fn session(&self) -> Result<(AgentIngestClient<Channel>, Credentials, u64), String> {
        let (mut client, credentials) = self
            .connector
            .connect()
            .await
            .map_err(|e| error_chain(&e))?;
        let ack = client
            .hello(self.hello.clone())
            .await
            .map_err(|s| s.to_string())?;
        Ok((client, credentials, ack.into_inner().last_interval_seq))
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        let initial = Duration::from_millis(self.config.reconnect.initial_backoff_ms);
        let max = Duration::from_millis(self.config.reconnect.max_backoff_ms);
        let mut backoff = initial;
        let mut next_seq = 0u64;
        let mut in_flight: Option<v1::MetricBatch> = None;
        loop {
            let (mut client, credentials, last) = match self.session().await {
                Ok(s) => s,
                Err(error) => {
                    debug!(%error, queued = self.queue.len(), "metrics: control plane unreachable");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(max);
                    continue;
                }
            };
            next_seq = next_seq.max(last + 1);
            info!(
                last_interval_seq = last,
                queued = self.queue.len(),
                "metrics stream connected"
            );
            backoff = initial;
            loop {
                if in_flight.is_none() && self.connector.rotated(credentials) {
                    info!("metrics: the TLS certificates changed on disk: reconnecting with them");
                    break;
                }
                let batch = match in_flight.take() {
                    Some(b) => b,
                    None => {
                        let mut b = self.queue.pop().await;
                        b.node_name = self.hello.node_name.clone();
                        b.interval_seq = next_seq;
                        next_seq += 1;
                        b
                    }
                };
                match client.push_metrics(batch.clone()).await {
                    Ok(ack) => {
                        let ack = ack.into_inner();
                        debug!(
                            seq = ack.acked_interval_seq,
                            duplicate = ack.duplicate,
                            "interval stored"
                        );
                    }
                    Err(status) if status.code() == Code::InvalidArgument => {
                        error!(%status, seq = batch.interval_seq, "control plane rejected a metric batch as invalid; dropping it");
                    }
                    Err(status) if status.code() == Code::Unimplemented => {
                        // A control plane older than protocol 1.2: events still flow.
                        warn!("the control plane does not accept metrics (protocol < 1.2); dropping the interval");
                    }
                    Err(status) => {
                        warn!(%status, "metrics stream lost; will resend the interval");
                        in_flight = Some(batch);
                        break;
                    }
                }
            }
            tokio::time::sleep(backoff).await;
        }
    }
}
