//! Baseline thresholds: a baseline per (subject, feature) and the robust threshold rule on it
//! (detection's first tier; the isolation forests in `forest` are the second).
//!
//! A feature fires when it rose above its baseline median by more than `k` robust σ (or
//! Vigil's univariate detector judged it anomalous) and by more than the feature's floors,
//! in this window and persistently: for `consecutive` windows, where a window that does not
//! cross takes one back instead of starting over. A symptom that comes in bursts (requests
//! timing out together, then retried together) fires if it crosses most windows; isolated
//! crossings never add up. Only symptom features (errors, latency) fire; rising
//! throughput is not a symptom. Until a baseline has `min_history` windows the entity is
//! "learning" and nothing it does fires.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::{
    features::{features_of, WindowFeatures},
    floors::Floors,
    univariate::{UnivariateConfig, UnivariateDetector},
};
use crate::{
    entity::{Subject, SubjectClass},
    incident::evidence::FeatureEvidence,
};

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ThresholdRule {
    /// Robust σ above the median.
    pub k: f64,
    /// Windows a symptom must persist: crossing windows less the non-crossing ones since.
    pub consecutive: u32,
    /// Univariate score at which a rise fires even below `k` σ.
    pub score: f64,
    /// Healthy values remembered for the ceiling (see `FeatureBaseline::healthy`).
    pub ceiling_windows: usize,
    /// Quantile of the healthy values a symptom must exceed.
    pub ceiling_quantile: f64,
    /// After this many windows in a row over the rule, the values count as healthy anyway:
    /// a lasting change becomes the new normal instead of an incident that never ends.
    pub adapt_after: u32,
    /// Each feature's smallest rise that can be a symptom (`detection.floors`).
    #[serde(skip, default)]
    pub floors: Floors,
}

impl Default for ThresholdRule {
    fn default() -> Self {
        Self {
            k: 6.0,
            consecutive: 2,
            score: 0.9999,
            ceiling_windows: 240,
            ceiling_quantile: 0.99,
            adapt_after: 120,
            floors: Floors::default(),
        }
    }
}

/// One feature's history, persisted across restarts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureBaseline {
    detector: UnivariateDetector,
    /// Windows in a row that crossed the rule.
    streak: u32,
    /// Crossing windows less the non-crossing ones since, between 0 and `consecutive`.
    #[serde(default)]
    persistence: u32,
    /// Recent values that did not cross: a symptom must rise above nearly all of them.
    /// Healthy load is often bimodal (bursts, batch jobs, cron): the median and MAD describe
    /// the usual mode, and this ceiling keeps the recurring other mode from firing. Values
    /// that crossed stay out, so a lasting fault does not raise its own bar.
    #[serde(default)]
    healthy: VecDeque<f64>,
    /// The last `consecutive` values, crossing or not: how high the feature has stayed.
    #[serde(default)]
    recent: VecDeque<f64>,
}

/// The `q` quantile of `values` (nearest rank).
fn quantile(values: &VecDeque<f64>, q: f64) -> f64 {
    quantile_of(values.iter().copied().collect(), q)
}

/// The `q` quantile of the lowest value of every `width` consecutive ones: how high the
/// feature stayed for `width` windows at most, in nearly all of them.
fn sustained_quantile(values: &VecDeque<f64>, width: usize, q: f64) -> f64 {
    let v: Vec<f64> = values.iter().copied().collect();
    quantile_of(
        v.windows(width.max(1))
            .map(|w| w.iter().copied().fold(f64::INFINITY, f64::min))
            .collect(),
        q,
    )
}

fn quantile_of(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1)) - 1;
    v.get(i).copied().unwrap_or(f64::NEG_INFINITY)
}

/// All features of one entity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntityBaseline {
    pub class: SubjectClass,
    /// By feature name (names, not positions, so a new feature does not shift old state).
    features: BTreeMap<String, FeatureBaseline>,
    pub last_window: i64,
}

/// How one feature compared with its baseline in one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureReading {
    pub feature: &'static str,
    pub value: f64,
    pub median: f64,
    /// Signed robust z (σ floored, so a flat baseline does not make every wiggle infinite).
    pub z: f64,
    pub score: f64,
    /// Crossed the rule this window (not necessarily `consecutive` times yet).
    pub crossed: bool,
    /// Crossed it now and persistently (see the module comment): a tier-1 signal.
    pub fired: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityReading {
    pub entity: Subject,
    pub window: i64,
    pub learning: bool,
    pub features: Vec<FeatureReading>,
}

impl FeatureReading {
    /// As an incident keeps it (owned names: the reading itself is made for every subject
    /// every window, the evidence only for anomalies).
    pub fn evidence(&self) -> FeatureEvidence {
        FeatureEvidence {
            feature: self.feature.to_string(),
            value: self.value,
            median: self.median,
            z: self.z,
            score: self.score,
            crossed: self.crossed,
            fired: self.fired,
        }
    }
}

impl EntityReading {
    pub fn fired(&self) -> impl Iterator<Item = &FeatureReading> {
        self.features.iter().filter(|f| f.fired)
    }

    /// Robust z per feature in class order (0 where unmeasured), clamped: the forest's input.
    pub fn z_vector(&self) -> Vec<f64> {
        self.features
            .iter()
            .map(|f| f.z.clamp(-50.0, 50.0))
            .collect()
    }
}

impl EntityBaseline {
    pub fn new(class: SubjectClass) -> Self {
        Self {
            class,
            features: BTreeMap::new(),
            last_window: i64::MIN,
        }
    }

    pub fn learning(&self) -> bool {
        self.features.is_empty() || self.features.values().all(|f| f.detector.learning())
    }

    /// Scores one window of this entity against the baseline, then learns it.
    pub fn observe(
        &mut self,
        w: &WindowFeatures,
        config: &UnivariateConfig,
        rule: &ThresholdRule,
    ) -> EntityReading {
        self.last_window = self.last_window.max(w.window);
        let mut readings = Vec::with_capacity(w.values.len());
        for (i, (f, &value)) in features_of(self.class).iter().zip(&w.values).enumerate() {
            let mut reading = FeatureReading {
                feature: f.name,
                value,
                median: f64::NAN,
                z: 0.0,
                score: 0.0,
                crossed: false,
                fired: false,
            };
            if value.is_nan() {
                readings.push(reading);
                continue;
            }
            let b = self
                .features
                .entry(f.name.to_string())
                .or_insert_with(|| FeatureBaseline {
                    detector: UnivariateDetector::new(*config),
                    streak: 0,
                    persistence: 0,
                    healthy: VecDeque::new(),
                    recent: VecDeque::new(),
                });
            let s = b.detector.observe(value);
            let width = rule.consecutive.max(1) as usize;
            b.recent.push_back(value);
            while b.recent.len() > width {
                b.recent.pop_front();
            }
            if !s.robust.learning {
                let rise = value - s.robust.median;
                // A rise the size of the feature's floor counts as k σ: on a flat baseline
                // (σ ≈ 0) the floor, not the noise, sets the scale.
                let (floor, relative) = rule.floors.of(self.class, i);
                let floor = floor.max(relative * s.robust.median.abs());
                let scale = s.robust.sigma.max(floor / rule.k).max(f64::MIN_POSITIVE);
                reading.median = s.robust.median;
                reading.z = rise / scale;
                reading.score = s.score;
                // The ceiling sorts the healthy values: judge it last, for the few readings
                // that pass the cheap tests.
                let ceiling = quantile(&b.healthy, rule.ceiling_quantile);
                let risen =
                    f.alerting && (reading.z > rule.k || (rise > floor && s.score >= rule.score));
                // A signal that is normally absent and comes in one-window bursts (an app's
                // EACCES probes at every start: 44 in one second) sets a ceiling that a fault
                // holding it at a lower rate (5 refused opens a second, for as long as the
                // fault lasts) never passes. Held for `consecutive` windows above what the
                // healthy history ever held that long, it crosses. Only for signals whose
                // usual level is below the floor: a rate that scales with load (retransmits
                // of short connections) stays under its plain ceiling.
                let sustained = || {
                    s.robust.median.abs() <= floor
                        && b.recent.len() >= width
                        && b.recent.iter().copied().fold(f64::INFINITY, f64::min)
                            > sustained_quantile(&b.healthy, width, rule.ceiling_quantile)
                };
                reading.crossed = risen && (value > ceiling || sustained());
                if f.alerting && rise > floor && !reading.crossed {
                    tracing::trace!(
                        entity = %w.entity, feature = f.name, value, median = s.robust.median,
                        z = reading.z, ceiling, "a rise past the floor held back"
                    );
                }
            }
            b.streak = if reading.crossed { b.streak + 1 } else { 0 };
            if !reading.crossed || b.streak > rule.adapt_after {
                b.healthy.push_back(value);
                if b.healthy.len() > rule.ceiling_windows {
                    b.healthy.pop_front();
                }
            }
            b.persistence = if reading.crossed {
                (b.persistence + 1).min(rule.consecutive)
            } else {
                b.persistence.saturating_sub(1)
            };
            reading.fired = reading.crossed && b.persistence >= rule.consecutive;
            readings.push(reading);
        }
        EntityReading {
            entity: w.entity.clone(),
            window: w.window,
            learning: self.learning(),
            features: readings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::{
        features::WORKLOAD_DIM, robust::RobustConfig, univariate::UnivariateConfig,
    };

    fn config() -> UnivariateConfig {
        UnivariateConfig {
            robust: RobustConfig {
                long: 60,
                short: 3,
                min_history: 20,
                ..RobustConfig::default()
            },
            likelihood: None,
            conformal: None,
        }
    }

    fn window(w: i64, slot: usize, value: f64) -> WindowFeatures {
        let mut values = vec![0.0; WORKLOAD_DIM];
        values[slot] = value;
        WindowFeatures {
            window: w,
            entity: Subject::Workload("app".into()),
            values,
        }
    }

    /// Index of a workload feature by name.
    fn slot(name: &str) -> usize {
        features_of(SubjectClass::Workload)
            .iter()
            .position(|f| f.name == name)
            .unwrap_or(usize::MAX)
    }

    #[test]
    fn learning_then_fires_after_consecutive_windows_only() {
        let p99 = slot("syscall_p99_us");
        let (c, rule) = (config(), ThresholdRule::default());
        let mut b = EntityBaseline::new(SubjectClass::Workload);
        for w in 0..19 {
            let r = b.observe(&window(w, p99, 100.0 + (w % 3) as f64 * 20.0), &c, &rule);
            assert!(r.learning, "window {w} judged while learning");
        }
        for w in 19..60 {
            let r = b.observe(&window(w, p99, 100.0 + (w % 3) as f64 * 20.0), &c, &rule);
            assert!(!r.learning && r.fired().count() == 0, "window {w}: {r:?}");
        }
        // One bad window crosses but does not fire; the second in a row fires.
        let first = b.observe(&window(60, p99, 50_000.0), &c, &rule);
        assert!(first.features[p99].crossed && !first.features[p99].fired);
        let second = b.observe(&window(61, p99, 50_000.0), &c, &rule);
        assert_eq!(
            second.fired().map(|f| f.feature).collect::<Vec<_>>(),
            ["syscall_p99_us"]
        );
        assert!(second.features[p99].z > 6.0);
    }

    #[test]
    fn a_configured_floor_holds_back_a_smaller_rise() {
        let p99 = slot("syscall_p99_us");
        let c = config();
        let mut rule = ThresholdRule::default();
        rule.floors
            .set(
                SubjectClass::Workload,
                "syscall_p99_us",
                Some(100_000.0),
                None,
            )
            .expect("a known feature");
        let mut b = EntityBaseline::new(SubjectClass::Workload);
        for w in 0..60 {
            b.observe(&window(w, p99, 100.0 + (w % 3) as f64 * 20.0), &c, &rule);
        }
        // 50 ms fires with the default 1 ms floor (see above), not under a 100 ms one.
        for w in 60..70 {
            let r = b.observe(&window(w, p99, 50_000.0), &c, &rule);
            assert_eq!(r.fired().count(), 0, "window {w}: {r:?}");
        }
        let r = b.observe(&window(70, p99, 250_000.0), &c, &rule);
        assert!(
            r.features[p99].crossed,
            "a rise past the floor still crosses: {r:?}"
        );
    }

    /// Windows of `pattern` (true: a bad value) after a learned baseline: which fired.
    fn fired_in(pattern: &[bool], consecutive: u32) -> Vec<bool> {
        let p99 = slot("syscall_p99_us");
        let c = config();
        let rule = ThresholdRule {
            consecutive,
            ..ThresholdRule::default()
        };
        let mut b = EntityBaseline::new(SubjectClass::Workload);
        for w in 0..60 {
            b.observe(&window(w, p99, 100.0 + (w % 3) as f64 * 20.0), &c, &rule);
        }
        pattern
            .iter()
            .enumerate()
            .map(|(i, &bad)| {
                let v = if bad { 50_000.0 } else { 110.0 };
                b.observe(&window(60 + i as i64, p99, v), &c, &rule)
                    .features[p99]
                    .fired
            })
            .collect()
    }

    #[test]
    fn a_steady_rate_below_one_window_bursts_fires_and_the_bursts_do_not() {
        // An app refused 44 opens in the one second of every start (seen while learning and
        // again later), then a fault refuses 5 a second for as long as it lasts.
        let f = slot("syscall_errors_permission_per_s");
        let c = config();
        let rule = ThresholdRule {
            consecutive: 3,
            ..ThresholdRule::default()
        };
        let mut b = EntityBaseline::new(SubjectClass::Workload);
        let burst = |w: i64| if w % 20 == 5 { 44.0 } else { 0.0 };
        let mut fired_on_bursts = 0;
        for w in 0..200 {
            let r = b.observe(&window(w, f, burst(w)), &c, &rule);
            fired_on_bursts += usize::from(r.features[f].fired);
        }
        assert_eq!(
            fired_on_bursts, 0,
            "restarts' bursts are the healthy pattern"
        );
        let fired: Vec<bool> = (200..208)
            .map(|w| b.observe(&window(w, f, 5.0), &c, &rule).features[f].fired)
            .collect();
        let first = fired.iter().position(|x| *x);
        assert!(
            first.is_some_and(|i| i <= 5),
            "a steady 5/s fires within 6 windows: {fired:?}"
        );
    }

    #[test]
    fn a_symptom_that_crosses_most_windows_fires_and_isolated_crossings_never_do() {
        // Bursts: four bad windows, one good, repeated (requests timing out together).
        let bursts: Vec<bool> = (0..20).map(|i| i % 5 != 4).collect();
        let fired = fired_in(&bursts, 10);
        assert!(
            fired.iter().any(|f| *f),
            "a mostly-bad symptom fires: {fired:?}"
        );
        assert!(
            fired.iter().zip(&bursts).all(|(f, bad)| !f || *bad),
            "only in a bad window"
        );
        // Every other window bad: the leak keeps it from adding up.
        let alternating: Vec<bool> = (0..40).map(|i| i % 2 == 0).collect();
        assert!(fired_in(&alternating, 10).iter().all(|f| !f));
        // Nine bad, one good, never ten in a row: still fires (the strict rule never would).
        let nine: Vec<bool> = (0..30).map(|i| i % 10 != 9).collect();
        assert!(fired_in(&nine, 10).iter().any(|f| *f));
    }

    #[test]
    fn floors_keep_single_errors_and_throughput_from_firing() {
        let errors = slot("syscall_errors_permission_per_s");
        let rate = slot("connects_in_per_s");
        let (c, rule) = (config(), ThresholdRule::default());
        let mut b = EntityBaseline::new(SubjectClass::Workload);
        for w in 0..40 {
            b.observe(&window(w, errors, 0.0), &c, &rule);
        }
        // 0.2 errors/s over a zero baseline: below the 0.5/s floor.
        for w in 40..45 {
            let r = b.observe(&window(w, errors, 0.2), &c, &rule);
            assert_eq!(r.fired().count(), 0);
        }
        // A tenfold burst of connections is not a symptom.
        let mut b = EntityBaseline::new(SubjectClass::Workload);
        for w in 0..40 {
            b.observe(&window(w, rate, 10.0), &c, &rule);
        }
        for w in 40..45 {
            let r = b.observe(&window(w, rate, 100.0), &c, &rule);
            assert_eq!(r.fired().count(), 0);
        }
        // Sustained errors over the floor fire.
        let mut b = EntityBaseline::new(SubjectClass::Workload);
        for w in 0..40 {
            b.observe(&window(w, errors, 0.0), &c, &rule);
        }
        let fired = (40..45).any(|w| {
            b.observe(&window(w, errors, 20.0), &c, &rule)
                .fired()
                .count()
                > 0
        });
        assert!(fired);
    }

    #[test]
    fn a_recurring_burst_is_healthy_a_new_high_is_not_and_a_lasting_one_adapts() {
        let p99 = slot("syscall_p99_us");
        let rule = ThresholdRule {
            adapt_after: 20,
            ..ThresholdRule::default()
        };
        let c = config();
        let mut b = EntityBaseline::new(SubjectClass::Workload);
        let mut without_ceiling = EntityBaseline::new(SubjectClass::Workload);
        let no_ceiling = ThresholdRule {
            ceiling_quantile: 0.0,
            ..rule
        };
        // Mostly 130 µs, every 16 windows a 2 ms burst lasting 3 windows (longer than the
        // consecutive rule, so only the ceiling keeps it quiet).
        let healthy = |w: i64| {
            if w % 16 < 3 {
                2_000.0
            } else {
                130.0 + (w % 3) as f64
            }
        };
        let mut fired_without = 0;
        for w in 0..200 {
            let r = b.observe(&window(w, p99, healthy(w)), &c, &rule);
            assert_eq!(r.fired().count(), 0, "window {w}: {r:?}");
            let r = without_ceiling.observe(&window(w, p99, healthy(w)), &c, &no_ceiling);
            fired_without += r.fired().count();
        }
        assert!(
            fired_without > 0,
            "the bursts alone would fire on median and MAD"
        );
        // Well above anything seen: fires, and keeps firing while it lasts...
        let fired: Vec<bool> = (200..215)
            .map(|w| {
                b.observe(&window(w, p99, 20_000.0), &c, &rule)
                    .fired()
                    .count()
                    > 0
            })
            .collect();
        assert!(fired[1..].iter().all(|f| *f), "{fired:?}");
        // ...until it has lasted `adapt_after` windows and became the new normal.
        let later = (215..300)
            .map(|w| {
                b.observe(&window(w, p99, 20_000.0), &c, &rule)
                    .fired()
                    .count()
            })
            .last();
        assert_eq!(later, Some(0));
    }

    #[test]
    fn state_survives_a_serde_round_trip() {
        let p99 = slot("syscall_p99_us");
        let (c, rule) = (config(), ThresholdRule::default());
        let mut b = EntityBaseline::new(SubjectClass::Workload);
        for w in 0..30 {
            b.observe(&window(w, p99, 100.0 + (w % 5) as f64), &c, &rule);
        }
        let json = serde_json::to_string(&b).unwrap_or_default();
        let mut restored: EntityBaseline = serde_json::from_str(&json).expect("round trip");
        assert!(!restored.learning());
        let a = b.observe(&window(30, p99, 10_000.0), &c, &rule);
        let r = restored.observe(&window(30, p99, 10_000.0), &c, &rule);
        assert_eq!(a, r);
    }
}
