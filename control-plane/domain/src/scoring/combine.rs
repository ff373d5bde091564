//! A service's evidence from all of its metrics. Metrics of one kind on one service mostly
//! say the same thing (a latency's p50, p90 and p99; memory's RSS and cache), so each kind
//! counts once, by its strongest metric. The kinds' evidences then add up with decaying
//! weights (1, `decay`, `decay²`, …): a service whose latency, errors and saturation all
//! moved outweighs one whose single metric moved as much, while one very strong move still
//! outweighs several faint ones (a CPU hog moves CPU alone). Each metric's evidence is
//! bounded (`evidence`), so no twitching counter can carry a service by itself.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{evidence::MetricEvidence, kind::MetricKind};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CombineConfig {
    /// How many of a service's kinds of evidence count.
    pub top: usize,
    /// The weight of each further kind relative to the one before.
    pub decay: f64,
    /// Robust z at which a metric's magnitude reaches half its saturated weight; the
    /// magnitude only orders services whose evidence is the same.
    pub z_half: f64,
}

impl Default for CombineConfig {
    fn default() -> Self {
        Self {
            top: 3,
            decay: 0.5,
            z_half: 10.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceEvidence {
    pub service: String,
    /// The kinds' evidences, weighted.
    pub evidence: f64,
    /// The strongest metric's saturated move, in [0, 1): orders services whose evidence is
    /// the same.
    pub magnitude: f64,
    /// The earliest onset among the counted metrics.
    pub onset: Option<f64>,
    /// The strongest metric of each counted kind, strongest first.
    pub top: Vec<MetricEvidence>,
}

impl ServiceEvidence {
    /// The metric that moved most.
    pub fn lead(&self) -> Option<&MetricEvidence> {
        self.top.first()
    }
}

/// Combines one service's metrics.
pub fn combine(
    service: &str,
    metrics: Vec<MetricEvidence>,
    config: CombineConfig,
) -> ServiceEvidence {
    let stronger = |a: &MetricEvidence, b: &MetricEvidence| {
        b.evidence
            .total_cmp(&a.evidence)
            .then(b.z.total_cmp(&a.z))
            .then(a.metric.cmp(&b.metric))
    };
    let mut by_kind: BTreeMap<MetricKind, MetricEvidence> = BTreeMap::new();
    for m in metrics {
        match by_kind.get(&m.kind) {
            Some(best) if stronger(best, &m).is_le() => {}
            _ => {
                by_kind.insert(m.kind, m);
            }
        }
    }
    let mut top: Vec<MetricEvidence> = by_kind.into_values().collect();
    top.sort_by(stronger);
    top.truncate(config.top.max(1));
    let evidence = top
        .iter()
        .zip(std::iter::successors(Some(1.0), |w| Some(w * config.decay)))
        .map(|(m, w)| w * m.evidence)
        .sum();
    let magnitude = top
        .first()
        .map_or(0.0, |m| m.z / (m.z + config.z_half.max(f64::MIN_POSITIVE)));
    let onset = top
        .iter()
        .filter_map(|m| m.onset)
        .fold(None, |a: Option<f64>, t| Some(a.map_or(t, |a| a.min(t))));
    ServiceEvidence {
        service: service.to_string(),
        evidence,
        magnitude,
        onset,
        top,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::kind::MetricKind;

    fn m(name: &str, kind: MetricKind, z: f64) -> MetricEvidence {
        let p = crate::scoring::evidence::cauchy_tail(z);
        MetricEvidence {
            metric: name.into(),
            kind,
            z,
            p,
            evidence: -p.log10(),
            onset: Some(z),
        }
    }

    #[test]
    fn moves_of_several_kinds_outweigh_one_as_strong_and_one_kind_counts_once() {
        use MetricKind::*;
        let config = CombineConfig::default();
        // p50, p90 and p99 of one latency say one thing.
        let one_kind = combine(
            "db",
            vec![
                m("db_lat-50", Latency, 40.0),
                m("db_lat-90", Latency, 40.0),
                m("db_lat-99", Latency, 40.0),
            ],
            config,
        );
        let cause = combine(
            "cart",
            vec![
                m("cart_latency", Latency, 40.0),
                m("cart_errors", Count, 20.0),
                m("cart_cpu", Level, 8.0),
            ],
            config,
        );
        assert_eq!(one_kind.top.len(), 1);
        assert!(cause.evidence > one_kind.evidence, "{cause:?} {one_kind:?}");
        assert_eq!(
            cause.lead().map(|l| l.metric.as_str()),
            Some("cart_latency")
        );
        assert_eq!(cause.onset, Some(8.0));
        // One very strong move (a CPU hog) still outweighs a few faint ones.
        let hog = combine("pay", vec![m("pay_cpu", Level, 1000.0)], config);
        let faint = combine(
            "front",
            vec![
                m("front_latency", Latency, 5.0),
                m("front_errors", Count, 4.0),
                m("front_cpu", Level, 4.0),
            ],
            config,
        );
        assert!(hog.evidence > faint.evidence, "{hog:?} {faint:?}");
    }
}
