//! What a correlated group tells the operator: the incident text, its typed details, and the
//! stages that produced it.

use std::collections::BTreeMap;

use super::{correlate::Group, rootcause::RootCause, wording::change};
use crate::{
    entity::{EntityId, Subject},
    incident::{details::AnomalyDetails, evidence::Symptom, Details, Finding, Severity, Stage},
};

/// When each step ran, by the detection clock.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The group's first window began.
    pub first_window_unix_ns: i64,
    pub judged: i64,
    pub correlated: i64,
    pub localize_start: i64,
    pub localize_end: i64,
}

/// The pipeline of a detection incident: detect (first anomalous window → judged), correlate,
/// localize.
pub fn stages(group: &Group, ranked: &[RootCause], t: Timing) -> Vec<Stage> {
    vec![
        Stage::new("detect", t.first_window_unix_ns, t.judged)
            .with("windows_anomalous", group.timeline.len())
            .with(
                "tier",
                group.timeline.iter().map(|a| a.tier).min().unwrap_or(1),
            ),
        Stage::new("correlate", t.judged, t.correlated)
            .with("entities", group.entities.len())
            .with("anchored", group.anchored),
        Stage::new("localize", t.localize_start, t.localize_end)
            .with("method", "personalized PageRank on the anomalous subgraph")
            .with(
                "root_cause",
                ranked
                    .first()
                    .map(|r| r.entity.to_string())
                    .unwrap_or_default(),
            )
            .with("confidence", ranked.first().map_or(0.0, |r| r.score)),
    ]
}

/// The incident text and details for a group.
pub fn finding(group: &Group, ranked: &[RootCause], at: i64, episode_unix_ns: i64) -> Finding {
    let top = ranked
        .first()
        .map_or_else(|| EntityId::new("unknown"), |r| r.entity.clone());
    // The strongest symptoms of the current episode (a reopened incident is about what is
    // happening now), one per (subject, feature).
    let mut strongest: BTreeMap<(&Subject, &str), (f64, f64, f64)> = BTreeMap::new();
    for a in group
        .timeline
        .iter()
        .filter(|a| a.window >= group.episode_window)
    {
        for f in &a.features {
            let slot =
                strongest
                    .entry((&a.entity, &f.feature))
                    .or_insert((f64::NEG_INFINITY, 0.0, 0.0));
            if f.z > slot.0 {
                *slot = (f.z, f.median, f.value);
            }
        }
    }
    let mut symptoms: Vec<Symptom> = strongest
        .into_iter()
        .map(|((entity, feature), (z, from, to))| Symptom {
            entity: entity.clone(),
            feature: feature.to_string(),
            z,
            from,
            to,
        })
        .collect();
    symptoms.sort_by(|a, b| b.z.total_cmp(&a.z));
    let headline = symptoms
        .iter()
        .take(3)
        .map(|s| format!("{} {}", s.entity, change(&s.feature, s.from, s.to, s.z)))
        .collect::<Vec<_>>()
        .join(", ");
    let failing = symptoms.iter().any(|s| {
        s.feature.contains("errors")
            || s.feature.contains("failures")
            || s.feature.contains("resets")
    });
    symptoms.truncate(20);
    let first = group.timeline.first();
    Finding {
        severity: if failing {
            Severity::Critical
        } else {
            Severity::Warning
        },
        node: String::new(),
        workload_key: top.clone(),
        title: format!("Anomaly around {top}: {headline}"),
        summary: format!(
            "{} entities anomalous since window {}; likely root cause {top} (confidence {:.2}); ranked: {}",
            group.entities.len(),
            group.first_window,
            ranked.first().map_or(0.0, |r| r.score),
            ranked
                .iter()
                .take(5)
                .map(|r| format!("{} {:.2}", r.entity, r.score))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        time_unix_ns: at,
        evidence: Vec::new(),
        details: Details::ServiceAnomaly(AnomalyDetails {
            root_causes: ranked.to_vec(),
            entities: group.entities.clone(),
            first_anomaly_unix_ns: first.map(|a| a.time_unix_ns),
            episode_started_unix_ns: episode_unix_ns,
            symptoms,
            timeline: group.timeline.clone(),
        }),
        stages: Vec::new(),
    }
}
