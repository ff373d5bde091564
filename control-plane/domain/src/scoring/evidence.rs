//! How strongly one metric says "something changed here" after a point in time, as a
//! calibrated tail probability rather than a raw σ count.
//!
//! Three things keep a twitch from looking like a fault:
//! - a deviation is taken over a short rolling median (`sustain` points), so one odd point is
//!   not a change;
//! - its probability is a heavy (Cauchy) tail of its robust z, `(2/π)·atan(1/z)`, so its
//!   evidence `−log10 p` grows like `log10 z`: a thousand σ is three times the evidence of
//!   ten, not ten thousand times, and a metric whose σ is nearly 0 cannot win by its σ alone.
//!   It is never below the share of reference points that deviated as far themselves (a
//!   bimodal baseline is not surprised by its own other mode);
//! - the evidence saturates softly at `max_evidence`, so evidence from several metrics adds
//!   up on one scale (see `combine`).

use serde::Serialize;

use super::{kind::MetricKind, scale::Reference};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvidenceConfig {
    /// Points in the rolling median a deviation is read from.
    pub sustain: usize,
    /// Robust z past which a sustained deviation marks the metric's onset.
    pub onset_z: f64,
    /// The evidence no single metric can exceed (a soft cap: `e / (1 + e / max)`).
    pub max_evidence: f64,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        Self {
            sustain: 3,
            onset_z: 3.0,
            max_evidence: 10.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricEvidence {
    pub metric: String,
    pub kind: MetricKind,
    /// Robust z of the largest sustained deviation after the change.
    pub z: f64,
    /// Its tail probability (see the module's notes).
    pub p: f64,
    /// `−log10 p`.
    pub evidence: f64,
    /// When the sustained deviation first passed `onset_z` (the time of the rolling median's
    /// first point), if it did.
    pub onset: Option<f64>,
}

/// Two-sided standard Cauchy tail: P(|X| ≥ z).
pub fn cauchy_tail(z: f64) -> f64 {
    if z <= 0.0 {
        1.0
    } else {
        std::f64::consts::FRAC_2_PI * (1.0 / z).atan()
    }
}

/// Rolling medians of `width` consecutive values (fewer at the start), in order.
fn rolling_median(values: &[f64], width: usize) -> Vec<f64> {
    let width = width.max(1);
    (0..values.len())
        .map(|i| {
            let mut w: Vec<f64> = values[i.saturating_sub(width - 1)..=i].to_vec();
            w.sort_by(f64::total_cmp);
            let n = w.len();
            if n % 2 == 1 {
                w[n / 2]
            } else {
                (w[n / 2 - 1] + w[n / 2]) / 2.0
            }
        })
        .collect()
}

/// A metric's values before the change, on its kind's scale, with their reference: built
/// once, both to set the peers' floors and to judge the metric against.
#[derive(Debug, Clone)]
pub struct Before {
    values: Vec<f64>,
    pub reference: Reference,
}

impl Before {
    /// From raw values (finite ones only); `None` with too few to judge.
    pub fn of(kind: MetricKind, raw: &[f64]) -> Option<Self> {
        let values: Vec<f64> = raw.iter().map(|x| kind.transform(*x)).collect();
        let reference = Reference::of(&values)?;
        Some(Self { values, reference })
    }
}

/// One metric's evidence: `after` are raw values (finite ones only) with their times;
/// `peer_floor` is the usual spread of the same metric elsewhere (on the transformed
/// scale). `None` when nothing came after the change.
pub fn judge(
    metric: &str,
    kind: MetricKind,
    before: &Before,
    after: &[(f64, f64)],
    peer_floor: f64,
    config: EvidenceConfig,
) -> Option<MetricEvidence> {
    if after.is_empty() {
        return None;
    }
    let mut reference = before.reference;
    let before = &before.values;
    if reference.resolution == 0.0 {
        // Flat before: the smallest step the metric takes at all is its resolution, so a
        // constant that moves by one unit of its own moves by one σ, not by 10⁹.
        let mut all = before.clone();
        all.extend(after.iter().map(|(_, x)| kind.transform(*x)));
        reference.resolution = Reference::of(&all).map_or(0.0, |r| r.resolution);
    }
    let sigma = reference.sigma(peer_floor, kind);
    let z_of = |x: f64| (x - reference.centre).abs() / sigma;
    // The reference's own sustained deviations, to calibrate against.
    let mut own: Vec<f64> = rolling_median(before, config.sustain)
        .into_iter()
        .skip(config.sustain.saturating_sub(1))
        .map(z_of)
        .collect();
    own.sort_by(f64::total_cmp);
    // The rolling median runs on from the reference into the window after, so a change at
    // the window's first points is read at once.
    let lead = config.sustain.saturating_sub(1).min(before.len());
    let mut joined: Vec<f64> = before[before.len() - lead..].to_vec();
    joined.extend(after.iter().map(|(_, x)| kind.transform(*x)));
    let sustained = rolling_median(&joined, config.sustain);
    let mut z = 0.0f64;
    let mut onset = None;
    for (i, m) in sustained.iter().enumerate().skip(lead) {
        let zi = z_of(*m);
        z = z.max(zi);
        if onset.is_none() && zi >= config.onset_z {
            // The earliest point of the window that made this median.
            let first = (i + 1).saturating_sub(config.sustain).max(lead) - lead;
            onset = Some(after[first].0);
        }
    }
    let n = own.len().max(1) as f64;
    let as_far = own.len() - own.partition_point(|d| *d < z);
    let p = cauchy_tail(z)
        .max(as_far as f64 / (n + 1.0))
        .max(f64::MIN_POSITIVE);
    let raw = -p.log10();
    Some(MetricEvidence {
        metric: metric.to_string(),
        kind,
        z,
        p,
        evidence: raw / (1.0 + raw / config.max_evidence.max(f64::MIN_POSITIVE)),
        onset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy(n: usize, level: f64, spread: f64) -> Vec<f64> {
        (0..n)
            .map(|i| level + spread * (f64::from((i * 7919 % 13) as u32) / 13.0 - 0.5))
            .collect()
    }

    fn after(values: &[f64], t0: f64) -> Vec<(f64, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (t0 + i as f64, *v))
            .collect()
    }

    fn before(kind: MetricKind, raw: &[f64]) -> Before {
        Before::of(kind, raw).expect("enough values")
    }

    #[test]
    fn evidence_grows_with_the_log_of_the_step_and_saturates() {
        let reference = noisy(99, 100.0, 4.0);
        let e = judge(
            "x",
            MetricKind::Level,
            &before(MetricKind::Level, &reference),
            &after(&[1e9; 10], 100.0),
            0.0,
            EvidenceConfig::default(),
        )
        .expect("judged");
        // ×10⁷ is ~16 on the log scale, a thousand of the reference's σ.
        assert!(e.z > 1e3, "{e:?}");
        // A normal tail would say 10⁻³⁰⁰⁰⁰⁰; a heavy one about 1/z.
        assert!(
            (e.p * e.z * std::f64::consts::PI / 2.0 - 1.0).abs() < 1e-3,
            "{e:?}"
        );
        assert!(e.evidence < EvidenceConfig::default().max_evidence, "{e:?}");
        assert_eq!(e.onset, Some(100.0));
        let ten = judge(
            "x",
            MetricKind::Level,
            &before(MetricKind::Level, &reference),
            &after(&[130.0; 10], 100.0),
            0.0,
            EvidenceConfig::default(),
        )
        .expect("judged");
        assert!(
            ten.evidence > 0.5 && ten.evidence < e.evidence,
            "{ten:?} {e:?}"
        );
    }

    #[test]
    fn one_odd_point_is_not_a_change() {
        let reference = noisy(60, 100.0, 4.0);
        let mut later = noisy(10, 100.0, 4.0);
        later[4] = 500.0;
        let e = judge(
            "x",
            MetricKind::Level,
            &before(MetricKind::Level, &reference),
            &after(&later, 60.0),
            0.0,
            EvidenceConfig::default(),
        )
        .expect("judged");
        assert!(e.z < 3.0 && e.onset.is_none(), "{e:?}");
    }

    #[test]
    fn a_bimodal_reference_is_not_surprised_by_its_other_mode() {
        // Healthy bursts to 300 a fifth of the time, three points long.
        let reference: Vec<f64> = (0..100)
            .map(|i| {
                if i % 20 < 4 {
                    300.0
                } else {
                    100.0 + f64::from(i % 3)
                }
            })
            .collect();
        let e = judge(
            "x",
            MetricKind::Level,
            &before(MetricKind::Level, &reference),
            &after(&[300.0; 5], 100.0),
            0.0,
            EvidenceConfig::default(),
        )
        .expect("judged");
        assert!(e.p > 0.1, "{e:?}");
    }
}
