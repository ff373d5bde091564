//! Issue 19's secret-leak test: a control plane run with known secret values — the admin
//! token, an issued approver token, the LLM API key, Slack's signing secret and webhook URL,
//! the audit signing key — through an OOM incident that is diagnosed with the LLM's second
//! opinion, proposes an action that waits for approval and is announced in Slack. Then every
//! output is searched for every secret: the logs (the control plane's own at trace level),
//! every API and console page, `/metrics`, the audit log, what was sent to the LLM and to
//! Slack, and the store's files. The secrets are only where they belong: the Authorization
//! header the LLM gets, the webhook request's address, the token and key files.

use std::sync::{Arc, Mutex};

use axum::{extract::State, http::HeaderMap, routing::post, Json, Router};
use control_plane::config::LlmConfig;
use serde_json::{json, Value};

use crate::support::time::until;
use crate::support::{
    plane::{slack_approvals, Plane, APP},
    running::issue_token,
};

const LLM_KEY: &str = "sk-leakcheck-llm-7f3a9c1d";
const SIGNING: &str = "leakcheck-signing-5d8e2b90";
const HOOK_PATH: &str = "/services/T0LEAK/B0LEAK/leakcheck-hook-91b2c3";

/// Everything a fake endpoint was sent: (its Authorization header, body).
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, String)>>>);

impl Seen {
    fn all(&self) -> Vec<(String, String)> {
        self.0.lock().expect("lock").clone()
    }
}

async fn record(State(seen): State<Seen>, headers: HeaderMap, body: String) -> Json<Value> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    seen.0.lock().expect("lock").push((auth, body));
    // An OpenAI chat completion that says little: the review ends, the key was used.
    Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "no opinion"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2},
    }))
}

/// A shared buffer the test's tracing subscriber writes every log line to.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_a_response_a_metric_the_audit_log_or_the_store() {
    // This test's process only (nextest runs each test alone in its process): every log line
    // of the control plane, at trace level for Vigil's own crates.
    let logs = Logs::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "info,control_plane=trace,vigil_domain=trace",
        ))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let (llm, slack) = (Seen::default(), Seen::default());
    let llm_addr = crate::support::http::serve(
        Router::new()
            .route("/v1/chat/completions", post(record))
            .with_state(llm.clone()),
    );
    let slack_addr = crate::support::http::serve(
        Router::new()
            .route(HOOK_PATH, post(record))
            .with_state(slack.clone()),
    );
    let hook = format!("http://{slack_addr}{HOOK_PATH}");
    let pid = std::process::id();
    let (key_env, hook_env, secret_env) = (
        format!("VIGIL_TEST_LLM_KEY_{pid}"),
        format!("VIGIL_TEST_SLACK_HOOK_{pid}"),
        format!("VIGIL_TEST_SLACK_SECRET_{pid}"),
    );
    std::env::set_var(&key_env, LLM_KEY);
    std::env::set_var(&hook_env, &hook);
    std::env::set_var(&secret_env, SIGNING);

    let plane = Plane::start_with(&[APP], |c| {
        slack_approvals(c, &hook_env, &secret_env);
        c.diagnosis.llm = Some(
            serde_json::from_value::<LlmConfig>(json!({
                "provider": "openai",
                "url": format!("http://{llm_addr}/v1"),
                "model": "leak-test",
                "api_key_env": key_env,
            }))
            .expect("llm config"),
        );
    })
    .await;
    let base = plane.base();
    let admin = plane.running_token();
    let client = plane.client();

    // An approver's token, shown once by design.
    let approver = issue_token(&client, &base, "alice", "approver").await;

    // The secrets were used where they belong.
    let asked = until("the LLM asked", 150, || llm.all().first().cloned()).await;
    assert_eq!(
        asked.0,
        format!("Bearer {LLM_KEY}"),
        "the key goes in the header"
    );
    until("the approval request posted to Slack", 150, || {
        slack.all().first().cloned()
    })
    .await;

    let audit_key = std::fs::read_to_string(plane.dir().join("audit-ed25519.key"))
        .expect("the audit key file")
        .trim()
        .to_string();
    let secrets = [
        ("the admin token", admin.trim().to_string()),
        ("the approver token", approver.clone()),
        ("the LLM key", LLM_KEY.to_string()),
        ("the Slack signing secret", SIGNING.to_string()),
        ("the Slack webhook URL", HOOK_PATH.to_string()),
        ("the audit signing key", audit_key),
    ];

    // Every output an operator, a scraper or a peer can read.
    let mut outputs: Vec<(String, String)> = Vec::new();
    for path in [
        "/api/v1/incidents",
        "/api/v1/incidents/1",
        "/api/v1/actions",
        "/api/v1/actions/record",
        "/api/v1/audit?limit=10000",
        "/api/v1/tokens",
        "/api/v1/nodes",
        "/api/v1/whoami",
        "/api/v1/detection",
        "/api/v1/feedback",
        "/api/v1/tools",
        "/api/v1/graph",
        "/metrics",
        "/healthz",
        "/console",
        "/console/incidents/1",
        "/console/nodes",
        "/console/graph.json",
    ] {
        let r = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("GET");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        outputs.push((path.to_string(), r.text().await.expect("body")));
    }
    // A refusal names the token it refused, never its secret.
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/tokens"))
        .bearer_auth(&approver)
        .json(&json!({ "name": "mallory", "role": "admin" }))
        .send()
        .await
        .expect("refused");
    assert_eq!(r.status(), 403);
    outputs.push(("a 403".into(), r.text().await.expect("body")));
    for (i, (_, body)) in llm.all().into_iter().enumerate() {
        outputs.push((format!("LLM request {i}'s body"), body));
    }
    for (i, (_, body)) in slack.all().into_iter().enumerate() {
        outputs.push((format!("Slack post {i}"), body));
    }
    for entry in std::fs::read_dir(plane.dir()).expect("store dir").flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        // The token and key files are where those secrets live.
        if name.starts_with("admin-token") || name.starts_with("audit-ed25519.key") {
            continue;
        }
        if let Ok(bytes) = std::fs::read(entry.path()) {
            outputs.push((
                format!("store file {name}"),
                String::from_utf8_lossy(&bytes).to_string(),
            ));
        }
    }
    plane.stop().await;
    let log = String::from_utf8_lossy(&logs.0.lock().expect("lock")).to_string();
    assert!(
        log.contains("LLM") || log.contains("llm"),
        "the log was captured: {log}"
    );
    outputs.push(("the control plane's log".into(), log));

    let mut leaks = Vec::new();
    for (what, secret) in &secrets {
        assert!(secret.len() >= 16, "{what} is a real secret");
        for (place, text) in &outputs {
            if text.contains(secret.as_str()) {
                leaks.push(format!("{what} in {place}"));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked: {leaks:#?}");
    assert!(outputs.len() > 20, "every output was read");
}
