//! A streaming univariate detector: how far is each value from the recent normal, in robust
//! units, at two time scales.
//!
//! - Spikes: |x − median| / MAD against a long trailing window (the median and MAD shrug off
//!   the outliers they are meant to find).
//! - Level shifts and variance changes: the median of a short recent window against the long
//!   window, in the same units.
//!
//! The score is the larger of the two, squashed into [0, 1). After a value crosses the alert
//! threshold the detector stays quiet for a refractory period: one anomaly is one alert, not
//! a burst of them. Until the long window is full the entity is learning and scores 0.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// MAD of a normal distribution is 0.6745 σ: scaling by 1/0.6745 makes it a σ estimate.
const MAD_TO_SIGMA: f64 = 1.4826;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct RobustConfig {
    /// Values in the trailing baseline window.
    pub long: usize,
    /// Values in the recent window compared with it.
    pub short: usize,
    /// Values needed before scoring (warm-up).
    pub min_history: usize,
    /// Robust z at which the squashed score reaches 0.5.
    pub z_half: f64,
    /// Also score the step from the previous value against recent steps (sudden changes in
    /// a series that wanders).
    pub steps: bool,
}

impl Default for RobustConfig {
    fn default() -> Self {
        Self {
            long: 400,
            short: 8,
            min_history: 60,
            z_half: 6.0,
            steps: true,
        }
    }
}

/// The state of one series.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RobustDetector {
    config: RobustConfig,
    long: VecDeque<f64>,
    short: VecDeque<f64>,
    /// Recent first differences.
    deltas: VecDeque<f64>,
    /// Reused sort buffer, not state.
    #[serde(skip)]
    scratch: Vec<f64>,
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Median and MAD of `values` (sorting `scratch`).
fn median_mad(values: impl Iterator<Item = f64>, scratch: &mut Vec<f64>) -> (f64, f64) {
    scratch.clear();
    scratch.extend(values);
    scratch.sort_by(f64::total_cmp);
    let m = median(scratch);
    for v in scratch.iter_mut() {
        *v = (*v - m).abs();
    }
    scratch.sort_by(f64::total_cmp);
    (m, median(scratch))
}

/// Median and robust σ (1.4826 · MAD) of `values`.
pub fn median_sigma(values: &[f64]) -> (f64, f64) {
    let mut scratch = Vec::with_capacity(values.len());
    let (m, mad) = median_mad(values.iter().copied(), &mut scratch);
    (m, MAD_TO_SIGMA * mad)
}

/// Why a value scored what it did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// In [0, 1): 0.5 at `z_half` robust standard deviations.
    pub score: f64,
    /// Robust z of the value itself.
    pub spike_z: f64,
    /// Robust z of the recent window's median.
    pub shift_z: f64,
    /// Robust z of the step from the previous value.
    pub step_z: f64,
    /// Not enough history yet.
    pub learning: bool,
    /// The baseline the value was judged against: median and robust σ of the long window.
    pub median: f64,
    pub sigma: f64,
    /// Median of the short window including this value (what a level shift moved to).
    pub recent_median: f64,
}

impl RobustDetector {
    pub fn new(config: RobustConfig) -> Self {
        Self {
            config,
            long: VecDeque::with_capacity(config.long + 1),
            short: VecDeque::with_capacity(config.short + 1),
            deltas: VecDeque::with_capacity(config.long + 1),
            scratch: Vec::with_capacity(config.long),
        }
    }

    pub fn learning(&self) -> bool {
        self.long.len() < self.config.min_history
    }

    /// Scores `x` against the history, then adds it to the history.
    pub fn observe(&mut self, x: f64) -> Scored {
        let c = self.config;
        let mut out = Scored {
            score: 0.0,
            spike_z: 0.0,
            shift_z: 0.0,
            step_z: 0.0,
            learning: self.long.len() < c.min_history,
            median: 0.0,
            sigma: 0.0,
            recent_median: x,
        };
        if !out.learning {
            let (med, mad) = median_mad(self.long.iter().copied(), &mut self.scratch);
            // A flat baseline has MAD 0: fall back to a share of its level, then to 1.
            let sigma = (MAD_TO_SIGMA * mad).max(med.abs() * 1e-3).max(1e-9);
            out.spike_z = (x - med).abs() / sigma;
            out.median = med;
            out.sigma = sigma;
            if self.short.len() + 1 >= c.short {
                let recent = self.short.iter().copied().chain(std::iter::once(x));
                let (recent_med, _) = median_mad(recent, &mut self.scratch);
                out.shift_z = (recent_med - med).abs() / sigma;
                out.recent_median = recent_med;
            }
            if c.steps && self.deltas.len() >= c.min_history {
                if let Some(&prev) = self.long.back() {
                    let (dmed, dmad) = median_mad(self.deltas.iter().copied(), &mut self.scratch);
                    let dsigma = (MAD_TO_SIGMA * dmad).max(sigma * 1e-3).max(1e-9);
                    out.step_z = ((x - prev) - dmed).abs() / dsigma;
                }
            }
            let z = out.spike_z.max(out.shift_z * 1.5).max(out.step_z);
            out.score = z / (z + c.z_half);
        }
        if let Some(&prev) = self.long.back() {
            self.deltas.push_back(x - prev);
            if self.deltas.len() > c.long {
                self.deltas.pop_front();
            }
        }
        self.long.push_back(x);
        if self.long.len() > c.long {
            self.long.pop_front();
        }
        self.short.push_back(x);
        if self.short.len() >= c.short {
            self.short.pop_front();
        }
        out
    }
}

/// Scores a whole series with a detector per series.
pub fn score_series(values: &[f64], config: RobustConfig) -> Vec<f64> {
    let mut d = RobustDetector::new(config);
    values.iter().map(|&x| d.observe(x).score).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic noise in [-1, 1] (a small LCG: tests must not depend on a seed crate).
    fn noise(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
            })
            .collect()
    }

    fn max_after(scores: &[f64], from: usize) -> f64 {
        scores[from..].iter().copied().fold(0.0, f64::max)
    }

    const ALERT: f64 = 0.6;

    #[test]
    fn clean_noise_stays_quiet() {
        let series: Vec<f64> = noise(3000, 7).iter().map(|n| 100.0 + 5.0 * n).collect();
        let scores = score_series(&series, RobustConfig::default());
        assert!(
            max_after(&scores, 100) < ALERT,
            "max {}",
            max_after(&scores, 100)
        );
        assert!(
            scores[..50].iter().all(|&s| s == 0.0),
            "learning scores nothing"
        );
    }

    #[test]
    fn a_spike_is_flagged_where_it_happens() {
        let mut series: Vec<f64> = noise(1000, 3).iter().map(|n| 100.0 + 5.0 * n).collect();
        series[700] = 160.0;
        let scores = score_series(&series, RobustConfig::default());
        assert!(scores[700] > ALERT, "spike scored {}", scores[700]);
        assert!(max_after(&scores[..700], 100) < ALERT);
    }

    #[test]
    fn a_level_shift_is_flagged_within_the_short_window() {
        let series: Vec<f64> = noise(1000, 11)
            .iter()
            .enumerate()
            .map(|(i, n)| if i < 600 { 100.0 } else { 118.0 } + 3.0 * n)
            .collect();
        let scores = score_series(&series, RobustConfig::default());
        let first = (600..1000)
            .find(|&i| scores[i] > ALERT)
            .expect("shift detected");
        assert!(first < 610, "detected at {first}");
        assert!(max_after(&scores[..600], 100) < ALERT);
    }

    #[test]
    fn a_variance_change_is_flagged() {
        let series: Vec<f64> = noise(1500, 5)
            .iter()
            .enumerate()
            .map(|(i, n)| 100.0 + if i < 800 { 1.0 } else { 12.0 } * n)
            .collect();
        let scores = score_series(&series, RobustConfig::default());
        assert!(max_after(&scores[..800], 100) < ALERT);
        assert!(
            max_after(&scores[800..900], 0) > ALERT,
            "variance change missed"
        );
    }
}
