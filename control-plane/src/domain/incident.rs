//! Incidents: what an operator is told about.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    OomKill,
    CrashLoop,
    /// Correlated metric anomalies (tiers 1 and 2), localized to a ranked root cause.
    ServiceAnomaly,
    /// Raised by Alertmanager (someone's alerting rule), enriched with Vigil's evidence.
    Alert,
}

impl IncidentKind {
    pub const ALL: [Self; 4] = [
        Self::OomKill,
        Self::CrashLoop,
        Self::ServiceAnomaly,
        Self::Alert,
    ];

    /// Kinds a kernel-event rule opens and owns: quiet-resolved, and anomalies next to them
    /// join them.
    pub fn is_kernel_rule(self) -> bool {
        matches!(self, Self::OomKill | Self::CrashLoop)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OomKill => "oom_kill",
            Self::CrashLoop => "crash_loop",
            Self::ServiceAnomaly => "service_anomaly",
            Self::Alert => "alert",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "oom_kill" => Some(Self::OomKill),
            "crash_loop" => Some(Self::CrashLoop),
            "service_anomaly" => Some(Self::ServiceAnomaly),
            "alert" => Some(Self::Alert),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    Open,
    Resolved,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(Self::Open),
            "resolved" => Some(Self::Resolved),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: [Self; 2] = [Self::Warning, Self::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "warning" => Some(Self::Warning),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }
}

/// A reference to the event that is evidence for an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceRef {
    pub node: String,
    pub seq: u64,
}

/// What a rule observed: one piece of evidence for an incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub kind: IncidentKind,
    pub severity: Severity,
    pub node: String,
    pub workload_key: String,
    pub title: String,
    pub summary: String,
    pub time_unix_ns: i64,
    pub evidence: Vec<EvidenceRef>,
    /// Structured facts (victim pid, signal, restart count, ...).
    pub attributes: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    pub id: i64,
    pub kind: IncidentKind,
    pub status: IncidentStatus,
    pub severity: Severity,
    pub node: String,
    pub workload_key: String,
    pub title: String,
    pub summary: String,
    pub opened_unix_ns: i64,
    pub updated_unix_ns: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_unix_ns: Option<i64>,
    /// Findings merged into this incident (the first opened it).
    pub occurrences: u64,
    pub attributes: serde_json::Value,
}

/// One step of the pipeline that produced an incident (detect, correlate, localize, …), with
/// when it ran: exported as the spans of the incident's trace.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Stage {
    pub stage: String,
    pub start_unix_ns: i64,
    pub end_unix_ns: i64,
    /// What the stage concluded (root cause, entities, method, …).
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

impl Stage {
    pub fn new(stage: &str, start_unix_ns: i64, end_unix_ns: i64) -> Self {
        Self {
            stage: stage.to_string(),
            start_unix_ns,
            end_unix_ns: end_unix_ns.max(start_unix_ns),
            attributes: serde_json::Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.attributes.insert(key.to_string(), value.into());
        self
    }
}

/// Where a finding keeps its stages: in its attributes, so the store and the API carry them.
const STAGES: &str = "stages";

impl Finding {
    pub fn with_stages(mut self, stages: &[Stage]) -> Self {
        if let (Some(map), Ok(value)) = (
            self.attributes.as_object_mut(),
            serde_json::to_value(stages),
        ) {
            map.insert(STAGES.to_string(), value);
        }
        self
    }

    pub fn stages(&self) -> Vec<Stage> {
        stages_of(&self.attributes)
    }

    /// Detection latency: how long its `detect` stage took, from the first evidence to the
    /// finding.
    pub fn detection_seconds(&self) -> Option<f64> {
        self.stages()
            .iter()
            .find(|s| s.stage == "detect")
            .map(|d| (d.end_unix_ns - d.start_unix_ns) as f64 / 1e9)
    }
}

impl Incident {
    pub fn stages(&self) -> Vec<Stage> {
        stages_of(&self.attributes)
    }
}

fn stages_of(attributes: &serde_json::Value) -> Vec<Stage> {
    attributes
        .get(STAGES)
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default()
}
