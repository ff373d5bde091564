//! Anthropic messages: the system prompt is a field, content is a list of blocks, a tool call
//! is a `tool_use` block and its result a `tool_result` block in the next user turn. Turns
//! alternate, so consecutive user-side messages are merged into one.

use serde_json::{json, Value};

use crate::domain::diagnose::llm::{ChatRequest, LlmError, Message, Reply, ToolCall};

/// The API version the body is written for.
pub const VERSION: &str = "2023-06-01";

pub fn request_body(model: &str, request: &ChatRequest) -> Value {
    let mut turns: Vec<(&str, Vec<Value>)> = Vec::new();
    for m in &request.messages {
        let (role, block) = match m {
            Message::User(text) => ("user", vec![json!({"type": "text", "text": text})]),
            Message::Assistant { text, calls } => (
                "assistant",
                text.iter()
                    .filter(|t| !t.is_empty())
                    .map(|t| json!({"type": "text", "text": t}))
                    .chain(calls.iter().map(|c| {
                        json!({"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments})
                    }))
                    .collect(),
            ),
            Message::ToolResult {
                call_id,
                content,
                is_error,
                ..
            } => (
                "user",
                vec![json!({
                    "type": "tool_result", "tool_use_id": call_id,
                    "content": content, "is_error": is_error,
                })],
            ),
        };
        match turns.last_mut() {
            Some((last, blocks)) if *last == role => blocks.extend(block),
            _ => turns.push((role, block)),
        }
    }
    let mut body = json!({
        "model": model,
        "system": request.system,
        "max_tokens": request.max_tokens,
        "messages": turns
            .into_iter()
            .map(|(role, content)| json!({"role": role, "content": content}))
            .collect::<Vec<_>>(),
    });
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
    }
    body
}

pub fn parse_reply(reply: &Value) -> Result<Reply, LlmError> {
    let blocks = reply
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| LlmError::Protocol("no content blocks in the reply".into()))?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => calls.push(ToolCall {
                id: b
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| LlmError::Protocol(format!("content[{i}] tool_use has no id")))?
                    .to_string(),
                name: b
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        LlmError::Protocol(format!("content[{i}] tool_use has no name"))
                    })?
                    .to_string(),
                arguments: b.get("input").cloned().unwrap_or(Value::Null),
            }),
            // Thinking and other blocks are not part of the answer.
            _ => {}
        }
    }
    Ok(Reply {
        text: (!text.is_empty()).then_some(text),
        calls,
        usage: super::usage(reply, "input_tokens", "output_tokens"),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn tool_results_join_one_user_turn_and_the_system_prompt_is_a_field() {
        let call = |id: &str| ToolCall {
            id: id.into(),
            name: "t".into(),
            arguments: json!({}),
        };
        let result = |id: &str| Message::ToolResult {
            call_id: id.into(),
            name: "t".into(),
            content: "r".into(),
            is_error: id == "b",
        };
        let request = ChatRequest {
            system: "sys".into(),
            messages: vec![
                Message::User("brief".into()),
                Message::Assistant {
                    text: Some("looking".into()),
                    calls: vec![call("a"), call("b")],
                },
                result("a"),
                result("b"),
                Message::User("again".into()),
            ],
            tools: vec![],
            max_tokens: 10,
            timeout: Duration::from_secs(1),
        };
        let body = request_body("m", &request);
        assert_eq!(body["system"], "sys");
        let turns = body["messages"].as_array().expect("messages");
        assert_eq!(turns.len(), 3, "{body:#}");
        assert_eq!(turns[1]["content"][1]["type"], "tool_use");
        assert_eq!(turns[2]["content"][0]["tool_use_id"], "a");
        assert_eq!(turns[2]["content"][1]["is_error"], true);
        assert_eq!(turns[2]["content"][2]["text"], "again");
        assert!(body.get("tools").is_none());

        let reply = parse_reply(&json!({
            "content": [{"type": "text", "text": "hm"}, {"type": "tool_use", "id": "u", "name": "t", "input": {"x": 1}}],
            "usage": {"input_tokens": 5, "output_tokens": 2}
        }))
        .expect("parse");
        assert_eq!(reply.text.as_deref(), Some("hm"));
        assert_eq!(reply.calls[0].arguments, json!({"x": 1}));
        assert!(parse_reply(&json!({"type": "error"})).is_err());
    }
}
