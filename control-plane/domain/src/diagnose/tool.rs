//! What an evidence tool is: a read-only function with a typed input (`Scope`) and a typed,
//! bounded output (`ToolOutput`) that also votes on the taxonomy. The deterministic diagnoser,
//! the LLM loop and the MCP server call the same tools through one registry.

use serde::Serialize;

pub use super::evidence::{Observation, Scope, ToolOutput, Vote, MAX_OBSERVATIONS};
use super::ports::Sources;
use crate::store::StoreError;

/// A tool's name, what it does (for the LLM and MCP), and its input's JSON schema.
#[derive(Debug, Clone, Serialize)]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
}

/// A read-only evidence tool. One file each under `tools/`, listed once in the registry.
pub trait EvidenceTool: Send + Sync {
    fn spec(&self) -> ToolSpec;
    fn call(&self, sources: &Sources, scope: &Scope) -> Result<ToolOutput, StoreError>;
}
