//! The two tiers' decision for one window: each subject against its baseline (thresholds),
//! then its class's isolation forest, which confirms modest threshold signals and finds joint
//! deviations on its own.

use std::collections::{HashMap, HashSet};

use super::{
    baseline::{EntityBaseline, EntityReading},
    config::DetectionConfig,
    correlate::Anomaly,
    explain::discount_cpu_delay,
    features::{WindowFeatures, EDGE_DIM, EDGE_FEATURES, WORKLOAD_DIM, WORKLOAD_FEATURES},
    forest::{ClassForest, ForestVerdict},
};
use crate::{
    entity::{Subject, SubjectClass},
    observe::EntityScore,
};

/// Every subject's baseline and each class's forest: detection's learned state.
pub struct Tiers {
    pub baselines: HashMap<Subject, EntityBaseline>,
    /// Baselines changed since they were last saved.
    pub dirty: HashSet<Subject>,
    workload_forest: ClassForest<WORKLOAD_DIM>,
    edge_forest: ClassForest<EDGE_DIM>,
    /// Windows in a row the forest alone found a subject odd.
    forest_streak: HashMap<Subject, u32>,
}

fn names<const N: usize>(features: &[super::features::Feature; N]) -> [&'static str; N] {
    features.map(|f| f.name)
}

/// A reading's anomaly score from its strongest crossed feature: 0.5 at k σ, → 1.
fn threshold_score(reading: &EntityReading, k: f64) -> f64 {
    let z = reading
        .features
        .iter()
        .filter(|f| f.crossed)
        .map(|f| f.z)
        .fold(0.0, f64::max);
    z / (z + k)
}

impl Tiers {
    pub fn new(config: &DetectionConfig, baselines: HashMap<Subject, EntityBaseline>) -> Self {
        Self {
            baselines,
            dirty: HashSet::new(),
            workload_forest: ClassForest::new(config.forest, names(&WORKLOAD_FEATURES)),
            edge_forest: ClassForest::new(config.forest, names(&EDGE_FEATURES)),
            forest_streak: HashMap::new(),
        }
    }

    /// Whether the (workload, edge) forests are trained.
    pub fn forests_trained(&self) -> (bool, bool) {
        (self.workload_forest.trained(), self.edge_forest.trained())
    }

    fn forest_judge(&self, class: SubjectClass, z: &[f64]) -> Option<ForestVerdict> {
        match class {
            SubjectClass::Workload => self.workload_forest.judge(z),
            SubjectClass::Edge => self.edge_forest.judge(z),
        }
    }

    fn forest_learn(&mut self, class: SubjectClass, z: &[f64]) {
        match class {
            SubjectClass::Workload => self.workload_forest.learn(z),
            SubjectClass::Edge => self.edge_forest.learn(z),
        }
    }

    /// Judges one window's vectors: the anomalies, each subject's score appended to `scores`.
    /// Returns the anomalies and how many measured values were judged.
    pub fn judge(
        &mut self,
        c: &DetectionConfig,
        vectors: &[WindowFeatures],
        scores: &mut Vec<EntityScore>,
    ) -> (Vec<Anomaly>, u64) {
        let mut anomalies = Vec::new();
        let mut samples = 0;
        for v in vectors.iter().filter(|v| v.entity.attributable()) {
            samples += v.values.iter().filter(|x| !x.is_nan()).count() as u64;
            let baseline = self
                .baselines
                .entry(v.entity.clone())
                .or_insert_with(|| EntityBaseline::new(v.entity.class()));
            let mut reading = baseline.observe(v, &c.univariate, &c.rule);
            if v.entity.class() == SubjectClass::Edge {
                discount_cpu_delay(&mut reading);
            }
            self.dirty.insert(v.entity.clone());
            if reading.learning {
                continue;
            }
            let z = reading.z_vector();
            let class = v.entity.class();
            let verdict = self.forest_judge(class, &z);
            scores.push(EntityScore {
                entity: v.entity.clone(),
                max_z: reading.features.iter().map(|f| f.z).fold(0.0, f64::max),
                forest: verdict.as_ref().map(|f| f.score),
            });
            let fired = reading.fired().count() > 0;
            let crossed = reading.features.iter().any(|f| f.crossed);
            let max_z = reading
                .features
                .iter()
                .filter(|f| f.crossed)
                .map(|f| f.z)
                .fold(0.0, f64::max);
            let streak = self.forest_streak.entry(v.entity.clone()).or_insert(0);
            *streak = match &verdict {
                Some(f) if f.score >= c.forest_alone => *streak + 1,
                _ => 0,
            };
            let forest_alone = *streak >= c.rule.consecutive;
            if !crossed && !forest_alone {
                self.forest_learn(class, &z);
            }
            // The forest confirms modest threshold signals; strong ones stand on their own.
            let confirmed = verdict
                .as_ref()
                .is_none_or(|f| f.score >= c.forest_confirm || max_z >= 2.0 * c.rule.k);
            let anomaly = if fired && confirmed {
                Some((1, threshold_score(&reading, c.rule.k)))
            } else if forest_alone {
                verdict.as_ref().map(|f| (2, f.score))
            } else {
                None
            };
            if let Some((tier, score)) = anomaly {
                anomalies.push(to_anomaly(&reading, tier, score, verdict, c.window_ns));
            }
        }
        (anomalies, samples)
    }
}

fn to_anomaly(
    reading: &EntityReading,
    tier: u8,
    score: f64,
    forest: Option<ForestVerdict>,
    window_ns: i64,
) -> Anomaly {
    let mut crossed: Vec<_> = reading.features.iter().filter(|f| f.crossed).collect();
    crossed.sort_by(|a, b| b.z.total_cmp(&a.z));
    Anomaly {
        entity: reading.entity.clone(),
        class: reading.entity.class(),
        window: reading.window,
        time_unix_ns: (reading.window + 1) * window_ns,
        score,
        tier,
        features: crossed.into_iter().map(|f| f.evidence()).collect(),
        forest: forest.as_ref().map(ForestVerdict::evidence),
    }
}
