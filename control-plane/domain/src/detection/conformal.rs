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
    /// The last `train + dim - 1` values: every training point is a run of `dim` of them
    /// (kept flat, so the state stays small when persisted).
    history: VecDeque<f64>,
    /// Once the training set is full: the non-conformity each training point had.
    calibration: VecDeque<f64>,
    /// Reused distance buffer, not state.
    #[serde(skip)]
    scratch: Vec<f64>,
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

impl ConformalKnn {
    pub fn new(config: ConformalConfig) -> Self {
        let dim = config.dim.max(1);
        Self {
            config: ConformalConfig { dim, ..config },
            history: VecDeque::with_capacity(config.train + dim + 1),
            calibration: VecDeque::with_capacity(config.train + 1),
            scratch: Vec::with_capacity(config.train),
        }
    }

    /// Whether enough history exists to score.
    pub fn learning(&self) -> bool {
        self.calibration.len() < self.config.train
    }

    /// Training points held.
    fn points(&self) -> usize {
        (self.history.len() + 1).saturating_sub(self.config.dim)
    }

    /// Summed distance from `point` to its k nearest training points (`skip` = the index of
    /// `point` itself among them, whose zero distance must not count).
    fn non_conformity(&mut self, point: &[f64], skip: Option<usize>) -> f64 {
        let dim = self.config.dim;
        let history = self.history.make_contiguous();
        self.scratch.clear();
        self.scratch.extend(
            history
                .windows(dim)
                .enumerate()
                .filter(|(i, _)| Some(*i) != skip)
                .map(|(_, p)| distance(p, point)),
        );
        let k = self.config.k.min(self.scratch.len());
        if k == 0 {
            return 0.0;
        }
        self.scratch.select_nth_unstable_by(k - 1, f64::total_cmp);
        self.scratch[..k].iter().sum()
    }

    /// Scores `x` (0 while learning), then learns it.
    pub fn observe(&mut self, x: f64) -> f64 {
        let c = self.config;
        if self.points() < c.train {
            self.history.push_back(x);
            return 0.0;
        }
        // The newest point: the last dim − 1 values and x.
        let point: Vec<f64> = self
            .history
            .iter()
            .skip(self.history.len() + 1 - c.dim)
            .copied()
            .chain(std::iter::once(x))
            .collect();
        if self.calibration.is_empty() {
            let history: Vec<f64> = self.history.iter().copied().collect();
            for (i, p) in history.windows(c.dim).enumerate() {
                let nc = self.non_conformity(p, Some(i));
                self.calibration.push_back(nc);
            }
        }
        let nc = self.non_conformity(&point, None);
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
        self.history.push_back(x);
        self.history.pop_front();
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
