//! A metric's centre and spread before a change, on its kind's scale, with floors that come
//! from the data rather than from a fixed share of the median: the metric's own resolution
//! (the smallest step it ever took) and the spread its peers (the same metric on other
//! entities) usually show.

use std::collections::BTreeMap;

use super::kind::MetricKind;
use crate::detection::robust::median_sigma;

const IQR_TO_SIGMA: f64 = 1.349;

/// The value every later one is measured against, on the kind's transformed scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reference {
    pub centre: f64,
    /// The spread of the values themselves (robust σ: the larger of MAD- and IQR-based).
    pub spread: f64,
    /// The smallest positive step between distinct values (0 when there is one value).
    pub resolution: f64,
}

fn interpolated_quantile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let pos = q * (n - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

impl Reference {
    /// From already transformed values; `None` with fewer than 3 finite ones.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.len() < 3 {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let (centre, mad_sigma) = median_sigma(&v);
        let iqr = interpolated_quantile(&v, 0.75) - interpolated_quantile(&v, 0.25);
        // MAD is 0 as soon as half the values are equal; the IQR still sees a quarter that
        // moves. Neither sees rarer moves: the resolution and the peers' floor cover those.
        let spread = mad_sigma.max(iqr / IQR_TO_SIGMA);
        let resolution = v
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|d| *d > 1e-12 * w_scale(&v))
            .fold(f64::INFINITY, f64::min);
        Some(Self {
            centre,
            spread,
            resolution: if resolution.is_finite() {
                resolution
            } else {
                0.0
            },
        })
    }

    /// The σ a change is measured in: the spread, never below the metric's resolution, its
    /// peers' usual spread or its kind's natural floor.
    pub fn sigma(&self, peer_floor: f64, kind: MetricKind) -> f64 {
        self.spread
            .max(self.resolution)
            .max(peer_floor)
            .max(kind.natural_floor())
            .max(f64::MIN_POSITIVE)
    }
}

/// The magnitude of the values, so a float's last-bit noise is not taken for a step.
fn w_scale(sorted: &[f64]) -> f64 {
    sorted
        .first()
        .map_or(0.0, |a| a.abs())
        .max(sorted.last().map_or(0.0, |b| b.abs()))
        .max(1.0)
}

/// The usual spread of each metric type over the entities that report it: the median of
/// their spreads, so a metric that is flat on one entity is judged by how much the same
/// metric moves elsewhere rather than by a fraction of its own level.
#[derive(Debug, Clone, Default)]
pub struct PeerFloors {
    spreads: BTreeMap<String, Vec<f64>>,
}

impl PeerFloors {
    pub fn add(&mut self, metric_type: &str, reference: &Reference) {
        self.spreads
            .entry(metric_type.to_string())
            .or_default()
            .push(reference.spread.max(reference.resolution));
    }

    /// The floor for `metric_type`: the median spread of its entities (0 when unknown).
    pub fn floor(&self, metric_type: &str) -> f64 {
        let Some(s) = self.spreads.get(metric_type) else {
            return 0.0;
        };
        let mut s: Vec<f64> = s.iter().copied().filter(|x| x.is_finite()).collect();
        s.sort_by(f64::total_cmp);
        if s.is_empty() {
            0.0
        } else {
            interpolated_quantile(&s, 0.5)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_metric_has_no_spread_but_keeps_its_resolution() {
        let mut v = vec![5.0; 40];
        v[7] = 5.5;
        let r = Reference::of(&v).expect("enough values");
        assert_eq!(r.centre, 5.0);
        assert_eq!(r.spread, 0.0);
        assert!((r.resolution - 0.5).abs() < 1e-12);
        // A peer floor above both wins.
        assert_eq!(r.sigma(2.0, MetricKind::Level), 2.0);
    }

    #[test]
    fn peers_set_the_floor_by_their_median() {
        let mut floors = PeerFloors::default();
        for spread in [1.0, 3.0, 100.0] {
            let v: Vec<f64> = (0..30).map(|i| f64::from(i % 3) * spread).collect();
            floors.add("cpu", &Reference::of(&v).expect("values"));
        }
        let mid = Reference::of(&(0..30).map(|i| f64::from(i % 3) * 3.0).collect::<Vec<_>>())
            .expect("values");
        assert_eq!(floors.floor("cpu"), mid.spread);
        assert_eq!(floors.floor("mem"), 0.0);
    }

    #[test]
    fn too_few_values_make_no_reference() {
        assert!(Reference::of(&[1.0, f64::NAN, 2.0]).is_none());
    }
}
