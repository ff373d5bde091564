//! Posts to Slack off the remediation path: the observer's call only queues (it runs inside
//! the remediation tick), and one thread of its own posts each message, retrying what Slack
//! or the network refused for a while (429, 5xx, no connection) and dropping, with a warning,
//! what it refused for good. The webhook URL is a secret: no log carries it.

use std::{fmt, time::Duration};

use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::blocks;
use crate::domain::{observe::Observer, remediate::ActionRecord};

/// Messages waiting to be posted; past this, new ones are dropped with a warning rather
/// than held without bound.
const QUEUE: usize = 256;
const ATTEMPTS: u32 = 4;
const TIMEOUT: Duration = Duration::from_secs(10);

/// A URL that is itself a credential (an incoming webhook, an interaction's response URL).
#[derive(Clone)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn parse(url: String) -> Result<Self, String> {
        if url.starts_with("https://") || url.starts_with("http://") {
            Ok(Self(url))
        } else {
            Err("is not an http(s) URL".into())
        }
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretUrl(…)")
    }
}

struct Post {
    url: SecretUrl,
    body: Value,
    /// What the message is, for the log.
    what: String,
}

pub struct SlackNotifier {
    webhook: SecretUrl,
    console_url: Option<String>,
    /// Whether waiting actions carry approve and deny buttons (a signing secret is set).
    buttons: bool,
    queue: mpsc::Sender<Post>,
}

impl SlackNotifier {
    /// Starts the posting thread.
    pub fn start(
        webhook: SecretUrl,
        console_url: Option<String>,
        buttons: bool,
    ) -> std::io::Result<Self> {
        let (queue, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("slack-notifier".into())
            .spawn(move || post_all(rx))?;
        Ok(Self {
            webhook,
            console_url,
            buttons,
            queue,
        })
    }

    /// Queues `body` for `url`.
    pub fn post(&self, url: SecretUrl, body: Value, what: String) {
        if let Err(e) = self.queue.try_send(Post { url, body, what }) {
            let what = match &e {
                mpsc::error::TrySendError::Full(p) | mpsc::error::TrySendError::Closed(p) => {
                    &p.what
                }
            };
            warn!(message = %what, "a Slack message was dropped: too many are waiting to be posted");
        }
    }

    pub fn console_url(&self) -> Option<&str> {
        self.console_url.as_deref()
    }
}

impl Observer for SlackNotifier {
    fn action(&self, record: &ActionRecord) {
        if blocks::worth_telling(record.state) {
            self.post(
                self.webhook.clone(),
                blocks::message(record, self.console_url.as_deref(), self.buttons),
                format!("action {} {}", record.id, record.state.as_str()),
            );
        }
    }
}

/// The posting thread: a small runtime of its own, until every sender is gone.
fn post_all(mut rx: mpsc::Receiver<Post>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            warn!(error = %e, "no runtime for the Slack notifier: nothing will be posted");
            return;
        }
    };
    runtime.block_on(async move {
        let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "no HTTP client for the Slack notifier: nothing will be posted");
                return;
            }
        };
        while let Some(post) = rx.recv().await {
            deliver(&client, post).await;
        }
    });
}

async fn deliver(client: &reqwest::Client, post: Post) {
    let mut wait = Duration::from_secs(1);
    for attempt in 1..=ATTEMPTS {
        let why = match client.post(&post.url.0).json(&post.body).send().await {
            Ok(r) if r.status().is_success() => {
                debug!(message = %post.what, "posted to Slack");
                return;
            }
            Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {
                format!("Slack answered {}", r.status())
            }
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                warn!(message = %post.what, %status, answer = %body.chars().take(200).collect::<String>(),
                      "Slack refused a message; it is dropped (is the webhook revoked?)");
                return;
            }
            // Without the URL: reqwest's error names it, and it is a credential.
            Err(e) => format!("could not reach Slack ({})", e.without_url()),
        };
        if attempt == ATTEMPTS {
            warn!(message = %post.what, attempts = ATTEMPTS, %why, "a Slack message was dropped");
            return;
        }
        debug!(message = %post.what, attempt, %why, "retrying a Slack message");
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
}
