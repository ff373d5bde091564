//! Detection's settings.

use super::{
    baseline::ThresholdRule, correlate::CorrelateConfig, forest::ForestConfig,
    univariate::UnivariateConfig,
};

#[derive(Debug, Clone, Copy)]
pub struct DetectionConfig {
    pub window_ns: i64,
    /// How long after a window ends its intervals may still arrive.
    pub grace_ns: i64,
    pub univariate: UnivariateConfig,
    pub rule: ThresholdRule,
    pub forest: ForestConfig,
    /// Isolation score under which the forest vetoes a modest threshold signal.
    pub forest_confirm: f64,
    /// Isolation score at which the forest alone (for `rule.consecutive` windows) is an
    /// anomaly.
    pub forest_alone: f64,
    pub correlate: CorrelateConfig,
    /// Windows between saves of the baselines.
    pub persist_every: u64,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        Self {
            window_ns: 5_000_000_000,
            grace_ns: 2_000_000_000,
            univariate: UnivariateConfig::default(),
            rule: ThresholdRule::default(),
            forest: ForestConfig::default(),
            forest_confirm: 0.55,
            forest_alone: 0.8,
            correlate: CorrelateConfig::default(),
            persist_every: 12,
        }
    }
}
