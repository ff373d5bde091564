//! The `[diagnosis.llm]` section: the optional second opinion's provider, model, key and
//! bounds. Absent, diagnosis is the evidence's alone and never touches the network.

use std::time::Duration;

use serde::Deserialize;

use crate::{adapters::llm::Provider, domain::diagnose::llm::LlmPolicy};
use vigil_config_file::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    pub provider: Provider,
    /// The endpoint's base; by default the provider's public API.
    #[serde(default)]
    pub url: Option<String>,
    pub model: String,
    /// The environment variable that holds the API key (the key itself never sits in the
    /// file); none for an endpoint that needs no key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default = "defaults::max_steps")]
    pub max_steps: u32,
    #[serde(default = "defaults::max_tokens")]
    pub max_tokens: u64,
    #[serde(default = "defaults::max_reply_tokens")]
    pub max_reply_tokens: u32,
    /// Most spent on one investigation, in US dollars, at the prices below.
    #[serde(default)]
    pub max_cost_usd: Option<f64>,
    #[serde(default)]
    pub usd_per_million_input: f64,
    #[serde(default)]
    pub usd_per_million_output: f64,
    #[serde(default = "defaults::max_wall_secs")]
    pub max_wall_secs: f64,
    #[serde(default = "defaults::brief_tokens")]
    pub brief_tokens: usize,
    #[serde(default = "defaults::result_tokens")]
    pub result_tokens: usize,
}

mod defaults {
    use crate::domain::diagnose::llm::LlmPolicy;

    pub fn max_steps() -> u32 {
        LlmPolicy::default().max_steps
    }
    pub fn max_tokens() -> u64 {
        LlmPolicy::default().max_tokens
    }
    pub fn max_reply_tokens() -> u32 {
        LlmPolicy::default().max_reply_tokens
    }
    pub fn max_wall_secs() -> f64 {
        LlmPolicy::default().max_wall.as_secs_f64()
    }
    pub fn brief_tokens() -> usize {
        LlmPolicy::default().brief_tokens
    }
    pub fn result_tokens() -> usize {
        LlmPolicy::default().result_tokens
    }
}

impl LlmConfig {
    pub fn url(&self) -> &str {
        self.url
            .as_deref()
            .unwrap_or_else(|| self.provider.default_url())
    }

    pub fn policy(&self) -> LlmPolicy {
        LlmPolicy {
            max_steps: self.max_steps,
            max_tokens: self.max_tokens,
            max_reply_tokens: self.max_reply_tokens,
            max_cost_usd: self.max_cost_usd,
            usd_per_million_input: self.usd_per_million_input,
            usd_per_million_output: self.usd_per_million_output,
            max_wall: Duration::from_secs_f64(self.max_wall_secs),
            brief_tokens: self.brief_tokens,
            result_tokens: self.result_tokens,
        }
    }

    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |field, reason: &str| Err(ConfigError::invalid(origin, field, reason));
        if self.model.trim().is_empty() {
            return bad(
                "diagnosis.llm.model",
                "must name the model, e.g. \"gpt-4o-mini\"",
            );
        }
        let url = self.url();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return bad(
                "diagnosis.llm.url",
                "must be an http:// or https:// URL, the API's base (e.g. https://api.openai.com/v1)",
            );
        }
        if self.max_steps == 0 || self.max_tokens == 0 || self.max_reply_tokens == 0 {
            return bad(
                "diagnosis.llm.max_steps",
                "max_steps, max_tokens and max_reply_tokens must be positive",
            );
        }
        if !(self.max_wall_secs.is_finite() && self.max_wall_secs > 0.0) {
            return bad(
                "diagnosis.llm.max_wall_secs",
                "must be a positive number of seconds",
            );
        }
        if self
            .max_cost_usd
            .is_some_and(|c| !(c.is_finite() && c > 0.0))
            || !(self.usd_per_million_input >= 0.0 && self.usd_per_million_output >= 0.0)
        {
            return bad(
                "diagnosis.llm.max_cost_usd",
                "the cost bound must be positive and the prices not negative",
            );
        }
        if self.max_cost_usd.is_some()
            && self.usd_per_million_input == 0.0
            && self.usd_per_million_output == 0.0
        {
            return bad(
                "diagnosis.llm.max_cost_usd",
                "a cost bound needs usd_per_million_input or usd_per_million_output",
            );
        }
        if self.brief_tokens < 200 || self.result_tokens < 100 {
            return bad(
                "diagnosis.llm.brief_tokens",
                "brief_tokens must be at least 200 and result_tokens at least 100",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::ControlPlaneConfig;
    use vigil_config_file::error_chain;

    fn parse(section: &str) -> Result<ControlPlaneConfig, String> {
        ControlPlaneConfig::from_toml(&format!("[diagnosis.llm]\n{section}"), "cp.toml")
            .map_err(|e| error_chain(&e))
    }

    #[test]
    fn a_provider_and_a_model_are_enough_and_each_mistake_is_named() {
        let c = parse("provider = \"anthropic\"\nmodel = \"claude\"\n").expect("valid");
        let llm = c.diagnosis.llm.expect("llm");
        assert_eq!(llm.url(), "https://api.anthropic.com");
        assert_eq!(llm.policy().max_steps, 8);

        for (section, field) in [
            ("provider = \"gemini\"\nmodel = \"m\"\n", "provider"),
            (
                "provider = \"openai\"\nmodel = \" \"\n",
                "diagnosis.llm.model",
            ),
            (
                "provider = \"openai\"\nmodel = \"m\"\nurl = \"api.openai.com\"\n",
                "diagnosis.llm.url",
            ),
            (
                "provider = \"openai\"\nmodel = \"m\"\nmax_cost_usd = 0.5\n",
                "diagnosis.llm.max_cost_usd",
            ),
            (
                "provider = \"openai\"\nmodel = \"m\"\nmax_wall_secs = 0\n",
                "diagnosis.llm.max_wall_secs",
            ),
            (
                "provider = \"openai\"\nmodel = \"m\"\napi_key = \"sk-x\"\n",
                "api_key",
            ),
        ] {
            let e = parse(section).expect_err(section);
            assert!(e.contains("cp.toml") && e.contains(field), "{section}: {e}");
        }
    }
}
