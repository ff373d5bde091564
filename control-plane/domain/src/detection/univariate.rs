//! Vigil's univariate detector: the one tier 1 runs on every feature of every entity and the
//! one `vigil-eval nab` scores.
//!
//! Two views of the same series, the larger score wins:
//! - robust distance from the recent normal (spikes, level shifts, variance changes), turned
//!   into an anomaly likelihood so a series that is always noisy stops alerting on its noise;
//! - k-NN conformal on recent stretches (patterns that break without leaving the usual range).
//!
//! Each view learns on its own; until at least one is warm the series is "learning" and is
//! not judged.

use serde::{Deserialize, Serialize};

use super::{
    conformal::{ConformalConfig, ConformalKnn},
    likelihood::{AnomalyLikelihood, LikelihoodConfig},
    robust::{RobustConfig, RobustDetector, Scored},
};

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct UnivariateConfig {
    pub robust: RobustConfig,
    /// Alert on the likelihood of the robust scores rather than the scores themselves.
    pub likelihood: Option<LikelihoodConfig>,
    /// The shape view; `None` turns it off.
    pub conformal: Option<ConformalConfig>,
}

impl Default for UnivariateConfig {
    fn default() -> Self {
        Self {
            robust: RobustConfig::default(),
            likelihood: Some(LikelihoodConfig::default()),
            conformal: Some(ConformalConfig::default()),
        }
    }
}

/// One value's verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnivariateScore {
    /// In [0, 1]: the larger of the two views.
    pub score: f64,
    /// The robust view's detail (its z-scores explain an alert in the series' own units).
    pub robust: Scored,
    /// The conformal view's score (0 while it learns).
    pub shape: f64,
    /// Neither view has enough history yet.
    pub learning: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnivariateDetector {
    robust: RobustDetector,
    likelihood: Option<AnomalyLikelihood>,
    conformal: Option<ConformalKnn>,
}

impl UnivariateDetector {
    pub fn new(config: UnivariateConfig) -> Self {
        Self {
            robust: RobustDetector::new(config.robust),
            likelihood: config.likelihood.map(AnomalyLikelihood::new),
            conformal: config.conformal.map(ConformalKnn::new),
        }
    }

    /// Whether the robust view (which gives the median and σ of the baseline) still learns.
    pub fn learning(&self) -> bool {
        self.robust.learning()
    }

    pub fn observe(&mut self, x: f64) -> UnivariateScore {
        let robust = self.robust.observe(x);
        let robust_score = match &mut self.likelihood {
            // The likelihood learns only from judged values, so warm-up zeros don't skew it.
            Some(l) if !robust.learning => l.observe(robust.score),
            Some(_) => 0.0,
            None => robust.score,
        };
        let (shape, shape_learning) = match &mut self.conformal {
            Some(c) => {
                let s = c.observe(x);
                (s, c.learning())
            }
            None => (0.0, true),
        };
        UnivariateScore {
            score: robust_score.max(shape),
            robust,
            shape,
            learning: robust.learning && shape_learning,
        }
    }
}

/// Scores a whole series.
pub fn score_series(values: &[f64], config: UnivariateConfig) -> Vec<f64> {
    let mut d = UnivariateDetector::new(config);
    values.iter().map(|&x| d.observe(x).score).collect()
}
