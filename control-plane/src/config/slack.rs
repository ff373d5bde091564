//! `[slack]`: where approvals are asked for and outcomes told (a Slack incoming webhook), and
//! who may press the approve and deny buttons. The webhook URL and the signing secret are
//! secrets: the file names the environment variables that hold them, never the values.

use serde::Deserialize;

use vigil_config_file::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The environment variable holding the incoming webhook's URL.
    #[serde(default = "defaults::webhook_url_env")]
    pub webhook_url_env: String,
    /// The environment variable holding the Slack app's signing secret. Without one the
    /// messages carry no buttons and every interaction is refused.
    #[serde(default)]
    pub signing_secret_env: Option<String>,
    /// Slack user IDs (`U…`, `W…`) whose approve or deny is taken; anyone else's press is
    /// answered with a refusal and changes nothing.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// The console's address, linked from each message.
    #[serde(default)]
    pub console_url: Option<String>,
    /// How old a signed request may be before it is refused as a replay (Slack: 5 minutes).
    #[serde(default = "defaults::max_age_secs")]
    pub max_age_secs: u64,
}

mod defaults {
    pub fn webhook_url_env() -> String {
        "VIGIL_SLACK_WEBHOOK_URL".into()
    }
    pub fn max_age_secs() -> u64 {
        300
    }
}

impl SlackConfig {
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |field, reason: &str| Err(ConfigError::invalid(origin, field, reason));
        if self.signing_secret_env.is_some() && self.approvers.is_empty() {
            return bad(
                "slack.approvers",
                "list the Slack user IDs (U…) that may approve from Slack, or drop signing_secret_env to notify only",
            );
        }
        if !self.approvers.is_empty() && self.signing_secret_env.is_none() {
            return bad(
                "slack.signing_secret_env",
                "approvers are listed but no signing secret: name the environment variable holding the Slack app's signing secret",
            );
        }
        if self.max_age_secs == 0 || self.max_age_secs > 3600 {
            return bad("slack.max_age_secs", "must be between 1 and 3600");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::ControlPlaneConfig;
    use vigil_config_file::error_chain;

    #[test]
    fn approvers_and_the_signing_secret_come_together_or_not_at_all() {
        let parse =
            |slack: &str| ControlPlaneConfig::from_toml(&format!("[slack]\n{slack}"), "cp.toml");
        let c = parse("").expect("notify only");
        assert_eq!(
            c.slack.map(|s| s.webhook_url_env),
            Some("VIGIL_SLACK_WEBHOOK_URL".into())
        );
        let e = parse("signing_secret_env = \"S\"").expect_err("no approvers");
        assert!(error_chain(&e).contains("slack.approvers"), "{e}");
        let e = parse("approvers = [\"U1\"]").expect_err("no secret");
        assert!(error_chain(&e).contains("slack.signing_secret_env"), "{e}");
        let e =
            parse("webhook_url = \"https://hooks.slack.com/x\"").expect_err("a secret in the file");
        assert!(error_chain(&e).contains("webhook_url"), "{e}");
        parse("signing_secret_env = \"S\"\napprovers = [\"U1\"]").expect("both");
    }
}
