//! Anomaly likelihood: how improbable the recent raw anomaly scores are, given their own
//! history. A series that is always a bit noisy stops alerting on its noise; a burst of
//! unusually high scores stands out even when each one is modest. (The idea is Numenta's;
//! this is a plain Gaussian-tail version of it.)

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct LikelihoodConfig {
    /// Raw scores kept as the reference distribution.
    pub history: usize,
    /// Raw scores averaged as "recent".
    pub recent: usize,
    /// Scores needed before judging.
    pub min_history: usize,
}

impl Default for LikelihoodConfig {
    fn default() -> Self {
        Self {
            history: 1000,
            recent: 5,
            min_history: 100,
        }
    }
}

/// Complementary error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = t
        * (0.254829592
            + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let r = poly * (-z * z).exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnomalyLikelihood {
    config: LikelihoodConfig,
    history: VecDeque<f64>,
    recent: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
}

impl AnomalyLikelihood {
    pub fn new(config: LikelihoodConfig) -> Self {
        Self {
            config,
            history: VecDeque::with_capacity(config.history + 1),
            recent: VecDeque::with_capacity(config.recent + 1),
            sum: 0.0,
            sum_sq: 0.0,
        }
    }

    /// Takes a raw score in [0, 1]; returns the likelihood that the recent scores are
    /// anomalous, in [0, 1] (0 while learning).
    pub fn observe(&mut self, raw: f64) -> f64 {
        self.recent.push_back(raw);
        if self.recent.len() > self.config.recent {
            self.recent.pop_front();
        }
        let n = self.history.len();
        let out = if n >= self.config.min_history {
            let mean = self.sum / n as f64;
            let var = (self.sum_sq / n as f64 - mean * mean).max(0.0);
            let sd = var.sqrt().max(1e-4);
            let recent = self.recent.iter().sum::<f64>() / self.recent.len() as f64;
            // P(X ≥ recent) under N(mean, sd): small tail → likely anomalous.
            1.0 - 0.5 * erfc((recent - mean) / (sd * std::f64::consts::SQRT_2))
        } else {
            0.0
        };
        self.history.push_back(raw);
        self.sum += raw;
        self.sum_sq += raw * raw;
        if self.history.len() > self.config.history {
            if let Some(old) = self.history.pop_front() {
                self.sum -= old;
                self.sum_sq -= old * old;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-6);
        assert!((erfc(1.0) - 0.157299).abs() < 1e-5);
        assert!((erfc(-1.0) - 1.842701).abs() < 1e-5);
    }

    #[test]
    fn a_burst_of_high_scores_is_likely_anomalous_steady_noise_is_not() {
        let mut l = AnomalyLikelihood::new(LikelihoodConfig::default());
        let mut max_quiet: f64 = 0.0;
        for i in 0..600 {
            let raw = 0.2 + 0.05 * ((i * 7919) % 13) as f64 / 13.0;
            let v = l.observe(raw);
            if i > 150 {
                max_quiet = max_quiet.max(v);
            }
        }
        let burst: Vec<f64> = (0..5).map(|_| l.observe(0.6)).collect();
        assert!(max_quiet < 0.999, "{max_quiet}");
        assert!(burst[4] > 0.9999, "{burst:?}");
    }
}
