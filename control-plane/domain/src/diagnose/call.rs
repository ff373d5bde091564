//! Calling one evidence tool by name with JSON arguments: what the LLM loop and the MCP server
//! do. The arguments name an incident (its window and root cause) or an entity and a window;
//! either way the tool reads only.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::evidence::Scope;
use crate::{entity::EntityId, store::StoreError};

/// The widest window a caller may ask about: a tool's work stays bounded.
pub const MAX_WINDOW_NS: i64 = 3_600_000_000_000;

/// What a caller asks a tool about. Unset fields come from the incident (or the one under
/// investigation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_unix_ns: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_unix_ns: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("no evidence tool is named {name:?}; the tools are: {known}")]
    UnknownTool { name: String, known: String },
    #[error("the arguments do not fit the tool's input schema: {0}")]
    BadInput(String),
    #[error("incident {0} does not exist")]
    UnknownIncident(u64),
    #[error("say which incident (`incident`) or which entity and window (`entity`, `from_unix_ns`, `to_unix_ns`) to look at")]
    NoScope,
    #[error("the window must end after it starts and span at most an hour ({from}..{to})")]
    BadWindow { from: i64, to: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ToolInput {
    pub fn parse(args: &Value) -> Result<Self, CallError> {
        // A model that calls with no arguments sends null or an empty string, meaning "{}".
        match args {
            Value::Null => Ok(Self::default()),
            Value::String(s) if s.trim().is_empty() => Ok(Self::default()),
            Value::String(s) => {
                serde_json::from_str(s).map_err(|e| CallError::BadInput(e.to_string()))
            }
            v => serde_json::from_value(v.clone()).map_err(|e| CallError::BadInput(e.to_string())),
        }
    }

    /// The scope asked for: `base` (the incident's) with what the input overrides.
    pub fn scope(&self, base: Option<&Scope>, now_unix_ns: i64) -> Result<Scope, CallError> {
        let mut scope = match (base, &self.entity) {
            (Some(b), _) => b.clone(),
            (None, Some(e)) => Scope {
                entity: EntityId::new(e.clone()),
                from_unix_ns: now_unix_ns - 300_000_000_000,
                to_unix_ns: now_unix_ns,
                onset_unix_ns: None,
                lookback_ns: 60_000_000_000,
            },
            (None, None) => return Err(CallError::NoScope),
        };
        if let Some(e) = &self.entity {
            scope.entity = EntityId::new(e.clone());
        }
        if let Some(f) = self.from_unix_ns {
            scope.from_unix_ns = f;
        }
        if let Some(t) = self.to_unix_ns {
            scope.to_unix_ns = t;
        }
        let (from, to) = (scope.from_unix_ns, scope.to_unix_ns);
        if to <= from || to - from > MAX_WINDOW_NS {
            return Err(CallError::BadWindow { from, to });
        }
        Ok(scope)
    }
}

/// The JSON schema every tool takes.
pub fn input_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "incident": {"type": "integer", "description": "An incident id: its root cause and window. Optional during an investigation (the incident under investigation)."},
            "entity": {"type": "string", "description": "Another entity to look at instead, e.g. cgroup/redis or a service name as incidents name it."},
            "from_unix_ns": {"type": "integer", "description": "Window start, Unix nanoseconds."},
            "to_unix_ns": {"type": "integer", "description": "Window end, Unix nanoseconds (at most an hour after the start)."}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Scope {
        Scope {
            entity: EntityId::new("cgroup/app"),
            from_unix_ns: 100,
            to_unix_ns: 200,
            onset_unix_ns: Some(150),
            lookback_ns: 10,
        }
    }

    #[test]
    fn arguments_override_the_incident_scope_and_bad_ones_are_named() {
        let input = ToolInput::parse(&json!({"entity": "cgroup/redis"})).expect("parse");
        let s = input.scope(Some(&base()), 0).expect("scope");
        assert_eq!(s.entity, EntityId::new("cgroup/redis"));
        assert_eq!((s.from_unix_ns, s.to_unix_ns), (100, 200));
        assert!(ToolInput::parse(&Value::Null)
            .expect("null")
            .scope(Some(&base()), 0)
            .is_ok());
        let unknown = ToolInput::parse(&json!({"entiy": "x"})).expect_err("typo");
        assert!(unknown.to_string().contains("entiy"), "{unknown}");
        assert!(matches!(
            ToolInput::default().scope(None, 0),
            Err(CallError::NoScope)
        ));
        let backwards = ToolInput {
            to_unix_ns: Some(50),
            ..ToolInput::default()
        };
        assert!(matches!(
            backwards.scope(Some(&base()), 0),
            Err(CallError::BadWindow { .. })
        ));
    }
}
