//! MCP: Vigil's read-only evidence tools and its incidents, for an engineer's own agent.
//!
//! One handler (rmcp's `ServerHandler`) over a `Backend`: in the control plane it reads the
//! store and runs the tools in-process (`local`, served over streamable HTTP at `/mcp`);
//! `vigil mcp` serves it over stdio with the REST API behind it (`remote`). Nothing here can
//! change anything: every tool is marked read-only.

pub mod local;
pub mod remote;

use std::{future::Future, sync::Arc};

use rmcp::{
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
        ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
        ToolAnnotations,
    },
    service::RequestContext,
    ErrorData, RoleServer, ServerHandler,
};
use serde_json::{json, Map, Value};

use crate::domain::diagnose::llm::ToolDef;

/// Most incidents one `list_incidents` call returns.
pub const MAX_INCIDENTS: usize = 100;

/// Where the handler gets its answers. Errors are the text the agent is shown.
pub trait Backend: Send + Sync + 'static {
    /// The evidence tools.
    fn tools(&self) -> impl Future<Output = Result<Vec<ToolDef>, String>> + Send;
    /// One evidence tool's output.
    fn call(&self, name: String, args: Value)
        -> impl Future<Output = Result<Value, String>> + Send;
    fn incidents(
        &self,
        status: Option<String>,
        limit: usize,
    ) -> impl Future<Output = Result<Value, String>> + Send;
    /// An incident with its kernel evidence and its diagnosis.
    fn incident(&self, id: i64) -> impl Future<Output = Result<Value, String>> + Send;
}

pub struct VigilMcp<B> {
    backend: Arc<B>,
}

impl<B> Clone for VigilMcp<B> {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
        }
    }
}

impl<B: Backend> VigilMcp<B> {
    pub fn new(backend: Arc<B>) -> Self {
        Self { backend }
    }
}

const LIST_INCIDENTS: &str = "list_incidents";
const GET_INCIDENT: &str = "get_incident";

fn object(schema: Value) -> Arc<Map<String, Value>> {
    Arc::new(match schema {
        Value::Object(m) => m,
        _ => Map::new(),
    })
}

/// The incident tools, beside the evidence tools.
fn incident_tools() -> Vec<Tool> {
    vec![
        Tool::new(
            LIST_INCIDENTS,
            "Incidents, newest first: id, kind, severity, status, workload, title. Start here.",
            object(json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "status": {"type": "string", "enum": ["open", "resolved"]},
                    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_INCIDENTS}
                }
            })),
        ),
        Tool::new(
            GET_INCIDENT,
            "One incident with its kernel evidence and Vigil's diagnosis (class, confidence, \
             each voter's breakdown, citations, recommended actions).",
            object(json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["id"],
                "properties": {"id": {"type": "integer", "minimum": 1}}
            })),
        ),
    ]
}

fn read_only(tool: Tool) -> Tool {
    tool.annotate(
        ToolAnnotations::new()
            .read_only(true)
            .destructive(false)
            .idempotent(true),
    )
}

fn text_result(result: Result<Value, String>) -> CallToolResult {
    match result {
        Ok(v) => CallToolResult::success(vec![ContentBlock::text(
            serde_json::to_string_pretty(&v).unwrap_or_else(|e| e.to_string()),
        )]),
        Err(e) => CallToolResult::error(vec![ContentBlock::text(e)]),
    }
}

impl<B: Backend> VigilMcp<B> {
    async fn run(&self, name: &str, args: Value) -> Result<Value, String> {
        match name {
            LIST_INCIDENTS => {
                let status = args
                    .get("status")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let limit = match args.get("limit") {
                    None | Some(Value::Null) => 20,
                    Some(v) => v
                        .as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                        .filter(|n| (1..=MAX_INCIDENTS).contains(n))
                        .ok_or_else(|| {
                            format!("limit must be an integer in 1..={MAX_INCIDENTS}")
                        })?,
                };
                self.backend.incidents(status, limit).await
            }
            GET_INCIDENT => {
                let id = args
                    .get("id")
                    .and_then(Value::as_i64)
                    .filter(|id| *id > 0)
                    .ok_or("id must be a positive integer (see list_incidents)")?;
                self.backend.incident(id).await
            }
            _ => self.backend.call(name.to_string(), args).await,
        }
    }
}

impl<B: Backend> ServerHandler for VigilMcp<B> {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("vigil", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Vigil's kernel evidence, read-only. list_incidents, then get_incident for its \
                 diagnosis; the evidence tools take {incident} or {entity, from_unix_ns, \
                 to_unix_ns} and each answers a bounded, ranked summary with its votes on \
                 the fault taxonomy.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let evidence = self
            .backend
            .tools()
            .await
            .map_err(|e| ErrorData::internal_error(e, None))?;
        let tools = incident_tools()
            .into_iter()
            .chain(
                evidence
                    .into_iter()
                    .map(|t| Tool::new(t.name, t.description, object(t.parameters))),
            )
            .map(read_only)
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = Value::Object(request.arguments.unwrap_or_default());
        Ok(text_result(self.run(&request.name, args).await).into())
    }
}
