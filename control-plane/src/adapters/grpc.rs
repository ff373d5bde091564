//! The tonic ingest server: `vigil.agent.v1.AgentIngest`.

use std::sync::Arc;

use tonic::{codec::CompressionEncoding, Request, Response, Status};
use tracing::warn;
use vigil_proto::v1::{
    self,
    agent_ingest_server::{AgentIngest, AgentIngestServer},
};

use super::wire;
use vigil_config_file::error_chain as chain;

use crate::domain::{
    clock::Clock, ingest::IngestService, interval::service::MetricsService, store::StoreError,
};

/// The ingest service's parts: the use cases it drives and the limit it enforces.
pub struct IngestApi {
    pub service: Arc<IngestService>,
    pub metrics: Arc<MetricsService>,
    pub clock: Arc<dyn Clock>,
    /// Events (or samples) one batch may carry.
    pub max_batch_events: usize,
}

/// Store failures are the server's problem and may pass: clients should retry.
fn unavailable(e: StoreError) -> Status {
    let error = chain(&e);
    warn!(%error, "ingest failed in the store");
    Status::unavailable(format!(
        "the control plane could not store the batch, retry later: {error}"
    ))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("ingest task failed: {e}")))?
        .map_err(unavailable)
}

#[tonic::async_trait]
impl AgentIngest for IngestApi {
    async fn hello(
        &self,
        request: Request<v1::NodeHello>,
    ) -> Result<Response<v1::HelloAck>, Status> {
        let node = wire::node_info(request.get_ref(), self.clock.now_unix_ns())
            .map_err(|e| Status::invalid_argument(format!("invalid NodeHello: {e}")))?;
        let service = self.service.clone();
        let metrics = self.metrics.clone();
        let (last_seq, last_interval_seq) = blocking(move || {
            let last_interval = metrics.last_interval_seq(&node.name)?;
            Ok((service.hello(&node)?, last_interval))
        })
        .await?;
        Ok(Response::new(v1::HelloAck {
            last_seq,
            protocol_version: vigil_proto::PROTOCOL_VERSION,
            last_interval_seq,
        }))
    }

    async fn push_events(
        &self,
        request: Request<v1::EventBatch>,
    ) -> Result<Response<v1::BatchAck>, Status> {
        let batch = wire::batch(request.get_ref(), self.max_batch_events).map_err(|e| {
            warn!(node = %request.get_ref().node_name, error = %e, "refused an invalid batch");
            Status::invalid_argument(format!("invalid EventBatch: {e}"))
        })?;
        let last = batch.events.last().map_or(0, |e| e.seq);
        let service = self.service.clone();
        let outcome = blocking(move || service.ingest(&batch)).await?;
        Ok(Response::new(v1::BatchAck {
            acked_through_seq: last,
            accepted: outcome.stored.inserted.len() as u32,
            duplicates: outcome.stored.duplicates,
        }))
    }

    async fn push_metrics(
        &self,
        request: Request<v1::MetricBatch>,
    ) -> Result<Response<v1::MetricAck>, Status> {
        let interval = wire::metric_batch(request.get_ref(), self.max_batch_events).map_err(|e| {
            warn!(node = %request.get_ref().node_name, error = %e, "refused an invalid metric batch");
            Status::invalid_argument(format!("invalid MetricBatch: {e}"))
        })?;
        let seq = interval.seq;
        let metrics = self.metrics.clone();
        let new = blocking(move || metrics.ingest(&interval)).await?;
        Ok(Response::new(v1::MetricAck {
            acked_interval_seq: seq,
            duplicate: !new,
        }))
    }
}

/// The gRPC service, refusing messages over `max_message_bytes` before decoding them.
pub fn server(api: IngestApi, max_message_bytes: usize) -> AgentIngestServer<IngestApi> {
    AgentIngestServer::new(api)
        .max_decoding_message_size(max_message_bytes)
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Zstd)
}
