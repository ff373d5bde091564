//! What the investigation needs of a language model: one chat turn with tools offered. The
//! adapters speak a provider's wire protocol (OpenAI-compatible chat completions, Anthropic
//! messages); the loop, its bounds and its checks are the same for all.

use std::time::Duration;

use serde_json::Value;

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDef {
    pub name: String,
    pub description: String,
    /// JSON schema of its arguments.
    pub parameters: Value,
}

/// A call the model asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The provider's id, echoed back with the result.
    pub id: String,
    pub name: String,
    pub arguments: Value,
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    User(String),
    Assistant {
        text: Option<String>,
        calls: Vec<ToolCall>,
    },
    ToolResult {
        call_id: String,
        name: String,
        content: String,
        /// The call was refused or failed (the content says why).
        is_error: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub system: String,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolDef>,
    /// Most tokens the reply may take.
    pub max_tokens: u32,
    /// How long the provider may take to answer: what is left of the wall-time bound.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub text: Option<String>,
    pub calls: Vec<ToolCall>,
    pub usage: Usage,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("the model did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the model endpoint could not be reached: {0}")]
    Transport(String),
    #[error("the model endpoint refused the request (HTTP {status}): {message}")]
    Status { status: u16, message: String },
    #[error("the model's reply is not in the provider's format: {0}")]
    Protocol(String),
}

/// A chat model with tool use.
pub trait ChatModel: Send + Sync {
    /// `provider/model`, for the diagnosis and the logs (never the key).
    fn name(&self) -> String;
    fn chat(&self, request: &ChatRequest) -> Result<Reply, LlmError>;
}
