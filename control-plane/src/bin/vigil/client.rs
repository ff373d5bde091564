//! The control plane's REST API as the CLI calls it: every request carries the API token, and
//! every refusal comes back as the server's own words.

use std::{path::Path, time::Duration};

use anyhow::{bail, Context as _};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde_json::Value;

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

/// The token: `VIGIL_TOKEN`, else the file `--token-file` (or `VIGIL_TOKEN_FILE`) names, else
/// none (the server then says how to get one).
fn token(file: Option<&Path>) -> anyhow::Result<Option<String>> {
    if let Some(t) = std::env::var("VIGIL_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        return Ok(Some(t.trim().to_string()));
    }
    let Some(path) = file else { return Ok(None) };
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the API token file {} (--token-file / VIGIL_TOKEN_FILE)",
            path.display()
        )
    })?;
    Ok(Some(text.trim().to_string()))
}

impl Api {
    pub fn new(
        base: &str,
        token_file: Option<&Path>,
        ca_file: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let mut headers = HeaderMap::new();
        if let Some(t) = token(token_file)? {
            let mut value = HeaderValue::from_str(&format!("Bearer {t}"))
                .context("the API token holds characters a header cannot carry")?;
            // Sensitive: left out of reqwest's and hyper's debug output.
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let mut http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .default_headers(headers);
        if let Some(path) = ca_file {
            let pem = std::fs::read(path).with_context(|| {
                format!(
                    "cannot read the CA file {} (--ca-file / VIGIL_CA_FILE)",
                    path.display()
                )
            })?;
            let ca = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} holds no PEM certificate", path.display()))?;
            http = http.add_root_certificate(ca);
        }
        Ok(Self {
            base: base.to_string(),
            http: http.build()?,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.trim_end_matches('/'))
    }

    /// Sends `request` to `url` and reads its JSON answer, whatever the status.
    async fn answer(
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<(reqwest::StatusCode, Value)> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the control plane API at {url}: is vigil-control-plane running? (set --api or VIGIL_API)"))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .with_context(|| format!("{url} did not answer JSON"))?;
        Ok((status, body))
    }

    fn error_of(body: &Value) -> &str {
        body.get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown error")
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        let url = self.url(path);
        let (status, body) = Self::answer(&url, self.http.get(&url).query(query)).await?;
        if !status.is_success() {
            bail!("{url}: {status}: {}", Self::error_of(&body));
        }
        Ok(body)
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let url = self.url(path);
        let (status, answer) = Self::answer(&url, self.http.post(&url).json(body)).await?;
        if !status.is_success() {
            bail!("{status}: {}", Self::error_of(&answer));
        }
        Ok(answer)
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        let url = self.url(path);
        let (status, answer) = Self::answer(&url, self.http.delete(&url)).await?;
        if !status.is_success() {
            bail!("{status}: {}", Self::error_of(&answer));
        }
        Ok(answer)
    }

    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let url = self.url(path);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("cannot reach the control plane API at {url}: is vigil-control-plane running? (set --api or VIGIL_API)"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{url}: {status}: {text}");
        }
        Ok(text)
    }
}
