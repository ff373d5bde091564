//! The Numenta Anomaly Benchmark's scoring, re-implemented from its rules:
//! probation, labelled windows, the scaled sigmoid, three cost profiles, a threshold sweep
//! over the whole corpus, and normalisation between the null and the perfect detector.

use std::collections::BTreeMap;

/// (A_TP, A_FP, A_FN) of one NAB profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    pub name: &'static str,
    pub tp: f64,
    pub fp: f64,
    pub fn_: f64,
}

pub const PROFILES: [Profile; 3] = [
    Profile {
        name: "standard",
        tp: 1.0,
        fp: 0.11,
        fn_: 1.0,
    },
    Profile {
        name: "reward_low_FP_rate",
        tp: 1.0,
        fp: 0.22,
        fn_: 1.0,
    },
    Profile {
        name: "reward_low_FN_rate",
        tp: 1.0,
        fp: 0.11,
        fn_: 2.0,
    },
];

/// `2/(1+e^(5y)) − 1`: +0.987 at the start of a window (y = −1), 0 at its end, → −1 after.
pub fn scaled_sigmoid(y: f64) -> f64 {
    2.0 / (1.0 + (5.0 * y).exp()) - 1.0
}

/// One series: its length and its labelled windows as inclusive row ranges.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub rows: usize,
    pub windows: Vec<(usize, usize)>,
}

impl Series {
    /// Rows before this one are the probation period and are not scored.
    pub fn probation(&self) -> usize {
        ((self.rows as f64 * 0.15).floor() as usize).min(750)
    }
}

/// Raw score of `detections` (row indices, ascending) on one series under `p`.
pub fn score_file(s: &Series, detections: &[usize], p: &Profile) -> f64 {
    let probation = s.probation();
    let mut detected = vec![false; s.windows.len()];
    let mut total = 0.0;
    for &i in detections.iter().filter(|&&i| i >= probation) {
        if let Some(w) = s.windows.iter().position(|&(a, b)| a <= i && i <= b) {
            if !detected[w] {
                detected[w] = true;
                let (a, b) = s.windows[w];
                let len = (b - a).max(1) as f64;
                let y = -((b - i) as f64) / len;
                total += p.tp * scaled_sigmoid(y);
            }
            continue;
        }
        // A false positive, cheaper right after a window (the anomaly may still be unfolding).
        match s.windows.iter().rfind(|&&(_, b)| b < i) {
            Some(&(a, b)) => {
                let len = (b - a).max(1) as f64;
                total += p.fp * scaled_sigmoid((i - b) as f64 / len);
            }
            None => total -= p.fp,
        }
    }
    total - p.fn_ * detected.iter().filter(|d| !**d).count() as f64
}

/// The corpus score normalised to 0 (never fires) … 100 (fires at every window's start).
pub fn normalise(raw: f64, corpus: &[Series], p: &Profile) -> f64 {
    let windows: usize = corpus.iter().map(|s| s.windows.len()).sum();
    let null = -p.fn_ * windows as f64;
    let perfect = p.tp * scaled_sigmoid(-1.0) * windows as f64;
    100.0 * (raw - null) / (perfect - null)
}

/// Result of a threshold sweep for one profile.
#[derive(Debug, Clone)]
pub struct ProfileResult {
    pub profile: Profile,
    pub threshold: f64,
    pub score: f64,
    pub per_file: BTreeMap<String, f64>,
}

/// Alerts from scores: crossing `threshold`, at most one per `refractory` rows.
pub fn alerts(scores: &[f64], threshold: f64, refractory: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut quiet_until = 0;
    for (i, &s) in scores.iter().enumerate() {
        if i >= quiet_until && s >= threshold {
            out.push(i);
            quiet_until = i + refractory;
        }
    }
    out
}

/// Sweeps the threshold over `thresholds` for each profile, on (series, scores) pairs.
pub fn sweep(
    corpus: &[(Series, Vec<f64>)],
    thresholds: &[f64],
    refractory: impl Fn(&Series) -> usize,
) -> Vec<ProfileResult> {
    let series: Vec<Series> = corpus.iter().map(|(s, _)| s.clone()).collect();
    PROFILES
        .iter()
        .map(|p| {
            let mut best: Option<ProfileResult> = None;
            for &t in thresholds {
                let mut raw = 0.0;
                let mut per_file = BTreeMap::new();
                for (s, scores) in corpus {
                    let a = alerts(scores, t, refractory(s));
                    let f = score_file(s, &a, p);
                    raw += f;
                    per_file.insert(s.name.clone(), f);
                }
                let score = normalise(raw, &series, p);
                if best.as_ref().is_none_or(|b| score > b.score) {
                    best = Some(ProfileResult {
                        profile: *p,
                        threshold: t,
                        score,
                        per_file,
                    });
                }
            }
            best.unwrap_or(ProfileResult {
                profile: *p,
                threshold: f64::NAN,
                score: 0.0,
                per_file: BTreeMap::new(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series() -> Series {
        Series {
            name: "s".into(),
            rows: 1000,
            windows: vec![(400, 499), (800, 899)],
        }
    }

    #[test]
    fn null_and_perfect_detectors_bound_the_score() {
        let s = series();
        let p = &PROFILES[0];
        let corpus = vec![s.clone()];
        assert_eq!(normalise(score_file(&s, &[], p), &corpus, p), 0.0);
        let perfect = score_file(&s, &[400, 800], p);
        assert!((normalise(perfect, &corpus, p) - 100.0).abs() < 1e-9);
    }

    #[test]
    fn late_detection_earns_less_and_false_positives_cost() {
        let s = series();
        let p = &PROFILES[0];
        let early = score_file(&s, &[410], p);
        let late = score_file(&s, &[495], p);
        assert!(early > late && late > -1.0, "{early} {late}");
        // Only the first detection in a window counts.
        assert_eq!(score_file(&s, &[410, 420], p), early);
        // Probation (first 150 rows) is not scored; a later FP before any window costs A_FP.
        assert_eq!(score_file(&s, &[10], p), score_file(&s, &[], p));
        let fp = score_file(&s, &[200], p) - score_file(&s, &[], p);
        assert!((fp + 0.11).abs() < 1e-9, "{fp}");
        // Right after a window an FP is cheap; far after it costs nearly A_FP.
        let near = score_file(&s, &[500], p) - score_file(&s, &[], p);
        let far = score_file(&s, &[700], p) - score_file(&s, &[], p);
        assert!(near > far && far < -0.1, "{near} {far}");
    }

    #[test]
    fn refractory_alerts() {
        let scores = [0.0, 0.9, 0.9, 0.1, 0.9, 0.0, 0.9];
        assert_eq!(alerts(&scores, 0.5, 3), vec![1, 4]);
        assert_eq!(alerts(&scores, 0.5, 1), vec![1, 2, 4, 6]);
    }
}
