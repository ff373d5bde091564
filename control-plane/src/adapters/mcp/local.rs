//! The control plane's own MCP backend: the store and the evidence tools, in-process. Store
//! reads and tools block, so they run on the blocking pool, as the REST handlers do.

use std::sync::Arc;

use rmcp::transport::streamable_http_server::{
    session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
};
use serde_json::Value;

use super::{Backend, VigilMcp};
use crate::{
    adapters::http::{incident_detail, incident_list, ApiError, ApiState},
    domain::{diagnose::llm::ToolDef, incident::IncidentId},
};

pub struct Local(pub ApiState);

/// The MCP endpoint (streamable HTTP, stateless JSON answers): the same tools and incidents.
pub fn service(state: ApiState) -> StreamableHttpService<VigilMcp<Local>, LocalSessionManager> {
    let backend = Arc::new(Local(state));
    StreamableHttpService::new(
        move || Ok(VigilMcp::new(backend.clone())),
        Arc::default(),
        StreamableHttpServerConfig::default()
            .with_sse_keep_alive(None)
            .with_legacy_session_mode(false)
            .with_json_response(true)
            // A network service like the REST API beside it (reached by a Service's name in
            // a cluster), not a loopback-only desktop server.
            .disable_allowed_hosts(),
    )
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("the call's task failed: {e}"))?
}

fn text(e: ApiError) -> String {
    vigil_config_file::error_chain(&e)
}

fn json<T: serde::Serialize>(v: &T) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| e.to_string())
}

impl Backend for Local {
    async fn tools(&self) -> Result<Vec<ToolDef>, String> {
        Ok(self.0.diagnosis.tool_defs())
    }

    async fn call(&self, name: String, args: Value) -> Result<Value, String> {
        let s = self.0.clone();
        blocking(move || {
            let out = s
                .diagnosis
                .call_tool(&name, &args, None)
                .map_err(|e| vigil_config_file::error_chain(&e))?;
            json(&out)
        })
        .await
    }

    async fn incidents(&self, status: Option<String>, limit: usize) -> Result<Value, String> {
        let s = self.0.clone();
        blocking(move || json(&incident_list(&s, status.as_deref(), None, limit).map_err(text)?))
            .await
    }

    async fn incident(&self, id: i64) -> Result<Value, String> {
        let s = self.0.clone();
        blocking(move || json(&incident_detail(&s, IncidentId(id)).map_err(text)?)).await
    }
}
