//! Stages: the steps of the pipeline that produced an incident (detect, correlate, localize,
//! …), with when each ran and what it concluded. Exported as the spans of the incident's trace.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::entity::EntityId;

/// One value a stage concluded: what a trace span attribute can hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StageValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl std::fmt::Display for StageValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bool(v) => v.fmt(f),
            Self::Int(v) => v.fmt(f),
            Self::Float(v) => v.fmt(f),
            Self::Text(v) => f.write_str(v),
        }
    }
}

macro_rules! stage_value_from {
    ($($t:ty => $variant:ident($conv:expr)),* $(,)?) => {
        $(impl From<$t> for StageValue {
            fn from(v: $t) -> Self {
                Self::$variant($conv(v))
            }
        })*
    };
}

stage_value_from! {
    bool => Bool(|v| v),
    i64 => Int(|v| v),
    u8 => Int(i64::from),
    u32 => Int(i64::from),
    usize => Int(|v: usize| i64::try_from(v).unwrap_or(i64::MAX)),
    f64 => Float(|v| v),
    &str => Text(str::to_string),
    String => Text(|v| v),
    &EntityId => Text(|v: &EntityId| v.to_string()),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub stage: String,
    pub start_unix_ns: i64,
    pub end_unix_ns: i64,
    /// What the stage concluded (root cause, entities, method, …).
    #[serde(default)]
    pub attributes: BTreeMap<String, StageValue>,
}

impl Stage {
    pub fn new(stage: &str, start_unix_ns: i64, end_unix_ns: i64) -> Self {
        Self {
            stage: stage.to_string(),
            start_unix_ns,
            end_unix_ns: end_unix_ns.max(start_unix_ns),
            attributes: BTreeMap::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<StageValue>) -> Self {
        self.attributes.insert(key.to_string(), value.into());
        self
    }
}
