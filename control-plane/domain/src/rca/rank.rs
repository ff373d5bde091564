//! Ranking a recording's services by comparable evidence, and the robust z-score baseline
//! it is measured against.

use std::collections::BTreeMap;

use serde::Serialize;

use super::recording::{metric_type, service_of, Recording};
use crate::{
    detection::robust::median_sigma,
    scoring::{
        combine, judge, Before, CombineConfig, EvidenceConfig, MetricEvidence, MetricKind,
        PeerFloors,
    },
};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankConfig {
    pub evidence: EvidenceConfig,
    pub combine: CombineConfig,
    /// Weight of changing first: the earliest service gains this much score, the latest
    /// none (a service's evidence is in units of `−log10 p`).
    pub onset_weight: f64,
}

impl Default for RankConfig {
    fn default() -> Self {
        Self {
            evidence: EvidenceConfig::default(),
            combine: CombineConfig::default(),
            onset_weight: 0.5,
        }
    }
}

/// One service's place in a ranking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    pub service: String,
    pub score: f64,
    /// The metric that moved most, and by how many robust σ.
    pub metric: String,
    pub z: f64,
    /// Combined evidence (`−log10 p`) and earliest onset, where the ranking has them.
    pub evidence: Option<f64>,
    pub onset: Option<f64>,
}

fn sorted(mut ranked: Vec<Ranked>) -> Vec<Ranked> {
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.service.cmp(&b.service)));
    ranked
}

/// Vigil's graph-free ranking (see the module notes of `rca` and `scoring`).
pub fn rank(recording: &Recording, config: RankConfig) -> Vec<Ranked> {
    // First pass: every metric's reference, so each type's peers set its floor.
    let mut floors = PeerFloors::default();
    let mut columns = Vec::new();
    for column in recording.columns.keys() {
        let Some(service) = service_of(column) else {
            continue;
        };
        let ty = metric_type(column);
        let kind = MetricKind::of_name(ty);
        let (before, after) = recording.split(column);
        if let Some(before) = Before::of(kind, &before) {
            floors.add(ty, &before.reference);
            columns.push((service, column, ty, kind, before, after));
        }
    }
    let mut by_service: BTreeMap<&str, Vec<MetricEvidence>> = BTreeMap::new();
    for (service, column, ty, kind, before, after) in &columns {
        let slot = by_service.entry(service).or_default();
        let peer_floor = floors.floor(ty);
        if let Some(e) = judge(column, *kind, before, after, peer_floor, config.evidence) {
            slot.push(e);
        }
    }
    let services: Vec<_> = by_service
        .into_iter()
        .map(|(s, m)| combine(s, m, config.combine))
        .collect();
    let onsets: Vec<f64> = services.iter().filter_map(|s| s.onset).collect();
    let first = onsets.iter().copied().fold(f64::INFINITY, f64::min);
    let last = onsets.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let earliness = |t: Option<f64>| match t {
        Some(t) if last > first => 1.0 - (t - first) / (last - first),
        Some(_) => 1.0,
        None => 0.0,
    };
    sorted(
        services
            .into_iter()
            .map(|s| Ranked {
                score: s.evidence + s.magnitude + config.onset_weight * earliness(s.onset),
                metric: s.lead().map(|m| m.metric.clone()).unwrap_or_default(),
                z: s.lead().map_or(0.0, |m| m.z),
                evidence: Some(s.evidence),
                onset: s.onset,
                service: s.service,
            })
            .collect(),
    )
}

/// The baseline: each metric's largest deviation after the injection in robust σ of its
/// values before (median and 1.4826·MAD, the MAD floored at 1 % of the median or 10⁻³),
/// a service scoring its most deviant metric. This was Vigil's own ranking before the
/// comparable scores.
pub fn rank_robust_z(recording: &Recording) -> Vec<Ranked> {
    let mut best: BTreeMap<&str, Ranked> = BTreeMap::new();
    for column in recording.columns.keys() {
        let Some(service) = service_of(column) else {
            continue;
        };
        let (before, after) = recording.split(column);
        if before.len() < 3 {
            continue;
        }
        let (median, sigma) = median_sigma(&before);
        let sigma = sigma.max(0.01 * median.abs()).max(1e-3);
        let z = after
            .iter()
            .map(|(_, x)| (x - median).abs() / sigma)
            .fold(0.0, f64::max);
        let slot = best.entry(service).or_insert_with(|| Ranked {
            service: service.to_string(),
            score: 0.0,
            metric: column.clone(),
            z: 0.0,
            evidence: None,
            onset: None,
        });
        if z > slot.score {
            slot.score = z;
            slot.z = z;
            slot.metric = column.clone();
        }
    }
    sorted(best.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A jitter in [0, 1) that repeats every 13 rows.
    fn jitter(t: usize) -> f64 {
        ((t * 7919) % 13) as f64 / 13.0
    }

    /// 46 services; the first (`web`)'s latency and error count rise and its CPU saturates at
    /// row 300, and the latency of three callers rises later; meanwhile `flat`'s memory,
    /// constant to the byte before, moves by a few kilobytes and an idle service's error
    /// counter goes from 0 to 1.
    fn fleet() -> Recording {
        let rows = 360;
        let mut rec = Recording {
            time: (0..rows).map(|t| 1.7e9 + t as f64).collect(),
            inject_time: 1.7e9 + 300.0,
            ..Recording::default()
        };
        for s in 0..46 {
            let name = if s == 0 {
                "web".to_string()
            } else {
                format!("svc{s}")
            };
            let level = 10.0 + s as f64;
            let caller = s > 0 && s < 4;
            let latency = (0..rows)
                .map(|t| {
                    let base = level * (1.0 + 0.1 * jitter(t + s));
                    match (s, t >= 300, caller && t >= 305) {
                        (0, true, _) => base * 6.0,
                        (_, _, true) => base * 3.0,
                        _ => base,
                    }
                })
                .collect();
            let errors = (0..rows)
                .map(|t| {
                    if s == 0 && t >= 300 {
                        40.0
                    } else {
                        (jitter(t * 3 + s) * 3.0).floor()
                    }
                })
                .collect();
            let cpu = (0..rows)
                .map(|t| {
                    if s == 0 && t >= 300 {
                        0.98
                    } else {
                        0.3 + 0.05 * jitter(t + 2 * s)
                    }
                })
                .collect();
            rec.columns.insert(format!("{name}_latency-90"), latency);
            rec.columns.insert(format!("{name}_errors"), errors);
            rec.columns.insert(format!("{name}_cpu"), cpu);
        }
        // Nearly constant metrics that move a little when the fault starts.
        rec.columns.insert(
            "flat_mem".into(),
            (0..rows)
                .map(|t| if t >= 301 { 2.0e9 + 8192.0 } else { 2.0e9 })
                .collect(),
        );
        rec.columns.insert(
            "flat_cpu".into(),
            (0..rows).map(|t| 0.3 + 0.05 * jitter(t)).collect(),
        );
        rec.columns.insert(
            "idle_open-errors".into(),
            (0..rows)
                .map(|t| if t >= 300 { 1.0 } else { 0.0 })
                .collect(),
        );
        rec.columns.insert(
            "idle_cpu".into(),
            (0..rows).map(|t| 0.3 + 0.05 * jitter(t + 5)).collect(),
        );
        rec
    }

    #[test]
    fn a_twitching_flat_metric_does_not_outrank_the_service_whose_latency_and_errors_moved() {
        let rec = fleet();
        let baseline = rank_robust_z(&rec);
        // The raw σ count falls for the idle counter's 0 → 1 (a thousand σ): the failure the
        // comparable scores fix.
        assert_eq!(baseline[0].service, "idle", "{:?}", &baseline[..3]);
        let ranked = rank(&rec, RankConfig::default());
        assert_eq!(ranked[0].service, "web", "{:?}", &ranked[..4]);
        let flat = ranked
            .iter()
            .position(|r| r.service == "flat")
            .expect("ranked");
        let idle = ranked
            .iter()
            .position(|r| r.service == "idle")
            .expect("ranked");
        // Below the callers the fault slowed down, too.
        assert!(flat > 3 && idle > 3, "{ranked:?}");
    }

    /// Two services whose three metrics make the same moves, `caller`'s `lag` rows after
    /// `upstream`'s, beside a quiet one.
    fn same_moves(lag: usize) -> Recording {
        let rows = 200;
        let mut rec = Recording {
            time: (0..rows).map(|t| t as f64).collect(),
            inject_time: 150.0,
            ..Recording::default()
        };
        for (name, from) in [
            ("upstream", 150),
            ("caller", 150 + lag),
            ("quiet", usize::MAX),
        ] {
            for (metric, high) in [("latency", 5.0), ("errors", 30.0), ("cpu", 0.9)] {
                rec.columns.insert(
                    format!("{name}_{metric}"),
                    (0..rows)
                        .map(|t| {
                            if t >= from {
                                high
                            } else {
                                0.2 + 0.1 * jitter(t)
                            }
                        })
                        .collect(),
                );
            }
        }
        rec
    }

    #[test]
    fn of_two_services_that_moved_as_much_the_one_that_changed_first_ranks_first() {
        // Named so that the name order would put the later one first.
        let rec = same_moves(10);
        let ranked = rank(&rec, RankConfig::default());
        assert_eq!(ranked[0].service, "upstream", "{ranked:?}");
        assert_eq!(ranked[0].onset, Some(150.0));
        assert_eq!(ranked[1].service, "caller", "{ranked:?}");
        // Without the onset they tie: the timing is what decides.
        let blind = rank(
            &rec,
            RankConfig {
                onset_weight: 0.0,
                ..RankConfig::default()
            },
        );
        assert!((blind[0].score - blind[1].score).abs() < 1e-9, "{blind:?}");
    }
}
