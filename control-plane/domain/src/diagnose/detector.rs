//! The detector's voice: what the rule or the baseline that opened the incident saw, as one
//! voter beside the tools. Kernel-event rules whose events the tools read again (OOM kill,
//! crash loop, exec failure, a kill) do not vote here, so one event is not counted twice.

use super::{taxonomy::FaultClass, tool::Vote, votes::Voter};
use crate::incident::{Details, Incident};

/// The class a symptom's feature points at, and how specifically. A feature with more than
/// one cause casts no vote here: EACCES/EPERM counts a file or capability refused and, on
/// packet sends, a firewall dropping them (netfilter returns EPERM to the sender), so
/// `errno_profile`, which reads the errno per syscall, names which one it was.
fn feature_class(feature: &str, on_edge: bool) -> Option<(FaultClass, f64)> {
    Some(match feature {
        "retransmits_per_s" => (FaultClass::NetworkLoss, 0.35),
        "rtt_us" => (FaultClass::NetworkLatency, 0.35),
        "dns_failures_per_s" => (FaultClass::DnsFailure, 0.5),
        "syscall_errors_space_per_s" => (FaultClass::DiskFull, 0.5),
        "connect_failures_per_s" | "resets_per_s" | "resets_received_per_s" => {
            (FaultClass::DependencyDown, 0.35)
        }
        "error_ratio" if on_edge => (FaultClass::DependencyErrors, 0.35),
        "error_ratio" | "client_error_ratio" => (FaultClass::AppErrors, 0.3),
        "request_p99_us" | "syscall_p99_us" | "stuck_requests" => (FaultClass::AppLatency, 0.3),
        "block_io_p99_us" => (FaultClass::IoLatency, 0.4),
        "throttled_ratio" => (FaultClass::CpuThrottling, 0.5),
        "memory_limit_ratio" => (FaultClass::MemoryPressure, 0.5),
        _ => return None,
    })
}

pub fn voter(incident: &Incident) -> Voter {
    let rule = |class, strength, why: &str| vec![Vote::new(class, strength, why)];
    let votes = match incident.details() {
        Details::CertificateExpiry(c) => rule(
            FaultClass::CertificateExpiry,
            0.9,
            &format!(
                "{} serves a certificate with {:.1} days left",
                c.endpoint, c.days_left
            ),
        ),
        Details::MemoryPressure(p) => rule(
            FaultClass::MemoryPressure,
            0.7,
            &format!(
                "{} at {:.2} of its limit for {} s",
                p.measure, p.value, p.held_secs
            ),
        ),
        Details::CpuThrottling(p) => rule(
            FaultClass::CpuThrottling,
            0.7,
            &format!("{} at {:.2} for {} s", p.measure, p.value, p.held_secs),
        ),
        Details::DiskPressure(p) => rule(
            FaultClass::DiskFull,
            0.7,
            &format!("{} at {:.2} (limit {:.2})", p.measure, p.value, p.threshold),
        ),
        Details::ServiceAnomaly(a) => {
            let mut votes: Vec<Vote> = Vec::new();
            for s in &a.symptoms {
                let on_edge = s.entity.to_string().contains("->");
                let Some((class, strength)) = feature_class(&s.feature, on_edge) else {
                    continue;
                };
                if votes.iter().any(|v| v.class == class) {
                    continue;
                }
                votes.push(Vote::new(
                    class,
                    strength,
                    format!(
                        "{} {} {:.3} → {:.3} (+{:.0}σ)",
                        s.entity, s.feature, s.from, s.to, s.z
                    ),
                ));
            }
            votes
        }
        // Re-read by `kernel_events` and `process_exits`, or raised elsewhere.
        Details::OomKill(_)
        | Details::CrashLoop(_)
        | Details::ExecFailure(_)
        | Details::ProcessKilled(_)
        | Details::Alert(_) => Vec::new(),
    };
    Voter {
        name: format!("detector ({})", incident.kind.as_str()),
        votes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feature_with_two_causes_is_left_to_the_tool_that_tells_them_apart() {
        // Netfilter's drops and a chmod both count as permission errors in the detector.
        assert_eq!(
            feature_class("syscall_errors_permission_per_s", false),
            None
        );
        assert_eq!(
            feature_class("syscall_errors_space_per_s", false).map(|(c, _)| c),
            Some(FaultClass::DiskFull)
        );
        assert_eq!(
            feature_class("error_ratio", true).map(|(c, _)| c),
            Some(FaultClass::DependencyErrors)
        );
    }
}
