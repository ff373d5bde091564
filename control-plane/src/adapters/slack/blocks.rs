//! An action as a Slack message (Block Kit): what Vigil wants to do or did, to which
//! workload, for which incident, and — while it waits for an approver — the approve and deny
//! buttons, whose value is the action's id.

use serde_json::{json, Value};

use crate::domain::remediate::{ActionRecord, ActionState};

/// The buttons' `action_id`s, as the interaction endpoint reads them back.
pub const APPROVE: &str = "vigil_approve";
pub const DENY: &str = "vigil_deny";

/// Whether an action in `state` is worth a message: one waiting for an approver, one that
/// ran, and every end an operator must hear of. Observe-phase decisions and refusals stay in
/// the audit log and the console (they would drown the channel).
pub fn worth_telling(state: ActionState) -> bool {
    !matches!(state, ActionState::Observed | ActionState::Refused)
}

/// One line saying where the action stands.
fn headline(r: &ActionRecord) -> String {
    let what = format!(
        "`{}` on `{}` (incident {}, action {})",
        r.request.class.as_str(),
        r.request.target,
        r.request.incident,
        r.id
    );
    match r.state {
        ActionState::PendingApproval => {
            let until = r
                .expires_unix_ns
                .and_then(|ns| jiff::Timestamp::from_nanosecond(i128::from(ns)).ok())
                .map_or_else(String::new, |t| {
                    format!(" until {}", t.strftime("%H:%M UTC"))
                });
            format!(":raising_hand: Vigil asks to run {what}: waiting for an approver{until}")
        }
        ActionState::Verifying => {
            let by = r.approved_by.as_deref().map_or_else(
                || "autonomously".to_string(),
                |b| format!("approved by {b}"),
            );
            let detail = r.applied.as_ref().map_or("", |a| a.detail.as_str());
            format!(":gear: Ran {what}, {by}: {detail}. Watching the incident's signals.")
        }
        ActionState::Recovered => format!(":white_check_mark: {what}: {}", r.outcome),
        ActionState::RolledBack => format!(":rewind: {what} rolled back: {}", r.outcome),
        ActionState::Escalated => format!(":warning: {what} escalated: {}", r.outcome),
        ActionState::Failed => format!(":x: {what} failed: {}", r.outcome),
        ActionState::Denied => format!(":no_entry: {what}: {}", r.outcome),
        ActionState::Expired => format!(":hourglass: {what}: {}", r.outcome),
        ActionState::Observed | ActionState::Refused => {
            format!("{what}: {} ({})", r.state.as_str(), r.outcome)
        }
    }
}

/// The message for `r`; with `buttons`, a waiting action carries approve and deny.
pub fn message(r: &ActionRecord, console_url: Option<&str>, buttons: bool) -> Value {
    let text = headline(r);
    let mut context = vec![format!(
        "phase {:?} · confidence {:.2} · severity {:?}",
        r.phase, r.request.confidence, r.request.severity
    )];
    if let Some(base) = console_url {
        context.push(format!(
            "<{}/console/incidents/{}|open incident {} in Vigil's console>",
            base.trim_end_matches('/'),
            r.request.incident,
            r.request.incident
        ));
    }
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}),
        json!({"type": "context", "elements": context.iter()
            .map(|c| json!({"type": "mrkdwn", "text": c})).collect::<Vec<_>>()}),
    ];
    if buttons && r.state == ActionState::PendingApproval {
        let id = r.id.to_string();
        blocks.push(json!({
            "type": "actions",
            "block_id": format!("vigil_action_{id}"),
            "elements": [
                {"type": "button", "action_id": APPROVE, "value": id, "style": "primary",
                 "text": {"type": "plain_text", "text": "Approve"},
                 "confirm": {"title": {"type": "plain_text", "text": "Run this action?"},
                             "text": {"type": "mrkdwn", "text": text},
                             "confirm": {"type": "plain_text", "text": "Approve"},
                             "deny": {"type": "plain_text", "text": "Cancel"}}},
                {"type": "button", "action_id": DENY, "value": id, "style": "danger",
                 "text": {"type": "plain_text", "text": "Deny"}},
            ],
        }));
    }
    json!({"text": text, "blocks": blocks})
}
