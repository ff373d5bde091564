//! An OpenAI-compatible embeddings endpoint (`POST {url}/embeddings`): OpenAI, Azure, vLLM,
//! Ollama, LiteLLM, text-embeddings-inference…

use std::time::Duration;

use serde_json::{json, Value};

use crate::{
    adapters::{llm::ApiKey, outbound},
    domain::retrieve::ports::CorpusError,
};

/// Texts sent in one request.
const BATCH: usize = 64;
/// Longest text embedded, in characters (models cut at a few thousand tokens).
const MAX_CHARS: usize = 8_000;

pub struct Embeddings {
    url: String,
    model: String,
    key: Option<ApiKey>,
    dimensions: usize,
    timeout: Duration,
    client: reqwest::Client,
}

fn failed(detail: impl Into<String>) -> CorpusError {
    CorpusError::Index(format!("embeddings: {}", detail.into()))
}

impl Embeddings {
    pub fn new(
        url: &str,
        model: &str,
        key: Option<ApiKey>,
        dimensions: usize,
        timeout: Duration,
    ) -> Result<Self, CorpusError> {
        let client = reqwest::Client::builder()
            // Each call runs on its own short-lived runtime (`outbound::block_on`).
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| failed(e.to_string()))?;
        Ok(Self {
            url: format!("{}/embeddings", url.trim_end_matches('/')),
            model: model.to_string(),
            key,
            dimensions,
            timeout,
            client,
        })
    }

    /// What the vectors depend on: a change of either means embedding again.
    pub fn identity(&self) -> String {
        format!("{}/{}", self.model, self.dimensions)
    }

    /// One vector per text, in order.
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, CorpusError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            let input: Vec<String> = batch
                .iter()
                .map(|t| t.chars().take(MAX_CHARS).collect())
                .collect();
            let reply = outbound::block_on(self.post(json!({"model": self.model, "input": input})))
                .map_err(failed)??;
            out.extend(self.vectors(&reply, batch.len())?);
        }
        Ok(out)
    }

    async fn post(&self, body: Value) -> Result<Value, CorpusError> {
        let mut request = self
            .client
            .post(&self.url)
            .timeout(self.timeout)
            .json(&body);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key.expose());
        }
        let response = request.send().await.map_err(|e| {
            failed(format!(
                "{} cannot be reached: {}",
                self.url,
                vigil_config_file::error_chain(&e)
            ))
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| failed(e.to_string()))?;
        if !status.is_success() {
            return Err(failed(format!(
                "{} refused the request (HTTP {status}): {}",
                self.url,
                text.chars().take(300).collect::<String>()
            )));
        }
        serde_json::from_str(&text).map_err(|e| failed(format!("the reply is not JSON: {e}")))
    }

    fn vectors(&self, reply: &Value, n: usize) -> Result<Vec<Vec<f32>>, CorpusError> {
        let data = reply
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| failed("no data[] in the reply"))?;
        let mut out: Vec<Option<Vec<f32>>> = vec![None; n];
        for (i, d) in data.iter().enumerate() {
            let at = d
                .get("index")
                .and_then(Value::as_u64)
                .map_or(i, |x| x as usize);
            let v: Vec<f32> = d
                .get("embedding")
                .and_then(Value::as_array)
                .ok_or_else(|| failed(format!("data[{i}] has no embedding")))?
                .iter()
                .map(|x| x.as_f64().unwrap_or(0.0) as f32)
                .collect();
            if v.len() != self.dimensions {
                return Err(failed(format!(
                    "the model answers {}-dimensional vectors; set diagnosis.vector.dimensions = {}",
                    v.len(),
                    v.len()
                )));
            }
            if let Some(slot) = out.get_mut(at) {
                *slot = Some(v);
            }
        }
        out.into_iter()
            .enumerate()
            .map(|(i, v)| v.ok_or_else(|| failed(format!("no embedding for input {i}"))))
            .collect()
    }
}
