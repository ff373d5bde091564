//! The `[detection]` section: windows, baselines, the threshold rule, and per-feature floors.

use serde::Deserialize;

use crate::domain::{detection::floors::Floors, entity::SubjectClass};

/// Anomaly detection on the metric stream (see `domain::detection`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionSettings {
    pub enabled: bool,
    /// Length of a detection window.
    pub window_ms: u64,
    /// How long after a window ends its intervals may still arrive.
    pub grace_ms: u64,
    /// Windows in each baseline (its memory).
    pub baseline_windows: usize,
    /// Windows an entity is "learning" before it is judged.
    pub learning_windows: usize,
    /// Windows in the recent median compared with the baseline (level shifts).
    pub recent_windows: usize,
    /// Robust σ above the baseline median at which a symptom crosses.
    pub threshold_sigma: f64,
    /// Windows in a row a symptom must cross to fire.
    pub consecutive_windows: u32,
    /// Quiet windows after which an anomaly incident resolves.
    pub resolve_after_windows: i64,
    /// A related anomaly within this many windows of resolution reopens the incident.
    pub reopen_within_windows: i64,
    /// Training windows of the shape (k-NN conformal) view; 0 turns it off.
    pub shape_training_windows: usize,
    /// Healthy windows the isolation forests need before they judge.
    pub forest_min_training: usize,
    /// Per-feature floors: the smallest rise that can be a symptom, by `class.feature`
    /// (`edge.error_ratio`, `edge.request_p99_us`, `workload.syscall_p99_us`, …); unnamed
    /// features keep their defaults.
    pub floors: std::collections::BTreeMap<String, FloorSetting>,
}

/// One feature's floors: absolute, in the feature's unit, and relative to its baseline
/// median (2.0: a rise of twice the median, i.e. past 3× it).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloorSetting {
    pub floor: Option<f64>,
    pub relative_floor: Option<f64>,
}

impl DetectionSettings {
    /// How long a symptom has been showing when the detector first calls it: it must cross
    /// in `consecutive_windows` windows, and shows at the end of the first.
    pub fn confirmation_ns(&self) -> i64 {
        let ms = self
            .window_ms
            .saturating_mul(u64::from(self.consecutive_windows.max(1)));
        i64::try_from(ms.saturating_mul(1_000_000)).unwrap_or(i64::MAX)
    }

    /// The floors with the config's overrides applied, or the first bad key and why.
    pub fn floors(&self) -> Result<Floors, (String, String)> {
        let mut floors = Floors::default();
        for (key, s) in &self.floors {
            let field = format!("\"{key}\"");
            let class = match key.split_once('.') {
                Some(("edge", _)) => SubjectClass::Edge,
                Some(("workload", _)) => SubjectClass::Workload,
                _ => {
                    return Err((
                        field,
                        "must be `edge.<feature>` or `workload.<feature>`".into(),
                    ))
                }
            };
            let feature = key.split_once('.').map_or("", |(_, f)| f);
            let finite = |v: Option<f64>| v.is_none_or(|v| v.is_finite() && v >= 0.0);
            if !finite(s.floor) || !finite(s.relative_floor) {
                return Err((field, "floors must be non-negative numbers".into()));
            }
            floors
                .set(class, feature, s.floor, s.relative_floor)
                .map_err(|e| (field, e.to_string()))?;
        }
        Ok(floors)
    }
}

impl Default for DetectionSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            window_ms: 5_000,
            grace_ms: 2_000,
            baseline_windows: 720,
            learning_windows: 24,
            recent_windows: 3,
            threshold_sigma: 6.0,
            consecutive_windows: 2,
            resolve_after_windows: 6,
            reopen_within_windows: 60,
            shape_training_windows: 240,
            forest_min_training: 64,
            floors: std::collections::BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symptom_has_shown_for_its_confirmation_windows_when_it_fires() {
        let d = DetectionSettings {
            window_ms: 1_000,
            consecutive_windows: 3,
            ..DetectionSettings::default()
        };
        assert_eq!(d.confirmation_ns(), 3_000_000_000);
        assert_eq!(
            DetectionSettings::default().confirmation_ns(),
            10_000_000_000
        );
    }
}
