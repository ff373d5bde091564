//! The bounded tool loop: the model asks for tools, Vigil runs them (read-only) and answers,
//! until the model gives its final JSON answer or a bound stops it — steps, tokens, cost or
//! wall time. An exact repeat of a call is refused and counted; an answer that does not parse
//! is retried once, then rejected. On any bound the loop ends with what it knows.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use super::{
    answer::{self, Parsed},
    ports::{ChatModel, ChatRequest, LlmError, Message, ToolCall, ToolDef, Usage},
};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LlmPolicy {
    /// Most chat turns (each model reply is one).
    pub max_steps: u32,
    /// Most tokens, in and out, over the whole investigation.
    pub max_tokens: u64,
    /// Most tokens one reply may take.
    pub max_reply_tokens: u32,
    /// Most spent, in US dollars, at the configured prices (none: no cost bound).
    pub max_cost_usd: Option<f64>,
    pub usd_per_million_input: f64,
    pub usd_per_million_output: f64,
    pub max_wall: Duration,
    /// The evidence brief's size, in tokens.
    pub brief_tokens: usize,
    /// Longest tool result handed back, in tokens.
    pub result_tokens: usize,
}

impl Default for LlmPolicy {
    fn default() -> Self {
        Self {
            max_steps: 8,
            max_tokens: 60_000,
            max_reply_tokens: 1_024,
            max_cost_usd: None,
            usd_per_million_input: 0.0,
            usd_per_million_output: 0.0,
            max_wall: Duration::from_secs(60),
            brief_tokens: 3_000,
            result_tokens: 1_500,
        }
    }
}

/// Which bound stopped the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    Steps,
    Tokens,
    Cost,
    WallTime,
}

impl Bound {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Steps => "steps",
            Self::Tokens => "tokens",
            Self::Cost => "cost",
            Self::WallTime => "wall time",
        }
    }
}

/// How the investigation ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "ending")]
pub enum Ending {
    Answered {
        answer: Parsed,
    },
    /// The answer did not fit the schema twice.
    Rejected {
        error: String,
    },
    Stopped {
        bound: Bound,
    },
    /// The provider failed (unreachable, refused the request, spoke another format).
    Failed {
        error: String,
    },
}

/// What an investigation did and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Investigation {
    pub model: String,
    pub steps: u32,
    /// Tools run, by name, in order.
    pub tool_calls: Vec<String>,
    pub refused_repeats: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub elapsed_ms: u64,
    pub retried_malformed: bool,
    #[serde(flatten)]
    pub ending: Ending,
}

/// Runs one tool call for the model: its result as text, or why it could not run.
pub type RunTool<'a> = dyn Fn(&ToolCall) -> Result<String, String> + 'a;

/// Cuts `text` to about `tokens` tokens, saying so.
fn bounded(mut text: String, tokens: usize) -> String {
    let max = tokens.saturating_mul(4);
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let total = text.len();
        text.truncate(cut);
        text.push_str(&format!(" … (cut to {max} of {total} characters)"));
    }
    text
}

/// A call's identity: its name and its arguments in canonical form (keys sorted).
fn call_key(call: &ToolCall) -> String {
    // serde_json's map is a BTreeMap (no preserve_order): serializing sorts the keys.
    format!("{}:{}", call.name, call.arguments)
}

pub fn investigate(
    model: &dyn ChatModel,
    policy: &LlmPolicy,
    system: String,
    brief: String,
    tools: Vec<ToolDef>,
    run: &RunTool<'_>,
) -> Investigation {
    let started = Instant::now();
    let mut inv = Investigation {
        model: model.name(),
        steps: 0,
        tool_calls: Vec::new(),
        refused_repeats: 0,
        input_tokens: 0,
        output_tokens: 0,
        cost_usd: 0.0,
        elapsed_ms: 0,
        retried_malformed: false,
        ending: Ending::Stopped {
            bound: Bound::Steps,
        },
    };
    let mut request = ChatRequest {
        system,
        messages: vec![Message::User(brief)],
        tools,
        max_tokens: policy.max_reply_tokens,
        timeout: policy.max_wall,
    };
    let mut seen = BTreeSet::new();
    inv.ending = loop {
        if inv.steps >= policy.max_steps {
            break Ending::Stopped {
                bound: Bound::Steps,
            };
        }
        let Some(left) = policy.max_wall.checked_sub(started.elapsed()) else {
            break Ending::Stopped {
                bound: Bound::WallTime,
            };
        };
        request.timeout = left;
        inv.steps += 1;
        let reply = match model.chat(&request) {
            Ok(r) => r,
            Err(LlmError::Timeout(_)) => {
                break Ending::Stopped {
                    bound: Bound::WallTime,
                }
            }
            Err(e) => {
                break Ending::Failed {
                    error: e.to_string(),
                }
            }
        };
        if let Some(bound) = spend(&mut inv, policy, reply.usage) {
            break Ending::Stopped { bound };
        }
        if !reply.calls.is_empty() {
            request.messages.push(Message::Assistant {
                text: reply.text.clone(),
                calls: reply.calls.clone(),
            });
            for call in &reply.calls {
                let (content, is_error) = if !seen.insert(call_key(call)) {
                    inv.refused_repeats += 1;
                    (
                        "refused: the same call with the same arguments was made before; use \
                         its result, call something else, or answer"
                            .to_string(),
                        true,
                    )
                } else {
                    inv.tool_calls.push(call.name.clone());
                    match run(call) {
                        Ok(out) => (bounded(out, policy.result_tokens), false),
                        Err(e) => (format!("error: {e}"), true),
                    }
                };
                request.messages.push(Message::ToolResult {
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    content,
                    is_error,
                });
            }
            continue;
        }
        let text = reply.text.unwrap_or_default();
        match answer::parse(&text) {
            Ok(answer) => break Ending::Answered { answer },
            Err(e) if !inv.retried_malformed => {
                inv.retried_malformed = true;
                request.messages.push(Message::Assistant {
                    text: Some(text),
                    calls: Vec::new(),
                });
                request.messages.push(Message::User(format!(
                    "That answer does not fit the schema ({e}). Reply with only the JSON \
                     object, nothing around it."
                )));
            }
            Err(error) => break Ending::Rejected { error },
        }
    };
    inv.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    inv
}

/// Adds a reply's usage; the bound it crossed, if any.
fn spend(inv: &mut Investigation, policy: &LlmPolicy, usage: Usage) -> Option<Bound> {
    inv.input_tokens += usage.input_tokens;
    inv.output_tokens += usage.output_tokens;
    inv.cost_usd += usage.input_tokens as f64 * policy.usd_per_million_input / 1e6
        + usage.output_tokens as f64 * policy.usd_per_million_output / 1e6;
    if inv.input_tokens + inv.output_tokens > policy.max_tokens {
        return Some(Bound::Tokens);
    }
    policy
        .max_cost_usd
        .filter(|max| inv.cost_usd > *max)
        .map(|_| Bound::Cost)
}
