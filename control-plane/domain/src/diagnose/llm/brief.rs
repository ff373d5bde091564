//! What the model is told: the taxonomy, the incident, the evidence the tools found (ranked,
//! deduplicated, cut to a token budget with a note saying so) and the documents it may cite.

use std::{collections::BTreeSet, fmt::Write};

use super::answer;
use crate::{
    diagnose::{model::Diagnosis, taxonomy::FaultClass, tool::Scope},
    incident::Incident,
};

/// A rough token count: about four characters a token in English and JSON.
pub fn tokens(text: &str) -> usize {
    text.len().div_ceil(4)
}

/// The instructions: the same for every incident.
pub fn system_prompt() -> String {
    let mut s = String::from(
        "You review Vigil's diagnosis of a production incident. Vigil's kernel probes and \
         evidence tools found the facts below; you may call the read-only tools to look \
         further (another entity, another window). Do not call a tool twice with the same \
         arguments. Name exactly one fault class from this taxonomy, or null if the evidence \
         names none:\n",
    );
    for c in FaultClass::ALL {
        let _ = writeln!(s, "- {}: {}", c.id(), c.about());
    }
    let _ = write!(
        s,
        "Cite only document ids listed under Documents. When you are done, reply with only a \
         JSON object (no prose around it) matching this schema:\n{}",
        answer::schema()
    );
    s
}

/// One line of evidence with how much it says, for ranking.
struct Line {
    weight: f64,
    text: String,
}

/// The incident and what the tools found, at most `budget` tokens.
pub fn brief(incident: &Incident, scope: &Scope, d: &Diagnosis, budget: usize) -> String {
    let mut head = String::new();
    let _ = writeln!(
        head,
        "Incident #{} ({}, {}): {}\n{}\nEntity: {}; window {}..{} (Unix ns).",
        incident.id,
        incident.kind.as_str(),
        incident.severity.as_str(),
        incident.title,
        incident.summary,
        scope.entity,
        scope.from_unix_ns,
        scope.to_unix_ns
    );
    let _ = writeln!(
        head,
        "Evidence diagnosis: {} (confidence {:.2}, gate {:.2}).",
        d.class.map_or("none", FaultClass::id),
        d.confidence,
        d.gate
    );
    head.push_str("Votes:\n");
    for b in &d.breakdown {
        if let Some(c) = b.class {
            let _ = writeln!(
                head,
                "- {} votes {} ({:.2}): {}",
                b.voter,
                c.id(),
                b.strength,
                b.reason
            );
        }
    }
    head.push_str("Documents (cite by id):\n");
    for c in &d.citations {
        let _ = writeln!(head, "- {} [{}]: {}", c.id, c.kind, c.title);
    }
    if d.citations.is_empty() {
        head.push_str("- none\n");
    }

    // Observations across tools, the most telling first, each said once.
    let mut lines: Vec<Line> = Vec::new();
    let mut seen = BTreeSet::new();
    for o in &d.evidence {
        for ob in &o.observations {
            let text = format!(
                "- [{}] {}: {}{} {}{}",
                o.tool,
                ob.what,
                ob.value,
                ob.before
                    .map_or(String::new(), |b| format!(" (before {b})")),
                ob.unit,
                if ob.detail.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", ob.detail)
                }
            );
            if seen.insert(format!("{}|{}|{}", ob.what, ob.value, ob.detail)) {
                lines.push(Line {
                    weight: ob.weight,
                    text,
                });
            }
        }
    }
    lines.sort_by(|a, b| b.weight.total_cmp(&a.weight));
    let mut out = head;
    out.push_str("Observations (most telling first):\n");
    let total = lines.len();
    let mut kept = 0;
    for l in lines {
        if tokens(&out) + tokens(&l.text) + 16 > budget {
            break;
        }
        out.push_str(&l.text);
        out.push('\n');
        kept += 1;
    }
    if kept < total {
        let _ = writeln!(
            out,
            "({} of {} observations left out to fit {} tokens; call the tools for more.)",
            total - kept,
            total,
            budget
        );
    }
    out
}
