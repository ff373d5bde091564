//! From votes to a verdict. Each voter (a tool, or the detector that opened the incident) is
//! one independent witness. For every class any voter named:
//!
//! - *strength* is the noisy-OR of the votes consistent with it (the class itself, or a
//!   generic symptom it explains): independent witnesses raise it, none alone reaches 1;
//! - *agreement* is the consistent share of all vote mass: a voter that names a cause the
//!   class does not explain is a disagreement and pulls it down.
//!
//! Confidence is strength × agreement. Below the gate the incident is routed to review.

use std::collections::BTreeSet;

use super::{
    model::{Ballot, Route},
    taxonomy::FaultClass,
    tool::Vote,
};

/// One voter's votes.
#[derive(Debug, Clone, PartialEq)]
pub struct Voter {
    pub name: String,
    pub votes: Vec<Vote>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub class: Option<FaultClass>,
    pub confidence: f64,
    pub route: Route,
    pub breakdown: Vec<Ballot>,
}

/// The voter's strongest vote consistent with `class`, and its strongest that is not.
fn stance(voter: &Voter, class: FaultClass) -> (f64, f64) {
    let mut agree: f64 = 0.0;
    let mut oppose: f64 = 0.0;
    for v in &voter.votes {
        if class.explains(v.class) {
            agree = agree.max(v.strength);
        } else {
            oppose = oppose.max(v.strength);
        }
    }
    (agree, oppose)
}

fn confidence(voters: &[Voter], class: FaultClass) -> f64 {
    let (mut miss, mut agree_mass, mut oppose_mass) = (1.0, 0.0, 0.0);
    for v in voters {
        let (a, o) = stance(v, class);
        miss *= 1.0 - a;
        agree_mass += a;
        oppose_mass += o;
    }
    let total = agree_mass + oppose_mass;
    if total <= 0.0 {
        return 0.0;
    }
    (1.0 - miss) * agree_mass / total
}

pub fn decide(voters: &[Voter], gate: f64) -> Verdict {
    let candidates: BTreeSet<FaultClass> = voters
        .iter()
        .flat_map(|v| v.votes.iter().map(|x| x.class))
        .collect();
    // Highest confidence; on a tie the specific cause over the generic symptom.
    let best = candidates
        .into_iter()
        .map(|c| (c, confidence(voters, c)))
        .max_by(|(a, ca), (b, cb)| {
            ca.total_cmp(cb)
                .then_with(|| b.is_generic().cmp(&a.is_generic()))
        });
    let (class, confidence) = match best {
        Some((c, conf)) if conf > 0.0 => (Some(c), conf),
        _ => (None, 0.0),
    };
    let breakdown = voters
        .iter()
        .map(|v| {
            let top = v
                .votes
                .iter()
                .max_by(|a, b| a.strength.total_cmp(&b.strength));
            Ballot {
                voter: v.name.clone(),
                class: top.map(|t| t.class),
                strength: top.map_or(0.0, |t| t.strength),
                agrees: match (class, top) {
                    (Some(c), Some(t)) => c.explains(t.class),
                    _ => false,
                },
                reason: top
                    .map_or_else(|| "no evidence for any class".into(), |t| t.reason.clone()),
            }
        })
        .collect();
    Verdict {
        class,
        confidence,
        route: if class.is_some() && confidence >= gate {
            Route::Remediation
        } else {
            Route::Review
        },
        breakdown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FaultClass::*;

    fn voter(name: &str, votes: &[(FaultClass, f64)]) -> Voter {
        Voter {
            name: name.into(),
            votes: votes
                .iter()
                .map(|&(c, s)| Vote::new(c, s, format!("{name} saw {c}")))
                .collect(),
        }
    }

    #[test]
    fn independent_witnesses_that_agree_raise_confidence() {
        let one = decide(&[voter("a", &[(CredentialFailure, 0.7)])], 0.6);
        let two = decide(
            &[
                voter("a", &[(CredentialFailure, 0.7)]),
                voter("b", &[(DependencyErrors, 0.5)]),
            ],
            0.6,
        );
        assert_eq!(two.class, Some(CredentialFailure));
        assert!(two.confidence > one.confidence, "{two:?} vs {one:?}");
        assert!(two.breakdown.iter().all(|b| b.agrees));
        assert_eq!(two.route, Route::Remediation);
    }

    #[test]
    fn disagreement_lowers_confidence_and_routes_to_review() {
        let v = decide(
            &[
                voter("a", &[(NetworkLoss, 0.7)]),
                voter("b", &[(BandwidthSaturation, 0.6)]),
            ],
            0.6,
        );
        assert_eq!(v.class, Some(NetworkLoss));
        assert!(v.confidence < 0.6, "{v:?}");
        assert_eq!(v.route, Route::Review);
        assert!(!v.breakdown[1].agrees);
    }

    #[test]
    fn a_specific_cause_beats_the_generic_symptom_it_explains() {
        let v = decide(
            &[
                voter("errno", &[(PermissionDenied, 0.8)]),
                voter("edges", &[(AppErrors, 0.8)]),
            ],
            0.6,
        );
        assert_eq!(v.class, Some(PermissionDenied));
    }

    #[test]
    fn a_queue_on_one_edge_explains_the_delay_on_the_others() {
        // One entity's egress queue: a busy edge sees it fill and drain, a quieter one a
        // steady delay; the detector read the round trips as latency.
        let edges = voter(
            "edges",
            &[(NetworkLatency, 0.65), (BandwidthSaturation, 0.6)],
        );
        let latency = voter("latency", &[(AppLatency, 0.35)]);
        let detector = voter("detector", &[(NetworkLatency, 0.35)]);
        let v = decide(&[edges, latency.clone(), detector.clone()], 0.6);
        assert_eq!(v.class, Some(BandwidthSaturation), "{v:?}");
        assert_eq!(v.route, Route::Remediation);
        // A delay alone, every edge steady, stays a latency.
        let edges = voter("edges", &[(NetworkLatency, 0.65)]);
        let v = decide(&[edges, latency, detector], 0.6);
        assert_eq!(v.class, Some(NetworkLatency), "{v:?}");
    }

    #[test]
    fn the_reclaim_io_around_an_oom_kill_does_not_send_it_to_review() {
        // The kill, and the block IO its cgroup's reclaim slowed.
        let kernel = voter("kernel", &[(OomKill, 0.9)]);
        let latency = voter("latency", &[(IoLatency, 0.55)]);
        let v = decide(&[kernel, latency.clone()], 0.6);
        assert_eq!(v.class, Some(OomKill), "{v:?}");
        assert_eq!(v.route, Route::Remediation, "{v:?}");
        // Slow IO with no memory fault stays an IO fault.
        let v = decide(&[latency], 0.4);
        assert_eq!(v.class, Some(IoLatency), "{v:?}");
    }

    #[test]
    fn no_votes_is_no_class_and_review() {
        let v = decide(&[voter("a", &[])], 0.6);
        assert_eq!(v.class, None);
        assert_eq!(v.route, Route::Review);
        assert_eq!(v.breakdown[0].reason, "no evidence for any class");
    }
}
