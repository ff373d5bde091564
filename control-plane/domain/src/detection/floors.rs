//! Each alerting feature's floors — the smallest rise that can be a symptom, absolute and
//! relative to the baseline — with the feature tables' defaults, overridable by name from
//! the config (`detection.floors`). Fixed-size arrays in the features' order, so the
//! detection config stays `Copy` and a lookup is an index.

use super::features::{features_of, EDGE_DIM, WORKLOAD_DIM};
use crate::entity::SubjectClass;

/// (absolute floor, relative floor) per feature, by subject class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Floors {
    workload: [(f64, f64); WORKLOAD_DIM],
    edge: [(f64, f64); EDGE_DIM],
}

/// A floor the config cannot set.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FloorError {
    #[error("no alerting feature {class}.{feature}; the features with floors are: {known}")]
    UnknownFeature {
        class: &'static str,
        feature: String,
        known: String,
    },
    /// With both floors at 0, a flat baseline's σ is 0 and any rise at all would fire.
    #[error("{class}.{feature} needs a floor or a relative_floor above 0")]
    Zero {
        class: &'static str,
        feature: String,
    },
}

fn class_name(class: SubjectClass) -> &'static str {
    match class {
        SubjectClass::Workload => "workload",
        SubjectClass::Edge => "edge",
    }
}

impl Default for Floors {
    fn default() -> Self {
        let mut f = Self {
            workload: [(0.0, 0.0); WORKLOAD_DIM],
            edge: [(0.0, 0.0); EDGE_DIM],
        };
        for class in [SubjectClass::Workload, SubjectClass::Edge] {
            for (i, feature) in features_of(class).iter().enumerate() {
                f.slots_mut(class)[i] = (feature.floor, feature.relative_floor);
            }
        }
        f
    }
}

impl Floors {
    fn slots_mut(&mut self, class: SubjectClass) -> &mut [(f64, f64)] {
        match class {
            SubjectClass::Workload => &mut self.workload,
            SubjectClass::Edge => &mut self.edge,
        }
    }

    /// The floors of feature `i` of `class` (its index in `features_of(class)`).
    pub fn of(&self, class: SubjectClass, i: usize) -> (f64, f64) {
        let slots: &[(f64, f64)] = match class {
            SubjectClass::Workload => &self.workload,
            SubjectClass::Edge => &self.edge,
        };
        slots.get(i).copied().unwrap_or((0.0, 0.0))
    }

    /// Overrides one alerting feature's floors; `None` keeps that one.
    pub fn set(
        &mut self,
        class: SubjectClass,
        feature: &str,
        floor: Option<f64>,
        relative: Option<f64>,
    ) -> Result<(), FloorError> {
        let features = features_of(class);
        let Some(i) = features
            .iter()
            .position(|f| f.alerting && f.name == feature)
        else {
            let known = [SubjectClass::Workload, SubjectClass::Edge]
                .iter()
                .flat_map(|&c| {
                    features_of(c)
                        .iter()
                        .filter(|f| f.alerting)
                        .map(move |f| format!("{}.{}", class_name(c), f.name))
                })
                .collect::<Vec<_>>()
                .join(", ");
            return Err(FloorError::UnknownFeature {
                class: class_name(class),
                feature: feature.to_string(),
                known,
            });
        };
        let slot = &mut self.slots_mut(class)[i];
        if let Some(floor) = floor {
            slot.0 = floor;
        }
        if let Some(relative) = relative {
            slot.1 = relative;
        }
        if slot.0 <= 0.0 && slot.1 <= 0.0 {
            return Err(FloorError::Zero {
                class: class_name(class),
                feature: feature.to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_tables_and_names_are_checked() {
        let mut f = Floors::default();
        let p99 = features_of(SubjectClass::Edge)
            .iter()
            .position(|f| f.name == "request_p99_us")
            .expect("an edge feature");
        assert_eq!(f.of(SubjectClass::Edge, p99), (10_000.0, 1.0));
        f.set(SubjectClass::Edge, "request_p99_us", None, Some(3.0))
            .expect("a known feature");
        assert_eq!(f.of(SubjectClass::Edge, p99), (10_000.0, 3.0));
        let err = f
            .set(SubjectClass::Edge, "request_p99", Some(1.0), None)
            .expect_err("a misspelt feature");
        assert!(err.to_string().contains("edge.request_p99_us"), "{err}");
        let zero = f.set(SubjectClass::Edge, "error_ratio", Some(0.0), Some(0.0));
        assert!(matches!(zero, Err(FloorError::Zero { .. })), "{zero:?}");
        // Context features have no floor to set.
        assert!(f
            .set(SubjectClass::Edge, "requests_per_s", Some(1.0), None)
            .is_err());
    }
}
