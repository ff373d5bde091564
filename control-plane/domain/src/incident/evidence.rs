//! The evidence vocabulary incidents carry: kernel events by reference (`EvidenceRef`, in the
//! model), and for metric anomalies the symptoms, the anomalies window by window and the
//! ranked root causes. Detection writes these; diagnosis and the API read them.

use serde::{Deserialize, Serialize};

use crate::entity::{EntityId, Subject, SubjectClass};

/// A candidate root cause and how strongly the ranking points at it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootCause {
    pub entity: EntityId,
    /// Share of the ranking's mass, in [0, 1]; a list sums to 1.
    pub score: f64,
    /// The entity's own anomaly score.
    pub anomaly: f64,
}

/// One metric of one subject that moved, at its strongest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Symptom {
    pub entity: Subject,
    pub feature: String,
    /// Robust z-score above the baseline.
    pub z: f64,
    /// The baseline's median and the value at the strongest window, in the feature's unit.
    #[serde(default)]
    pub from: f64,
    #[serde(default)]
    pub to: f64,
}

/// How one feature compared with its baseline in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureEvidence {
    pub feature: String,
    pub value: f64,
    pub median: f64,
    pub z: f64,
    pub score: f64,
    pub crossed: bool,
    pub fired: bool,
}

/// A feature the isolation forest found far from normal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForestDriver {
    pub feature: String,
    pub z: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForestEvidence {
    /// Isolation score: ~0.5 ordinary, → 1 isolated.
    pub score: f64,
    pub drivers: Vec<ForestDriver>,
}

/// One subject's anomaly in one detection window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyEvidence {
    pub entity: Subject,
    pub class: SubjectClass,
    pub window: i64,
    pub time_unix_ns: i64,
    pub score: f64,
    /// 1: baseline thresholds fired; 2: only the isolation forest found it.
    pub tier: u8,
    /// The features that crossed, strongest first.
    pub features: Vec<FeatureEvidence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forest: Option<ForestEvidence>,
}
