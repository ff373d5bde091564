//! The model's final answer: a JSON object against one schema, parsed strictly (unknown
//! fields, an unknown class or a confidence outside [0, 1] are errors, not guesses).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::diagnose::taxonomy::FaultClass;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// A taxonomy id, or null when the evidence names none.
    pub class: Option<String>,
    pub confidence: f64,
    pub explanation: String,
    /// Ids of runbooks or postmortems given in the brief.
    #[serde(default)]
    pub citations: Vec<String>,
    #[serde(default)]
    pub recommended_actions: Vec<String>,
}

/// An answer that passed the schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parsed {
    pub class: Option<FaultClass>,
    pub confidence: f64,
    pub explanation: String,
    pub citations: Vec<String>,
    pub recommended_actions: Vec<String>,
}

/// Longest explanation kept, in characters.
const MAX_EXPLANATION: usize = 2_000;
const MAX_ITEMS: usize = 10;

pub fn schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["class", "confidence", "explanation", "citations", "recommended_actions"],
        "properties": {
            "class": {"type": ["string", "null"], "enum": FaultClass::ALL.map(FaultClass::id).into_iter().map(Value::from).chain([Value::Null]).collect::<Vec<_>>()},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "explanation": {"type": "string"},
            "citations": {"type": "array", "items": {"type": "string"}},
            "recommended_actions": {"type": "array", "items": {"type": "string"}}
        }
    })
}

/// The JSON object in `text`: the whole text, or one fenced block in it (models wrap it).
fn json_part(text: &str) -> &str {
    let t = text.trim();
    if let Some(rest) = t.strip_prefix("```") {
        let rest = rest.strip_prefix("json").unwrap_or(rest);
        if let Some(end) = rest.rfind("```") {
            return rest[..end].trim();
        }
    }
    t
}

pub fn parse(text: &str) -> Result<Parsed, String> {
    let a: Answer = serde_json::from_str(json_part(text)).map_err(|e| e.to_string())?;
    let class = match a.class.as_deref() {
        None => None,
        Some(id) => Some(FaultClass::parse(id).ok_or_else(|| {
            format!(
                "class {id:?} is not in the taxonomy ({})",
                FaultClass::ids()
            )
        })?),
    };
    if !(0.0..=1.0).contains(&a.confidence) {
        return Err(format!("confidence {} is outside [0, 1]", a.confidence));
    }
    if a.explanation.trim().is_empty() {
        return Err("the explanation is empty".into());
    }
    let mut explanation = a.explanation;
    if explanation.chars().count() > MAX_EXPLANATION {
        explanation = explanation.chars().take(MAX_EXPLANATION).collect();
        explanation.push_str(" …");
    }
    let bound = |mut v: Vec<String>| {
        v.truncate(MAX_ITEMS);
        v
    };
    Ok(Parsed {
        class,
        confidence: a.confidence,
        explanation,
        citations: bound(a.citations),
        recommended_actions: bound(a.recommended_actions),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_strictly() {
        let good = r#"{"class":"oom_kill","confidence":0.9,"explanation":"killed","citations":["rb-oom"],"recommended_actions":[]}"#;
        let p = parse(good).expect("good");
        assert_eq!(p.class, Some(FaultClass::OomKill));
        assert_eq!(parse(&format!("```json\n{good}\n```")).expect("fenced"), p);
        for bad in [
            "the app ran out of memory",
            r#"{"class":"out_of_memory","confidence":0.9,"explanation":"x"}"#,
            r#"{"class":"oom_kill","confidence":1.5,"explanation":"x"}"#,
            r#"{"class":"oom_kill","confidence":0.5,"explanation":"x","extra":1}"#,
            r#"{"class":"oom_kill","confidence":0.5,"explanation":" "}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
