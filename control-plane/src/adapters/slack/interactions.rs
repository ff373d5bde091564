//! `POST /api/v1/slack/interactions`: Slack calls here when someone presses approve or deny
//! on a message. The request carries no API token; Slack's signature is its credential, so a
//! bad one or a stale timestamp is refused with 401 before the body is read. A press is taken
//! only from a listed approver, recorded as `slack:<user>`, judged by the guardrails again
//! like any approval, and the message is replaced by the outcome through the interaction's
//! `response_url`.

use std::{collections::BTreeSet, sync::Arc};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn};

use super::{
    blocks,
    notifier::{SecretUrl, SlackNotifier},
    signature::{self, SigningSecret},
};
use crate::domain::{
    clock::Clock,
    remediate::{ActionId, RemediationService},
};
use vigil_config_file::error_chain as chain;

pub const PATH: &str = "/api/v1/slack/interactions";

#[derive(Clone)]
pub struct SlackInteractions {
    pub secret: Arc<SigningSecret>,
    /// Slack user IDs whose presses are taken.
    pub approvers: Arc<BTreeSet<String>>,
    pub max_age_secs: i64,
    pub remediation: Arc<RemediationService>,
    pub notifier: Arc<SlackNotifier>,
    pub clock: Arc<dyn Clock>,
}

/// The parts of a `block_actions` payload this reads.
#[derive(Debug, Deserialize)]
struct Interaction {
    #[serde(rename = "type")]
    kind: String,
    user: SlackUser,
    #[serde(default)]
    actions: Vec<Pressed>,
    #[serde(default)]
    response_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SlackUser {
    id: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Pressed {
    action_id: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Form {
    payload: String,
}

/// An approval button pressed, as a verified request's body says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Press {
    pub approve: bool,
    pub action: ActionId,
    /// The Slack user ID (what `[slack] approvers` lists).
    pub user_id: String,
    /// `slack:<name>` for the audit log.
    pub who: String,
    pub response_url: Option<String>,
}

/// Reads an interaction's form body: `Ok(None)` for one that is not a press of Vigil's
/// approve or deny button (acknowledged, nothing done), `Err` naming why the body is not a
/// Slack interaction at all.
pub fn parse_press(body: &[u8]) -> Result<Option<Press>, String> {
    let interaction = serde_urlencoded::from_bytes::<Form>(body)
        .map_err(|e| e.to_string())
        .and_then(|f| serde_json::from_str::<Interaction>(&f.payload).map_err(|e| e.to_string()))
        .map_err(|e| format!("not a Slack interaction (a form with a JSON `payload`): {e}"))?;
    if interaction.kind != "block_actions" {
        return Ok(None);
    }
    let Some((approve, action)) = interaction.actions.iter().find_map(|a| {
        let approve = match a.action_id.as_str() {
            blocks::APPROVE => true,
            blocks::DENY => false,
            _ => return None,
        };
        Some((approve, ActionId(a.value.as_deref()?.parse().ok()?)))
    }) else {
        return Ok(None);
    };
    let user = interaction.user;
    let who = format!(
        "slack:{}",
        user.username
            .as_deref()
            .or(user.name.as_deref())
            .unwrap_or(&user.id)
    );
    Ok(Some(Press {
        approve,
        action,
        user_id: user.id,
        who,
        response_url: interaction.response_url,
    }))
}

fn refuse(status: StatusCode, why: String) -> Response {
    (status, Json(json!({ "error": why }))).into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn interact(State(s): State<SlackInteractions>, headers: HeaderMap, body: Bytes) -> Response {
    let now_secs = s.clock.now_unix_ns() / 1_000_000_000;
    if let Err(e) = signature::verify(
        &s.secret,
        header(&headers, "x-slack-request-timestamp"),
        header(&headers, "x-slack-signature"),
        &body,
        now_secs,
        s.max_age_secs,
    ) {
        warn!(error = %e, "refused a Slack interaction");
        return refuse(StatusCode::UNAUTHORIZED, e.to_string());
    }
    let press = match parse_press(&body) {
        Ok(Some(press)) => press,
        Ok(None) => return StatusCode::OK.into_response(),
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let Press {
        approve,
        action: id,
        user_id,
        who,
        response_url,
    } = press;
    let reply = response_url.and_then(|u| SecretUrl::parse(u).ok());
    if !s.approvers.contains(&user_id) {
        warn!(user = %user_id, %who, action = %id, "a Slack user who is not an approver pressed a button; nothing changed");
        let text = format!("{who} may not approve or deny actions: an admin lists approvers' Slack user IDs in [slack] approvers. Nothing changed.");
        if let Some(url) = reply {
            s.notifier.post(
                url,
                json!({"response_type": "ephemeral", "replace_original": false, "text": text}),
                format!("refusal of {who} on action {id}"),
            );
        }
        return (StatusCode::OK, Json(json!({ "error": text }))).into_response();
    }
    let remediation = s.remediation.clone();
    let by = who.clone();
    let judged = tokio::task::spawn_blocking(move || {
        if approve {
            remediation.approve(id, &by)
        } else {
            remediation.deny(id, &by)
        }
    })
    .await;
    let body = match judged {
        Ok(Ok(record)) => {
            info!(action = %id, %who, state = record.state.as_str(), "judged from Slack");
            let mut message = blocks::message(&record, s.notifier.console_url(), false);
            message["replace_original"] = json!(true);
            message
        }
        Ok(Err(e)) => json!({"response_type": "ephemeral", "replace_original": false,
                             "text": format!("Nothing changed: {}", chain(&e))}),
        Err(e) => json!({"response_type": "ephemeral", "replace_original": false,
                         "text": format!("Nothing changed: the request failed ({e})")}),
    };
    if let Some(url) = reply {
        s.notifier.post(
            url,
            body.clone(),
            format!("outcome of {who} on action {id}"),
        );
    }
    (StatusCode::OK, Json(body)).into_response()
}

pub fn router(state: SlackInteractions) -> Router {
    Router::new().route(PATH, post(interact)).with_state(state)
}
