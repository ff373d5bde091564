//! Slack approvals through the real control plane and a Slack stand-in on a real socket: an
//! action waiting for an approver is posted to the incoming webhook with approve and deny
//! buttons; a press with a bad signature, a stale timestamp or from someone not listed as an
//! approver changes nothing (the webhook's first answer is a 503, which the notifier
//! retries); a good one approves, the message is replaced through the
//! interaction's response URL, and the outcome is posted.

use std::sync::{Arc, Mutex};

use crate::support::plane::{slack_approvals, Plane};
use crate::support::time::until;
use axum::{extract::State, routing::post, Json, Router};
use control_plane::adapters::slack::{blocks, signature::sign, SigningSecret};
use serde_json::{json, Value};

#[derive(Clone, Default)]
struct Slack {
    hook: Arc<Mutex<Vec<Value>>>,
    responses: Arc<Mutex<Vec<Value>>>,
    /// Posts the webhook answered 503 (the first one is), as Slack does when it is down.
    refused: Arc<Mutex<usize>>,
}

async fn hook(
    State(s): State<Slack>,
    Json(body): Json<Value>,
) -> (axum::http::StatusCode, &'static str) {
    let mut refused = s.refused.lock().expect("lock");
    if *refused == 0 {
        *refused += 1;
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down");
    }
    s.hook.lock().expect("lock").push(body);
    (axum::http::StatusCode::OK, "ok")
}

async fn respond(State(s): State<Slack>, Json(body): Json<Value>) -> &'static str {
    s.responses.lock().expect("lock").push(body);
    "ok"
}

const SECRET: &str = "test-signing-secret-0123456789";

fn press(user: &str, action_id: &str, value: &str, response_url: &str) -> String {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": user.trim_start_matches("U_").to_lowercase(), "team_id": "T1"},
        "actions": [{"action_id": action_id, "block_id": "b", "value": value, "type": "button"}],
        "response_url": response_url,
    });
    serde_urlencoded::to_string([("payload", payload.to_string())]).expect("form")
}

async fn actions(plane: &Plane) -> Value {
    plane
        .client()
        .get(format!("{}/api/v1/actions?incident=1", plane.base()))
        .send()
        .await
        .expect("actions")
        .json()
        .await
        .expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_press_approves_only_when_signed_fresh_and_from_an_approver() {
    const GONE: &str = "cgroup/vigil-test-no-such-cgroup/app";
    let slack = Slack::default();
    let addr = crate::support::http::serve(
        Router::new()
            .route("/hook", post(hook))
            .route("/respond", post(respond))
            .with_state(slack.clone()),
    );
    // Names of this process's own: no other test reads them.
    let (hook_env, secret_env) = (
        format!("VIGIL_TEST_SLACK_HOOK_{}", std::process::id()),
        format!("VIGIL_TEST_SLACK_SECRET_{}", std::process::id()),
    );
    std::env::set_var(&hook_env, format!("http://{addr}/hook"));
    std::env::set_var(&secret_env, SECRET);
    let plane = Plane::start_with(&[GONE], |c| slack_approvals(c, &hook_env, &secret_env)).await;

    // The first post is answered 503: the notifier posts it again.
    let asked = until("the approval request in Slack", 100, || {
        slack.hook.lock().expect("lock").first().cloned()
    })
    .await;
    assert_eq!(
        *slack.refused.lock().expect("lock"),
        1,
        "refused once, then retried"
    );
    let text = asked["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("raise_memory_limit") && text.contains("waiting for an approver"),
        "{asked:#}"
    );
    let buttons = asked["blocks"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["type"] == "actions"))
        .expect("an actions block");
    let approve = &buttons["elements"][0];
    assert_eq!(approve["action_id"], blocks::APPROVE);
    assert_eq!(buttons["elements"][1]["action_id"], blocks::DENY);
    let id = approve["value"]
        .as_str()
        .expect("the action's id")
        .to_string();
    assert!(asked
        .to_string()
        .contains("https://vigil.example/console/incidents/1"));

    let url = format!("{}/api/v1/slack/interactions", plane.base());
    let respond_url = format!("http://{addr}/respond");
    let anonymous = reqwest::Client::new();
    let secret = SigningSecret::new(SECRET.into());
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            .to_string()
    };
    let send = |body: String, ts: String, signature: String| {
        anonymous
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", signature)
            .body(body)
            .send()
    };
    let pending = || async {
        actions(&plane).await[0]["state"]
            .as_str()
            .unwrap_or_default()
            == "pending_approval"
    };

    let alice = press("U_ALICE", blocks::APPROVE, &id, &respond_url);
    // Signed with another secret.
    let forged = sign(
        &SigningSecret::new("not-the-secret".into()),
        &now(),
        alice.as_bytes(),
    );
    let r = send(alice.clone(), now(), forged).await.expect("send");
    assert_eq!(r.status(), 401);
    assert!(r
        .text()
        .await
        .unwrap_or_default()
        .contains("does not match"));
    // Signed right, ten minutes ago: a replay.
    let old = (now().parse::<u64>().expect("secs") - 600).to_string();
    let r = send(
        alice.clone(),
        old.clone(),
        sign(&secret, &old, alice.as_bytes()),
    )
    .await
    .expect("send");
    assert_eq!(r.status(), 401);
    assert!(r
        .text()
        .await
        .unwrap_or_default()
        .contains("beyond the 300 s"));
    // Signed right, from someone not listed.
    let mallory = press("U_MALLORY", blocks::APPROVE, &id, &respond_url);
    let ts = now();
    let r = send(
        mallory.clone(),
        ts.clone(),
        sign(&secret, &ts, mallory.as_bytes()),
    )
    .await
    .expect("send");
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap_or_default()
        .contains("may not approve"));
    assert!(
        pending().await,
        "nothing changed after three refused presses"
    );

    let ts = now();
    let r = send(
        alice.clone(),
        ts.clone(),
        sign(&secret, &ts, alice.as_bytes()),
    )
    .await
    .expect("send");
    assert_eq!(r.status(), 200);
    assert!(!pending().await, "the good press was taken");
    let action = actions(&plane).await;
    assert_eq!(action[0]["approved_by"], "slack:alice", "{action:#}");
    // The local runtime tried it: this cgroup does not exist, which it says.
    assert_eq!(action[0]["state"], "failed", "{action:#}");

    let replaced = until("the message replaced through response_url", 100, || {
        let r = slack.responses.lock().expect("lock");
        r.iter().find(|m| m["replace_original"] == true).cloned()
    })
    .await;
    assert!(
        replaced["text"]
            .as_str()
            .unwrap_or_default()
            .contains("failed"),
        "{replaced:#}"
    );
    assert!(slack
        .responses
        .lock()
        .expect("lock")
        .iter()
        .any(|m| m["text"]
            .as_str()
            .unwrap_or_default()
            .contains("slack:mallory may not approve")));
    let told = until("the outcome in the channel", 100, || {
        let h = slack.hook.lock().expect("lock");
        h.iter()
            .find(|m| m["text"].as_str().unwrap_or_default().contains("failed"))
            .cloned()
    })
    .await;
    assert!(
        !told.to_string().contains(blocks::APPROVE),
        "an action past approval has no buttons: {told:#}"
    );
    let audit = plane
        .client()
        .get(format!("{}/api/v1/audit", plane.base()))
        .send()
        .await
        .expect("audit")
        .text()
        .await
        .expect("text");
    assert!(audit.contains("approved by slack:alice"), "{audit}");
    plane.stop().await;
}
