//! The draft a resolved incident leaves in the corpus: timeline, evidence, diagnosis, actions,
//! outcome, in markdown with the front matter retrieval filters on. A person edits it; Vigil
//! writes it once more only if the incident resolves again.

use std::fmt::Write as _;

use super::model::{DocKind, Document};
use crate::{
    certs::model::date,
    diagnose::Diagnosis,
    incident::{Incident, IncidentId},
};

/// Observations per tool in the draft: the most telling.
const OBSERVATIONS: usize = 3;

pub fn id_of(incident: IncidentId) -> String {
    format!("postmortem-incident-{incident}")
}

/// `YYYY-MM-DD` and `HH:MM:SS` (UTC) of a Unix time.
fn civil(unix_ns: i64) -> (String, String) {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let rem = secs.rem_euclid(86_400);
    (
        date(secs),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

fn at(unix_ns: i64) -> String {
    let (d, t) = civil(unix_ns);
    format!("{d} {t} UTC")
}

pub fn draft(incident: &Incident, d: &Diagnosis) -> Document {
    let entity = d.evidence.first().map_or_else(
        || incident.workload_key.to_string(),
        |o| o.entity.to_string(),
    );
    let resolved = incident
        .resolved_unix_ns
        .unwrap_or(incident.updated_unix_ns);
    let class = d.class.map_or("unclassified", |c| c.id());
    let mut body = String::new();
    let _ = writeln!(body, "# {}\n", incident.title);
    let _ = writeln!(
        body,
        "Draft written by Vigil when incident {} resolved. Edit it: what you add is what the next on-call reads.\n",
        incident.id
    );
    let _ = writeln!(body, "## Summary\n\n{}\n", d.explanation);
    let _ = writeln!(body, "## Timeline\n");
    let _ = writeln!(
        body,
        "- {}: opened ({}, {})",
        at(incident.opened_unix_ns),
        incident.kind.as_str(),
        incident.severity.as_str()
    );
    let _ = writeln!(
        body,
        "- {}: last seen, after {} occurrence(s)",
        at(incident.updated_unix_ns),
        incident.occurrences
    );
    let _ = writeln!(
        body,
        "- {}: diagnosed {class} at confidence {:.2} ({})",
        at(d.diagnosed_unix_ns),
        d.confidence,
        d.route.as_str()
    );
    let _ = writeln!(body, "- {}: resolved\n", at(resolved));
    let _ = writeln!(body, "## Evidence\n");
    for o in d
        .evidence
        .iter()
        .filter(|o| !o.votes.is_empty() || o.observations.iter().any(|x| x.weight > 0.0))
    {
        let _ = writeln!(body, "- **{}**: {}", o.tool, o.summary);
        for x in o.observations.iter().take(OBSERVATIONS) {
            let before = x
                .before
                .map_or(String::new(), |b| format!(" (before {b:.2})"));
            let _ = writeln!(
                body,
                "  - {}: {:.2} {}{before} {}",
                x.what, x.value, x.unit, x.detail
            );
        }
    }
    let _ = writeln!(body, "\n## Diagnosis\n");
    for b in &d.breakdown {
        let vote = b.class.map_or("no vote", |c| c.id());
        let _ = writeln!(
            body,
            "- {}: {vote} {:.2} ({}) — {}",
            b.voter,
            b.strength,
            if b.agrees { "agrees" } else { "disagrees" },
            b.reason
        );
    }
    let _ = writeln!(body, "\n## Actions\n");
    if d.recommended_actions.is_empty() {
        let _ = writeln!(body, "- none recommended");
    }
    for a in &d.recommended_actions {
        let _ = writeln!(body, "- recommended: {a}");
    }
    let _ = writeln!(body, "\n## Outcome\n");
    let _ = writeln!(
        body,
        "Resolved {:.0} s after it opened.",
        (resolved - incident.opened_unix_ns).max(0) as f64 / 1e9
    );
    Document {
        id: id_of(incident.id),
        kind: DocKind::Postmortem,
        title: format!("Postmortem draft: {}", incident.title),
        classes: d.class.into_iter().collect(),
        services: vec![entity],
        severity: Some(incident.severity.as_str().to_string()),
        date: Some(civil(resolved).0),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::civil;

    #[test]
    fn unix_times_become_utc_dates() {
        assert_eq!(civil(0), ("1970-01-01".into(), "00:00:00".into()));
        // 2024-02-29 12:34:56 UTC, a leap day.
        assert_eq!(
            civil(1_709_210_096_000_000_000),
            ("2024-02-29".into(), "12:34:56".into())
        );
        assert_eq!(
            civil(-1_000_000_000),
            ("1969-12-31".into(), "23:59:59".into())
        );
    }
}
