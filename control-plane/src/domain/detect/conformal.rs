//! Shape anomalies: is the recent stretch of a series unlike any stretch seen lately?
//!
//! The last `dim` values form a point; its non-conformity is the summed distance to its `k`
//! nearest neighbours among the trailing `train` points. The score is the share of the
//! training points' own non-conformities below it (a conformal p-value turned around), so it
//! needs no threshold in the series' units and no assumption of normal noise. This catches
//! what a point-wise z-score cannot: a periodic pattern that breaks, a change of rhythm, a
//! plateau where there should be a wave. (The method is k-NN conformal anomaly detection,
//! Burnaev & Ishimtsev 2016.)

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ConformalConfig {
    /// Values per point (the lag embedding).
    pub dim: usize,
    /// Neighbours summed into a point's non-conformity.
    pub k: usize,
    /// Trailing points that make up "normal".
    pub train: usize,
}

impl Default for ConformalConfig {
    fn default() -> Self {
        Self {
            dim: 19,
            k: 27,
            train: 1000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConformalKnn {
    config: ConformalConfig,
    recent: VecDeque<f64>,
    /// Training points and, once the set is full, the non-conformity each had.
    points: VecDeque<Vec<f64>>,
    calibration: VecDeque<f64>,
    /// Reused sort buffer, not state.
    #[serde(skip)]
    scratch: Vec<f64>,
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

impl ConformalKnn {
    pub fn new(config: ConformalConfig) -> Self {
        Self {
            config,
            recent: VecDeque::with_capacity(config.dim + 1),
            points: VecDeque::with_capacity(config.train + 1),
            calibration: VecDeque::with_capacity(config.train + 1),
            scratch: Vec::with_capacity(config.train),
        }
    }

    /// Whether enough history exists to score.
    pub fn learning(&self) -> bool {
        self.calibration.len() < self.config.train
    }

    /// Summed distance from `point` to its k nearest training points (`skip_self` drops the
    /// point's own zero distance when it is one of them).
    fn non_conformity(&mut self, point: &[f64], skip_self: bool) -> f64 {
        self.scratch.clear();
        self.scratch
            .extend(self.points.iter().map(|p| distance(p, point)));
        let k = (self.config.k + usize::from(skip_self)).min(self.scratch.len());
        if k == 0 {
            return 0.0;
        }
        self.scratch.select_nth_unstable_by(k - 1, f64::total_cmp);
        self.scratch[..k].iter().sum()
    }

    /// Scores `x` (0 while learning), then learns it.
    pub fn observe(&mut self, x: f64) -> f64 {
        let c = self.config;
        self.recent.push_back(x);
        if self.recent.len() > c.dim {
            self.recent.pop_front();
        }
        if self.recent.len() < c.dim {
            return 0.0;
        }
        let point: Vec<f64> = self.recent.iter().copied().collect();
        if self.points.len() < c.train {
            self.points.push_back(point);
            return 0.0;
        }
        if self.calibration.is_empty() {
            let points: Vec<Vec<f64>> = self.points.iter().cloned().collect();
            for p in &points {
                let nc = self.non_conformity(p, true);
                self.calibration.push_back(nc);
            }
        }
        let nc = self.non_conformity(&point, false);
        let n = self.calibration.len() as f64;
        let below = self.calibration.iter().filter(|&&s| s < nc).count();
        let score = if below == self.calibration.len() {
            // Stranger than every calibration point: rank by how much stranger, within the
            // top 1/n, so the strongest anomalies still order among themselves.
            let max = self.calibration.iter().copied().fold(0.0, f64::max);
            1.0 - (max / nc.max(f64::MIN_POSITIVE)) / n
        } else {
            below as f64 / n
        };
        self.points.push_back(point);
        self.points.pop_front();
        self.calibration.push_back(nc);
        self.calibration.pop_front();
        score
    }
}

/// Scores a whole series.
pub fn score_series(values: &[f64], config: ConformalConfig) -> Vec<f64> {
    let mut d = ConformalKnn::new(config);
    values.iter().map(|&x| d.observe(x)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: ConformalConfig = ConformalConfig {
        dim: 12,
        k: 10,
        train: 300,
    };

    /// A daily-like wave with a little deterministic jitter.
    fn wave(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let jitter = ((i * 7919) % 17) as f64 / 17.0 - 0.5;
                50.0 + 20.0 * (i as f64 * std::f64::consts::TAU / 48.0).sin() + jitter
            })
            .collect()
    }

    #[test]
    fn a_steady_pattern_stays_below_the_top_of_its_calibration() {
        let scores = score_series(&wave(1500), CONFIG);
        assert!(scores[..311].iter().all(|&s| s == 0.0), "learning");
        let max = scores[400..].iter().copied().fold(0.0, f64::max);
        assert!(max < 0.999, "max {max}");
    }

    #[test]
    fn a_broken_pattern_inside_the_usual_range_is_flagged() {
        // The wave stops at its mean for a stretch: no value leaves the range a z-score
        // would accept, but that shape was never seen.
        let mut series = wave(1500);
        for v in &mut series[1000..1040] {
            *v = 50.0;
        }
        let scores = score_series(&series, CONFIG);
        let first = (1000..1040)
            .find(|&i| scores[i] >= 0.999)
            .expect("pattern break flagged");
        assert!(first < 1020, "flagged late at {first}");
        let before = scores[400..1000].iter().copied().fold(0.0, f64::max);
        assert!(before < 0.999, "quiet before: {before}");
    }
}
