//! The gRPC client both shippers use: one endpoint definition, one compression setting.

use std::time::Duration;

use tonic::{
    codec::CompressionEncoding,
    transport::{Channel, Endpoint},
};
use vigil_proto::v1::agent_ingest_client::AgentIngestClient;

use crate::config::{AgentConfig, Compression};

pub fn endpoint(config: &AgentConfig) -> Result<Endpoint, tonic::transport::Error> {
    let cp = &config.control_plane;
    Ok(Endpoint::from_shared(cp.endpoint.clone())?
        .connect_timeout(Duration::from_millis(cp.connect_timeout_ms))
        .timeout(Duration::from_millis(cp.request_timeout_ms)))
}

pub async fn connect(
    endpoint: &Endpoint,
    compression: Compression,
) -> Result<AgentIngestClient<Channel>, tonic::transport::Error> {
    let channel = endpoint.connect().await?;
    let client = AgentIngestClient::new(channel).max_decoding_message_size(1 << 20);
    Ok(match compression {
        Compression::None => client,
        Compression::Gzip => client
            .send_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Gzip),
        Compression::Zstd => client
            .send_compressed(CompressionEncoding::Zstd)
            .accept_compressed(CompressionEncoding::Zstd),
    })
}

/// `error: cause: cause…` — tonic's transport errors say only "transport error" on top.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
