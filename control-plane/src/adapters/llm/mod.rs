//! The LLM second opinion's providers: one HTTP client, two wire formats — OpenAI-compatible
//! chat completions (OpenAI, Azure, vLLM, Ollama, LiteLLM…) and Anthropic messages. Each
//! format is a pair of pure functions (request body out, reply in) so the tests check them
//! against recorded shapes and a scripted server alike.

pub mod anthropic;
pub mod openai;

use std::{fmt, time::Duration};

use serde::Deserialize;
use serde_json::Value;

use crate::domain::diagnose::llm::{ChatModel, ChatRequest, LlmError, Reply, Usage};

/// Which wire format the endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// `POST {url}/chat/completions`, `Authorization: Bearer`.
    Openai,
    /// `POST {url}/v1/messages`, `x-api-key`.
    Anthropic,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
        }
    }

    pub fn default_url(self) -> &'static str {
        match self {
            Self::Openai => "https://api.openai.com/v1",
            Self::Anthropic => "https://api.anthropic.com",
        }
    }
}

/// An API key: sent in a header, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: String) -> Self {
        Self(key)
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Longest error body quoted back from a provider.
const MAX_ERROR_BODY: usize = 500;

/// A chat model behind an HTTP endpoint.
pub struct HttpChat {
    provider: Provider,
    url: String,
    model: String,
    key: Option<ApiKey>,
    client: reqwest::Client,
}

impl HttpChat {
    pub fn new(
        provider: Provider,
        url: &str,
        model: &str,
        key: Option<ApiKey>,
    ) -> Result<Self, LlmError> {
        let client = reqwest::Client::builder()
            // The client serves calls from short-lived runtimes (`outbound::block_on`): a
            // pooled connection would outlive the runtime that drives it.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| LlmError::Transport(e.to_string()))?;
        Ok(Self {
            provider,
            url: url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            key,
            client,
        })
    }

    fn endpoint(&self) -> String {
        match self.provider {
            Provider::Openai => format!("{}/chat/completions", self.url),
            Provider::Anthropic => format!("{}/v1/messages", self.url),
        }
    }

    async fn post(&self, body: &Value, timeout: Duration) -> Result<Value, LlmError> {
        let mut request = self
            .client
            .post(self.endpoint())
            .timeout(timeout)
            .json(body);
        request = match (self.provider, &self.key) {
            (Provider::Openai, Some(key)) => request.bearer_auth(key.expose()),
            (Provider::Anthropic, key) => {
                let r = request.header("anthropic-version", anthropic::VERSION);
                match key {
                    Some(key) => r.header("x-api-key", key.expose()),
                    None => r,
                }
            }
            (Provider::Openai, None) => request,
        };
        let response = request.send().await.map_err(|e| transport(e, timeout))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| transport(e, timeout))?;
        if !status.is_success() {
            return Err(LlmError::Status {
                status: status.as_u16(),
                message: cut(&text),
            });
        }
        serde_json::from_str(&text)
            .map_err(|e| LlmError::Protocol(format!("the reply is not JSON ({e}): {}", cut(&text))))
    }
}

fn transport(e: reqwest::Error, timeout: Duration) -> LlmError {
    if e.is_timeout() {
        LlmError::Timeout(timeout)
    } else {
        LlmError::Transport(vigil_config_file::error_chain(&e))
    }
}

/// The reply's token counts, under the provider's names for them (0 when it leaves them out).
fn usage(reply: &Value, input: &str, output: &str) -> Usage {
    let tokens = |k: &str| {
        reply
            .get("usage")
            .and_then(|u| u.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Usage {
        input_tokens: tokens(input),
        output_tokens: tokens(output),
    }
}

fn cut(text: &str) -> String {
    let mut end = text.len().min(MAX_ERROR_BODY);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

impl ChatModel for HttpChat {
    fn name(&self) -> String {
        format!("{}/{}", self.provider.as_str(), self.model)
    }

    fn chat(&self, request: &ChatRequest) -> Result<Reply, LlmError> {
        let body = match self.provider {
            Provider::Openai => openai::request_body(&self.model, request),
            Provider::Anthropic => anthropic::request_body(&self.model, request),
        };
        let reply = crate::adapters::outbound::block_on(self.post(&body, request.timeout))
            .map_err(LlmError::Transport)??;
        match self.provider {
            Provider::Openai => openai::parse_reply(&reply),
            Provider::Anthropic => anthropic::parse_reply(&reply),
        }
    }
}
