//! The tonic ingest server: `vigil.agent.v1.AgentIngest`.

use std::sync::Arc;

use tonic::{codec::CompressionEncoding, Request, Response, Status};
use tracing::warn;
use vigil_proto::v1::{
    self,
    agent_ingest_server::{AgentIngest, AgentIngestServer},
};

use super::wire;
use crate::{
    domain::ingest::{now_unix_ns, IngestService},
    ports::StoreError,
};

pub struct IngestApi {
    service: Arc<IngestService>,
    max_batch_events: usize,
}

/// Store failures are the server's problem and may pass: clients should retry.
fn unavailable(e: StoreError) -> Status {
    warn!(error = %e, "ingest failed in the store");
    Status::unavailable(format!(
        "the control plane could not store the batch, retry later: {e}"
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
        let node = wire::node_info(request.get_ref(), now_unix_ns())
            .map_err(|e| Status::invalid_argument(format!("invalid NodeHello: {e}")))?;
        let service = self.service.clone();
        let last_seq = blocking(move || service.hello(&node)).await?;
        Ok(Response::new(v1::HelloAck {
            last_seq,
            protocol_version: vigil_proto::PROTOCOL_VERSION,
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
}

pub fn server(
    service: Arc<IngestService>,
    max_batch_events: usize,
    max_message_bytes: usize,
) -> AgentIngestServer<IngestApi> {
    AgentIngestServer::new(IngestApi {
        service,
        max_batch_events,
    })
    .max_decoding_message_size(max_message_bytes)
    .accept_compressed(CompressionEncoding::Gzip)
    .accept_compressed(CompressionEncoding::Zstd)
    .send_compressed(CompressionEncoding::Zstd)
}
