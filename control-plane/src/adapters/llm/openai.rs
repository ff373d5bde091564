//! OpenAI-compatible chat completions: the system prompt is the first message, tool calls
//! carry their arguments as a JSON string, results come back as `tool` messages.

use serde_json::{json, Value};

use crate::domain::diagnose::llm::{ChatRequest, LlmError, Message, Reply, ToolCall};

pub fn request_body(model: &str, request: &ChatRequest) -> Value {
    let mut messages = vec![json!({"role": "system", "content": request.system})];
    for m in &request.messages {
        messages.push(match m {
            Message::User(text) => json!({"role": "user", "content": text}),
            Message::Assistant { text, calls } if calls.is_empty() => {
                json!({"role": "assistant", "content": text})
            }
            Message::Assistant { text, calls } => json!({
                "role": "assistant",
                "content": text,
                "tool_calls": calls.iter().map(|c| json!({
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments.to_string()},
                })).collect::<Vec<_>>(),
            }),
            Message::ToolResult {
                call_id, content, ..
            } => json!({"role": "tool", "tool_call_id": call_id, "content": content}),
        });
    }
    let mut body = json!({
        "model": model,
        "messages": messages,
        "max_tokens": request.max_tokens,
    });
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters,
                }})
            })
            .collect();
    }
    body
}

pub fn parse_reply(reply: &Value) -> Result<Reply, LlmError> {
    let message = reply
        .pointer("/choices/0/message")
        .ok_or_else(|| LlmError::Protocol("no choices[0].message in the reply".into()))?;
    let text = message
        .get("content")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut calls = Vec::new();
    for (i, c) in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = c
            .pointer("/function/name")
            .and_then(Value::as_str)
            .ok_or_else(|| LlmError::Protocol(format!("tool_calls[{i}] has no function.name")))?;
        let raw = c
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .unwrap_or("{}");
        calls.push(ToolCall {
            id: c
                .get("id")
                .and_then(Value::as_str)
                .map_or_else(|| format!("call_{i}"), str::to_string),
            name: name.to_string(),
            // Arguments that are not JSON go to the tool as they are: it says what is wrong,
            // and the model can mend them.
            arguments: serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.into())),
        });
    }
    Ok(Reply {
        text,
        calls,
        usage: super::usage(reply, "prompt_tokens", "completion_tokens"),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::diagnose::llm::ToolDef;

    #[test]
    fn a_tool_round_trip_is_in_the_chat_completions_shape() {
        let request = ChatRequest {
            system: "sys".into(),
            messages: vec![
                Message::User("brief".into()),
                Message::Assistant {
                    text: None,
                    calls: vec![ToolCall {
                        id: "c1".into(),
                        name: "edge_stats".into(),
                        arguments: json!({"entity": "svc"}),
                    }],
                },
                Message::ToolResult {
                    call_id: "c1".into(),
                    name: "edge_stats".into(),
                    content: "{}".into(),
                    is_error: false,
                },
            ],
            tools: vec![ToolDef {
                name: "edge_stats".into(),
                description: "d".into(),
                parameters: json!({"type": "object"}),
            }],
            max_tokens: 100,
            timeout: Duration::from_secs(1),
        };
        let body = request_body("m", &request);
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(
            body["messages"][2]["tool_calls"][0]["function"]["arguments"],
            r#"{"entity":"svc"}"#
        );
        assert_eq!(body["messages"][3]["role"], "tool");
        assert_eq!(body["messages"][3]["tool_call_id"], "c1");
        assert_eq!(body["tools"][0]["function"]["name"], "edge_stats");

        let reply = parse_reply(&json!({
            "choices": [{"message": {"content": null, "tool_calls": [
                {"id": "x", "type": "function", "function": {"name": "t", "arguments": "{\"a\":1}"}},
                {"id": "y", "type": "function", "function": {"name": "t", "arguments": "{oops"}}
            ]}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3}
        }))
        .expect("parse");
        assert_eq!(reply.calls[0].arguments, json!({"a": 1}));
        assert_eq!(reply.calls[1].arguments, json!("{oops"));
        assert_eq!(reply.usage.input_tokens, 7);
        assert!(parse_reply(&json!({"error": "x"})).is_err());
    }
}
