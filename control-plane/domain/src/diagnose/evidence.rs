//! What evidence is: the window a tool is asked about (`Scope`), the facts it found
//! (`Observation`), its votes on the taxonomy (`Vote`), and its bounded answer (`ToolOutput`).
//! Plain data, so a stored diagnosis, the LLM loop and MCP share it without the tools.

use serde::{Deserialize, Serialize};

use super::taxonomy::FaultClass;
use crate::entity::EntityId;

/// Most observations one tool returns: ranked, the rest counted in `omitted`.
pub const MAX_OBSERVATIONS: usize = 12;

/// What a tool looks at: one entity, a window of trouble and the quiet stretch before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scope {
    pub entity: EntityId,
    /// The window judged: from a little before the first symptom to now (or the resolution).
    /// Events (an exec, a kill, a new binary) count from here: a cause precedes its symptom.
    pub from_unix_ns: i64,
    pub to_unix_ns: i64,
    /// When the symptom began. Rates (bytes, errors, round trips) are judged from here, so
    /// the healthy seconds of the lead do not dilute them. Absent: `from_unix_ns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onset_unix_ns: Option<i64>,
    /// How far back "before" reaches from `from_unix_ns`.
    #[serde(default = "default_lookback_ns")]
    pub lookback_ns: i64,
}

fn default_lookback_ns() -> i64 {
    120_000_000_000
}

impl Scope {
    pub fn before_from_unix_ns(&self) -> i64 {
        self.from_unix_ns - self.lookback_ns
    }

    fn seconds(ns: i64) -> f64 {
        (ns.max(1_000_000_000)) as f64 / 1e9
    }

    /// The window's length in seconds (at least one).
    pub fn during_secs(&self) -> f64 {
        Self::seconds(self.to_unix_ns - self.from_unix_ns)
    }

    /// When the symptom began (never before the window).
    pub fn onset_unix_ns(&self) -> i64 {
        self.onset_unix_ns
            .map_or(self.from_unix_ns, |o| o.max(self.from_unix_ns))
    }

    /// From the symptom's onset to the window's end, in seconds (at least one).
    pub fn symptom_secs(&self) -> f64 {
        Self::seconds(self.to_unix_ns - self.onset_unix_ns())
    }

    pub fn before_secs(&self) -> f64 {
        Self::seconds(self.lookback_ns)
    }
}

/// One fact a tool found, ranked by `weight` (how far from normal, or how telling).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub what: String,
    /// In the window judged, and before it (`None`: not measured before).
    pub value: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<f64>,
    pub unit: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    #[serde(skip)]
    pub weight: f64,
}

impl Observation {
    pub fn new(what: impl Into<String>, value: f64, unit: &str) -> Self {
        Self {
            what: what.into(),
            value,
            before: None,
            unit: unit.to_string(),
            detail: String::new(),
            weight: 0.0,
        }
    }

    pub fn before(mut self, v: f64) -> Self {
        self.before = Some(v);
        self
    }

    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = d.into();
        self
    }

    pub fn weight(mut self, w: f64) -> Self {
        self.weight = w;
        self
    }
}

/// A tool's vote for one class: how strongly (0..=1) and on what evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vote {
    pub class: FaultClass,
    pub strength: f64,
    pub reason: String,
    /// Where the evidence places the fault when that is another workload than the one the
    /// tool was asked about (the server refusing a credential, the resolver failing the
    /// lookups): remediation acts there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<EntityId>,
}

impl Vote {
    pub fn new(class: FaultClass, strength: f64, reason: impl Into<String>) -> Self {
        Self {
            class,
            strength: strength.clamp(0.0, 1.0),
            reason: reason.into(),
            at: None,
        }
    }

    /// The same vote, placing the fault on `entity`.
    pub fn at(mut self, entity: EntityId) -> Self {
        self.at = Some(entity);
        self
    }
}

/// A tool's answer: what it found (bounded), and its votes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolOutput {
    pub tool: String,
    pub entity: EntityId,
    pub summary: String,
    pub observations: Vec<Observation>,
    /// Observations left out by the bound (the most telling are kept).
    pub omitted: usize,
    pub votes: Vec<Vote>,
    /// When the tool's judgement may change with no new evidence (a grace that runs out): the
    /// incident is diagnosed again then, not at the next refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revisit_unix_ns: Option<i64>,
}

impl ToolOutput {
    /// Ranks `observations` by weight and keeps the first `MAX_OBSERVATIONS`.
    pub fn new(
        tool: &str,
        scope: &Scope,
        summary: impl Into<String>,
        mut observations: Vec<Observation>,
        votes: Vec<Vote>,
    ) -> Self {
        observations.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        let omitted = observations.len().saturating_sub(MAX_OBSERVATIONS);
        observations.truncate(MAX_OBSERVATIONS);
        let mut summary = summary.into();
        if omitted > 0 {
            summary.push_str(&format!(" ({omitted} more observations left out)"));
        }
        Self {
            tool: tool.to_string(),
            entity: scope.entity.clone(),
            summary,
            observations,
            omitted,
            votes,
            revisit_unix_ns: None,
        }
    }

    /// To be judged again at `t` (if it is still ahead).
    pub fn revisit_at(mut self, t: Option<i64>) -> Self {
        self.revisit_unix_ns = t;
        self
    }

    /// Its strongest vote.
    pub fn best(&self) -> Option<&Vote> {
        self.votes
            .iter()
            .max_by(|a, b| a.strength.total_cmp(&b.strength))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_keep_the_most_telling_observations_and_say_how_many_went() {
        let scope = Scope {
            entity: EntityId::new("cgroup/a"),
            from_unix_ns: 0,
            onset_unix_ns: None,
            to_unix_ns: 1,
            lookback_ns: 1,
        };
        let obs = (0..20)
            .map(|i| Observation::new(format!("o{i}"), 0.0, "").weight(f64::from(i)))
            .collect();
        let out = ToolOutput::new("t", &scope, "s", obs, vec![]);
        assert_eq!(out.observations.len(), MAX_OBSERVATIONS);
        assert_eq!(out.omitted, 8);
        assert_eq!(out.observations[0].what, "o19");
        assert!(out.summary.contains("8 more"));
    }
}
