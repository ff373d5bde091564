//! Tier 2: an extended isolation forest per entity class, over the vector of each entity's
//! per-feature robust z-scores.
//!
//! Scoring z-scores rather than raw values lets one forest serve every entity of a class
//! (a database and a web server have different rates, but both sit near 0 σ when healthy).
//! The forest is trained on recent windows that tier 1 judged healthy and retrained as they
//! accumulate; it confirms tier-1 signals and, on its own, catches combinations of moderate
//! deviations that no single threshold would.

use std::collections::VecDeque;

use extended_isolation_forest::{Forest, ForestOptions};
use serde::Serialize;

use crate::incident::evidence::{ForestDriver, ForestEvidence};

#[derive(Debug, Clone, Copy)]
pub struct ForestConfig {
    /// Healthy vectors kept for training.
    pub history: usize,
    /// Vectors needed before the first training.
    pub min_training: usize,
    /// New healthy vectors between retrainings.
    pub retrain_every: usize,
    pub trees: usize,
    pub sample_size: usize,
}

impl Default for ForestConfig {
    fn default() -> Self {
        Self {
            history: 2048,
            min_training: 64,
            retrain_every: 256,
            trees: 100,
            sample_size: 256,
        }
    }
}

/// Why a vector scored what it did: its features ranked by how far they moved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attribution {
    pub feature: &'static str,
    pub z: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForestVerdict {
    /// Isolation score: ~0.5 ordinary, → 1 isolated.
    pub score: f64,
    /// Features by |z|, largest first (those above 1 σ).
    pub drivers: Vec<Attribution>,
}

impl ForestVerdict {
    /// As an incident keeps it.
    pub fn evidence(&self) -> ForestEvidence {
        ForestEvidence {
            score: self.score,
            drivers: self
                .drivers
                .iter()
                .map(|d| ForestDriver {
                    feature: d.feature.to_string(),
                    z: d.z,
                })
                .collect(),
        }
    }
}

/// The forest of one entity class with `N` features.
pub struct ClassForest<const N: usize> {
    config: ForestConfig,
    names: [&'static str; N],
    healthy: VecDeque<[f64; N]>,
    forest: Option<Forest<f64, N>>,
    since_training: usize,
}

impl<const N: usize> ClassForest<N> {
    pub fn new(config: ForestConfig, names: [&'static str; N]) -> Self {
        Self {
            config,
            names,
            healthy: VecDeque::with_capacity(config.history + 1),
            forest: None,
            since_training: 0,
        }
    }

    pub fn trained(&self) -> bool {
        self.forest.is_some()
    }

    /// The forest's input: finite, and rounded to 1/1000 σ. The rounding matters: the forest
    /// draws split points uniformly between a feature's min and max, and rand 0.8's uniform
    /// sampler spins (practically forever) when those two are adjacent floats — which
    /// near-identical healthy z-scores produce.
    fn vector(z: &[f64]) -> Option<[f64; N]> {
        let v: [f64; N] = z.try_into().ok()?;
        v.iter()
            .all(|x| x.is_finite())
            .then(|| v.map(|x| (x * 1000.0).round() / 1000.0))
    }

    /// Adds a vector tier 1 found healthy; retrains when enough new ones arrived.
    pub fn learn(&mut self, z: &[f64]) {
        let Some(v) = Self::vector(z) else { return };
        self.healthy.push_back(v);
        if self.healthy.len() > self.config.history {
            self.healthy.pop_front();
        }
        self.since_training += 1;
        let due = match self.forest {
            None => self.healthy.len() >= self.config.min_training,
            Some(_) => self.since_training >= self.config.retrain_every,
        };
        if due {
            self.train();
        }
    }

    fn train(&mut self) {
        let data: Vec<[f64; N]> = self.healthy.iter().copied().collect();
        let options = ForestOptions {
            n_trees: self.config.trees,
            sample_size: self.config.sample_size.min(data.len()),
            max_tree_depth: None,
            extension_level: 1.min(N.saturating_sub(1)),
        };
        match Forest::from_slice(&data, &options) {
            Ok(f) => {
                self.forest = Some(f);
                self.since_training = 0;
            }
            // Too few or degenerate samples: keep the previous forest and try later.
            Err(e) => tracing::debug!(error = ?e, "isolation forest not trained"),
        }
    }

    /// Scores a z-vector; `None` until trained.
    pub fn judge(&self, z: &[f64]) -> Option<ForestVerdict> {
        let forest = self.forest.as_ref()?;
        let v = Self::vector(z)?;
        let mut drivers: Vec<Attribution> = self
            .names
            .iter()
            .zip(v)
            .filter(|(_, z)| z.abs() > 1.0)
            .map(|(&feature, z)| Attribution { feature, z })
            .collect();
        drivers.sort_by(|a, b| b.z.abs().total_cmp(&a.z.abs()));
        Some(ForestVerdict {
            score: forest.score(&v),
            drivers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic noise in [-1, 1].
    fn noise(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*state >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
    }

    #[test]
    fn isolates_a_joint_deviation_and_explains_it() {
        let mut f = ClassForest::<3>::new(ForestConfig::default(), ["a", "b", "c"]);
        let mut s = 42;
        assert!(
            f.judge(&[0.0, 0.0, 0.0]).is_none(),
            "untrained forest judges nothing"
        );
        for _ in 0..600 {
            let v = [noise(&mut s), noise(&mut s), noise(&mut s)];
            f.learn(&v);
        }
        assert!(f.trained());
        let ordinary = f.judge(&[0.1, -0.2, 0.3]).map(|v| v.score).unwrap_or(1.0);
        // Two moderate deviations at once: each alone is below a tier-1 threshold of 6 σ.
        let odd = f.judge(&[4.0, -0.1, 4.5]).expect("trained");
        assert!(ordinary < 0.55, "ordinary vector scored {ordinary}");
        assert!(odd.score > 0.6, "joint deviation scored {}", odd.score);
        assert!(odd.score > ordinary + 0.1, "{ordinary} vs {}", odd.score);
        let names: Vec<_> = odd.drivers.iter().map(|d| d.feature).collect();
        assert_eq!(names, ["c", "a"]);
    }

    #[test]
    fn trains_on_values_one_float_apart() {
        // Adjacent floats as a feature's min and max used to hang the split sampling.
        let a = 1.0117361392148927f64;
        let b = f64::from_bits(a.to_bits() + 1);
        let mut f = ClassForest::<2>::new(ForestConfig::default(), ["a", "b"]);
        for i in 0..300 {
            f.learn(&[if i % 2 == 0 { a } else { b }, 0.0]);
        }
        assert!(f.trained());
    }

    #[test]
    fn wrong_length_or_non_finite_vectors_are_ignored() {
        let mut f = ClassForest::<2>::new(ForestConfig::default(), ["a", "b"]);
        for _ in 0..100 {
            f.learn(&[f64::NAN, 1.0]);
            f.learn(&[1.0, 2.0, 3.0]);
        }
        assert!(!f.trained());
    }
}
