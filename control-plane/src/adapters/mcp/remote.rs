//! `vigil mcp`'s backend: the control plane's REST API, for an agent that speaks MCP over
//! stdio on the engineer's machine.

use reqwest::{Client, RequestBuilder};
use serde_json::Value;

use super::Backend;
use crate::domain::diagnose::llm::ToolDef;

pub struct Remote {
    base: String,
    http: Client,
}

impl Remote {
    pub fn new(base: &str, http: Client) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            http,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, request: RequestBuilder, url: &str) -> Result<Value, String> {
        let response = request.send().await.map_err(|e| {
            format!(
                "cannot reach the control plane API at {url}: {} (is vigil-control-plane running? set --api or VIGIL_API)",
                vigil_config_file::error_chain(&e)
            )
        })?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("{url} did not answer JSON: {e}"))?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(body
                .get("error")
                .and_then(Value::as_str)
                .map_or_else(|| format!("{url}: HTTP {status}"), str::to_string))
        }
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, String> {
        let url = self.url(path);
        self.send(self.http.get(&url).query(query), &url).await
    }
}

impl Backend for Remote {
    async fn tools(&self) -> Result<Vec<ToolDef>, String> {
        let list = self.get("/api/v1/tools", &[]).await?;
        Ok(list
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| ToolDef {
                name: t["name"].as_str().unwrap_or_default().to_string(),
                description: t["description"].as_str().unwrap_or_default().to_string(),
                parameters: t["input_schema"].clone(),
            })
            .filter(|t| !t.name.is_empty())
            .collect())
    }

    async fn call(&self, name: String, args: Value) -> Result<Value, String> {
        let url = self.url(&format!("/api/v1/tools/{name}"));
        self.send(self.http.post(&url).json(&args), &url).await
    }

    async fn incidents(&self, status: Option<String>, limit: usize) -> Result<Value, String> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(s) = status {
            query.push(("status", s));
        }
        self.get("/api/v1/incidents", &query).await
    }

    async fn incident(&self, id: i64) -> Result<Value, String> {
        self.get(&format!("/api/v1/incidents/{id}"), &[]).await
    }
}
