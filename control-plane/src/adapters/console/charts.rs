//! Small charts of an incident's signals around its onset: the workload's kernel events per
//! kind over time, and each anomalous feature against its baseline median. Drawn by uPlot in
//! the browser from the JSON in each `data-chart` attribute.

use std::collections::BTreeMap;

use maud::{html, Markup};
use serde::Serialize;

use crate::domain::incident::details::AnomalyDetails;

/// The event chart's bucket width.
pub const BUCKET_NS: i64 = 5_000_000_000;
/// Anomalous features charted at most.
const MAX_FEATURES: usize = 4;

/// What uPlot draws: x in unix seconds, one series per label, and the opening as a marker.
#[derive(Debug, Serialize, PartialEq)]
pub struct Chart {
    pub title: String,
    pub x: Vec<f64>,
    pub series: Vec<Series>,
    pub marker: f64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Series {
    pub label: String,
    pub values: Vec<Option<f64>>,
}

/// Events per kind in `BUCKET_NS` buckets over `[from, to)`: (time, kind) pairs in.
pub fn event_rate(title: String, times: &[(i64, &str)], from: i64, to: i64, marker: i64) -> Chart {
    // Rounded up: the newest seconds of an open incident fall in a partial last bucket.
    let buckets = ((to - from).max(BUCKET_NS) + BUCKET_NS - 1) / BUCKET_NS;
    let buckets = buckets as usize;
    let mut per_kind: BTreeMap<&str, Vec<Option<f64>>> = BTreeMap::new();
    for (t, kind) in times {
        if *t < from || *t >= to {
            continue;
        }
        let i = ((t - from) / BUCKET_NS) as usize;
        let row = per_kind
            .entry(kind)
            .or_insert_with(|| vec![Some(0.0); buckets]);
        if let Some(Some(n)) = row.get_mut(i) {
            *n += 1.0;
        }
    }
    Chart {
        title,
        x: (0..buckets)
            .map(|i| (from + i as i64 * BUCKET_NS) as f64 / 1e9)
            .collect(),
        series: per_kind
            .into_iter()
            .map(|(k, values)| Series {
                label: k.to_string(),
                values,
            })
            .collect(),
        marker: marker as f64 / 1e9,
    }
}

/// Each of the strongest symptoms' values window by window, with the baseline median.
pub fn features(a: &AnomalyDetails, marker: i64) -> Vec<Chart> {
    a.symptoms
        .iter()
        .take(MAX_FEATURES)
        .filter_map(|sym| {
            let points: Vec<(f64, f64, f64)> = a
                .timeline
                .iter()
                .filter(|w| w.entity == sym.entity)
                .filter_map(|w| {
                    let f = w.features.iter().find(|f| f.feature == sym.feature)?;
                    Some((w.time_unix_ns as f64 / 1e9, f.value, f.median))
                })
                .collect();
            (!points.is_empty()).then(|| Chart {
                title: format!("{} · {}", sym.entity, sym.feature),
                x: points.iter().map(|p| p.0).collect(),
                series: vec![
                    Series {
                        label: sym.feature.clone(),
                        values: points.iter().map(|p| Some(p.1)).collect(),
                    },
                    Series {
                        label: "baseline median".into(),
                        values: points.iter().map(|p| Some(p.2)).collect(),
                    },
                ],
                marker: marker as f64 / 1e9,
            })
        })
        .collect()
}

pub fn chart(c: &Chart) -> Markup {
    let data = serde_json::to_string(c).unwrap_or_default();
    html! { figure.chart data-chart=(data) { figcaption { (c.title) } } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_fall_in_their_kind_and_bucket_and_outside_ones_are_left_out() {
        let s = 1_000_000_000;
        let times = [
            (0, "oom_kill"),
            (4 * s, "oom_kill"),
            (5 * s, "oom_kill"),
            (6 * s, "process_exit"),
            (-1, "oom_kill"),
            (15 * s, "oom_kill"),
        ];
        let c = event_rate("t".into(), &times, 0, 15 * s, 5 * s);
        assert_eq!(c.x, vec![0.0, 5.0, 10.0]);
        let partial = event_rate("t".into(), &[(11 * s, "oom_kill")], 0, 12 * s, 0);
        assert_eq!(
            partial.series[0].values,
            vec![Some(0.0), Some(0.0), Some(1.0)],
            "a partial last bucket counts"
        );
        assert_eq!(c.marker, 5.0);
        assert_eq!(c.series[0].label, "oom_kill");
        assert_eq!(c.series[0].values, vec![Some(2.0), Some(1.0), Some(0.0)]);
        assert_eq!(c.series[1].label, "process_exit");
        assert_eq!(c.series[1].values, vec![Some(0.0), Some(1.0), Some(0.0)]);
    }
}
