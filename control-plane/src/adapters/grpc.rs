//! The tonic ingest server: `vigil.agent.v1.AgentIngest`.

use std::sync::Arc;

use tonic::{codec::CompressionEncoding, Request, Response, Status};
use tracing::warn;
use vigil_proto::v1::{
    self,
    agent_ingest_server::{AgentIngest, AgentIngestServer},
};

use super::{
    tls::{Once, Peer},
    wire,
};
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
    /// With mutual TLS: each agent may speak only for a node its certificate names…
    pub require_identity: bool,
    /// …unless its certificate carries one of these names (`tls.grpc.fleet_identities`).
    pub fleet_identities: Vec<String>,
    /// Told of each request refused for its identity (a counter).
    pub refused: Arc<dyn Fn(&'static str) + Send + Sync>,
    pub logged: Once,
}

impl IngestApi {
    /// Refuses (PERMISSION_DENIED) a request for `node` from a peer whose certificate does
    /// not name it: an agent cannot send events as another node.
    fn authorize<T>(&self, request: &Request<T>, node: &str) -> Result<(), Status> {
        if !self.require_identity {
            return Ok(());
        }
        let peer = request.extensions().get::<Peer>();
        let identity = peer.and_then(|p| p.identity.as_ref());
        if identity
            .is_some_and(|id| id.allows(node) || self.fleet_identities.iter().any(|f| id.allows(f)))
        {
            return Ok(());
        }
        (self.refused)("identity");
        let names = identity.map_or_else(|| "no certificate".to_string(), |id| id.describe());
        let addr = peer
            .and_then(|p| p.addr)
            .map_or_else(|| "unknown".to_string(), |a| a.to_string());
        if self.logged.first(format!("{names}\0{node}")) {
            warn!(peer = %addr, certificate = %names, claimed_node = %node,
                "refused an agent speaking for a node its certificate does not name (logged once per certificate and node; counted in vigil_ingest_refused_total)");
        }
        Err(Status::permission_denied(format!(
            "this agent's certificate names [{names}], not node {node:?}: an agent may send only its own node's data. \
             Issue it a certificate naming its node (`vigil certs issue --role agent {node}`, or cert-manager's commonName)"
        )))
    }
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
        self.authorize(&request, &node.name)?;
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
        // Well-formed first (INVALID_ARGUMENT names the field), then allowed for its node.
        let batch = wire::batch(request.get_ref(), self.max_batch_events).map_err(|e| {
            warn!(node = %request.get_ref().node_name, error = %e, "refused an invalid batch");
            Status::invalid_argument(format!("invalid EventBatch: {e}"))
        })?;
        self.authorize(&request, &request.get_ref().node_name)?;
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
        self.authorize(&request, &request.get_ref().node_name)?;
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
