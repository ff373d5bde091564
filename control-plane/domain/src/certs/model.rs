//! What an endpoint serves, and when that is a problem.

use std::time::Duration;

use serde::Serialize;

use crate::{entity::EntityId, incident::Severity};

/// The leaf certificate an endpoint served at its last check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServedCertificate {
    /// `ip:port` (or `host:port` when configured so).
    pub endpoint: String,
    /// The entity serving it, as the service graph names it.
    pub server: EntityId,
    pub subject: String,
    pub issuer: String,
    /// Validity end, seconds since the epoch.
    pub not_after_unix: i64,
    pub checked_unix_ns: i64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CertPolicy {
    /// Warn this long before a certificate's end.
    pub warn_before: Duration,
}

impl Default for CertPolicy {
    fn default() -> Self {
        Self {
            warn_before: Duration::from_secs(14 * 86_400),
        }
    }
}

impl ServedCertificate {
    /// Seconds left at `now_unix_ns` (negative once expired).
    pub fn seconds_left(&self, now_unix_ns: i64) -> i64 {
        self.not_after_unix - now_unix_ns.div_euclid(1_000_000_000)
    }

    /// Whether it needs someone: expired (critical) or within the warning (warning).
    pub fn judge(&self, now_unix_ns: i64, policy: &CertPolicy) -> Option<Severity> {
        let left = self.seconds_left(now_unix_ns);
        if left <= 0 {
            Some(Severity::Critical)
        } else if left <= i64::try_from(policy.warn_before.as_secs()).unwrap_or(i64::MAX) {
            Some(Severity::Warning)
        } else {
            None
        }
    }
}

/// `2026-12-12` for a Unix time (proleptic Gregorian, UTC).
pub fn date(unix: i64) -> String {
    // Days to civil date (Howard Hinnant's algorithm).
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(not_after_unix: i64) -> ServedCertificate {
        ServedCertificate {
            endpoint: "10.0.0.1:443".into(),
            server: "cgroup/web".into(),
            subject: "CN=web".into(),
            issuer: "CN=ca".into(),
            not_after_unix,
            checked_unix_ns: 0,
        }
    }

    #[test]
    fn ten_days_left_warns_expired_is_critical_a_year_is_fine() {
        let now = 1_800_000_000i64;
        let p = CertPolicy::default();
        let ns = |s: i64| s * 1_000_000_000;
        assert_eq!(
            cert(now + 10 * 86_400).judge(ns(now), &p),
            Some(Severity::Warning)
        );
        assert_eq!(cert(now - 1).judge(ns(now), &p), Some(Severity::Critical));
        assert_eq!(cert(now + 365 * 86_400).judge(ns(now), &p), None);
    }

    #[test]
    fn dates_read_as_calendar_days() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_800_000_000), "2027-01-15");
        assert_eq!(date(951_782_400), "2000-02-29");
    }
}
