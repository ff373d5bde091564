//! The summary of a lab run: a table per scenario and totals, as JSON, Markdown and an HTML
//! report with charts (plotters, SVG inline).

use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use super::{runner::Soak, RunRecord};
use crate::error::{LabError, Result};

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub runs: usize,
    pub injected: usize,
    pub detected: usize,
    pub classification_accuracy: f64,
    /// Runs whose diagnosis went to review (below the confidence gate).
    pub routed_to_review: usize,
    /// Runs diagnosed wrongly yet confidently (routed to remediation): the ones that matter.
    pub wrong_and_confident: usize,
    pub localization_accuracy: f64,
    pub remediation_accuracy: f64,
    pub detection_p50_ms: Option<u64>,
    pub detection_p99_ms: Option<u64>,
    pub recovery_p50_ms: Option<u64>,
    pub recovery_p99_ms: Option<u64>,
    pub recovered: usize,
    /// Runs where Vigil's own action ran (autonomous, or approved), by how its verification
    /// ended.
    pub vigil_acted: usize,
    pub vigil_recovered: usize,
    pub vigil_escalated: usize,
    pub vigil_rolled_back: usize,
    /// Runs where the target served again after Vigil's action with the fault still in,
    /// and the time from injection to that, p50.
    pub recovered_by_vigil: usize,
    pub recovered_by_vigil_p50_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub run_id: String,
    pub runs: Vec<RunRecord>,
    pub totals: Totals,
    pub soak: Option<Soak>,
}

fn quantile(mut v: Vec<u64>, q: f64) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    Some(v[i])
}

fn share(n: usize, d: usize) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

fn confident(r: &RunRecord) -> bool {
    r.diagnosis
        .as_ref()
        .is_some_and(|d| d.route == "remediation")
}

/// Runs whose chosen action ended in one of `states`.
fn acted(runs: &[RunRecord], states: &[&str]) -> usize {
    runs.iter()
        .filter(|r| {
            r.chosen
                .as_ref()
                .is_some_and(|c| states.contains(&c.state.as_str()))
        })
        .count()
}

pub fn summarize(run_id: &str, runs: Vec<RunRecord>, soak: Option<Soak>) -> Summary {
    let n = runs.len();
    let detections: Vec<u64> = runs.iter().filter_map(|r| r.detection_latency_ms).collect();
    let recoveries: Vec<u64> = runs.iter().filter_map(|r| r.recovery_ms).collect();
    let by_vigil: Vec<u64> = runs
        .iter()
        .filter_map(|r| r.recovered_by_vigil_ms)
        .collect();
    let totals = Totals {
        runs: n,
        injected: runs
            .iter()
            .filter(|r| r.error.as_deref().is_none_or(|e| !e.starts_with("inject")))
            .count(),
        detected: detections.len(),
        classification_accuracy: share(runs.iter().filter(|r| r.classification_correct).count(), n),
        routed_to_review: runs.iter().filter(|r| !confident(r)).count(),
        wrong_and_confident: runs
            .iter()
            .filter(|r| !r.classification_correct && confident(r))
            .count(),
        localization_accuracy: share(runs.iter().filter(|r| r.localization_correct).count(), n),
        remediation_accuracy: share(runs.iter().filter(|r| r.remediation_correct).count(), n),
        detection_p50_ms: quantile(detections.clone(), 0.5),
        detection_p99_ms: quantile(detections, 0.99),
        recovery_p50_ms: quantile(recoveries.clone(), 0.5),
        recovery_p99_ms: quantile(recoveries.clone(), 0.99),
        recovered: recoveries.len(),
        vigil_acted: acted(
            &runs,
            &["recovered", "escalated", "rolled_back", "verifying"],
        ),
        vigil_recovered: acted(&runs, &["recovered"]),
        vigil_escalated: acted(&runs, &["escalated"]),
        vigil_rolled_back: acted(&runs, &["rolled_back"]),
        recovered_by_vigil: by_vigil.len(),
        recovered_by_vigil_p50_ms: quantile(by_vigil, 0.5),
    };
    Summary {
        run_id: run_id.to_string(),
        runs,
        totals,
        soak,
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or("–".into(), |x| x.to_string())
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

const COLUMNS: [&str; 12] = [
    "scenario",
    "target",
    "end to end: failed/requests, p50 ms",
    "target: failed/requests, p50 ms",
    "detected (ms)",
    "incident",
    "class ok",
    "target ok",
    "action ok",
    "recovered by Vigil (ms from injection, fault in)",
    "recovery after teardown (ms)",
    "error",
];

/// Whether the class is right, and what the diagnosis said: class, confidence, route.
fn class_cell(r: &RunRecord) -> String {
    match &r.diagnosis {
        Some(d) => format!(
            "{} ({}, {:.2}, {})",
            yes(r.classification_correct),
            d.class.map_or("none", |c| c.id()),
            d.confidence,
            d.route
        ),
        None => format!("{} (no diagnosis)", yes(r.classification_correct)),
    }
}

/// Whether the action Vigil chose was the expected one, the action and what became of it.
fn action_cell(r: &RunRecord) -> String {
    match &r.chosen {
        Some(c) => format!("{} ({}, {})", yes(r.remediation_correct), c.action, c.state),
        None => format!("{} (none proposed)", yes(r.remediation_correct)),
    }
}

/// One run's row, in `COLUMNS` order; the Markdown and HTML tables both show it.
fn cells(r: &RunRecord) -> [String; 12] {
    let impact = |i: &super::Impact| {
        let p50 = i.p50_ms.map_or("–".into(), |v| format!("{v:.0}"));
        format!("{}/{}, {p50}", i.failures, i.requests)
    };
    [
        r.scenario.clone(),
        r.target.clone(),
        impact(&r.impact),
        r.target_impact.as_ref().map_or("–".into(), impact),
        opt(r.detection_latency_ms),
        r.detection.as_ref().map_or("–".into(), |d| {
            let how = if d.new { "new" } else { "reopened" };
            let also = r
                .also
                .iter()
                .map(|a| format!("#{}", a.incident_id))
                .collect::<Vec<_>>();
            let also = if also.is_empty() {
                String::new()
            } else {
                format!(" (also {})", also.join(", "))
            };
            format!("#{} {how}: {}{also}", d.incident_id, d.kind)
        }),
        class_cell(r),
        yes(r.localization_correct).into(),
        action_cell(r),
        opt(r.recovered_by_vigil_ms),
        opt(r.recovery_ms),
        r.error.clone().unwrap_or_default(),
    ]
}

/// The per-scenario table in Markdown.
pub fn markdown(s: &Summary) -> String {
    let mut md = format!(
        "| {} |\n|{}\n",
        COLUMNS.join(" | "),
        "---|".repeat(COLUMNS.len())
    );
    for r in &s.runs {
        let row: Vec<String> = cells(r).iter().map(|c| c.replace('|', "/")).collect();
        md.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    let t = &s.totals;
    md.push_str(&format!(
        "\n**Totals**: {} runs, {} injected, {} detected; classification {:.0} % ({} routed to review, {} wrong with confidence), localization {:.0} %, remediation {:.0} %; detection p50 {} ms, p99 {} ms; recovered {}/{} (p50 {} ms, p99 {} ms).\n",
        t.runs, t.injected, t.detected,
        100.0 * t.classification_accuracy, t.routed_to_review, t.wrong_and_confident, 100.0 * t.localization_accuracy, 100.0 * t.remediation_accuracy,
        opt(t.detection_p50_ms), opt(t.detection_p99_ms), t.recovered, t.runs, opt(t.recovery_p50_ms), opt(t.recovery_p99_ms),
    ));
    md.push_str(&format!(
        "\n**Vigil acting**: its own action ran in {} runs; its verifier judged {} recovered, {} unchanged (escalated), {} worse (rolled back). The target served again after Vigil's action, the fault still in, in {} runs (p50 {} ms from injection).\n",
        t.vigil_acted, t.vigil_recovered, t.vigil_escalated, t.vigil_rolled_back, t.recovered_by_vigil, opt(t.recovered_by_vigil_p50_ms),
    ));
    if let Some(soak) = &s.soak {
        md.push_str(&format!(
            "\n**Healthy soak**: {} s, {} load bursts, {} false-positive incidents, {} actions.\n",
            soak.seconds,
            soak.bursts,
            soak.false_positive_incidents.len(),
            soak.actions
        ));
    }
    md
}

/// A horizontal bar chart of one value per scenario, as SVG.
fn bars(title: &str, unit: &str, values: &[(String, Option<u64>)]) -> Result<String> {
    let mut svg = String::new();
    {
        let height = 60 + 22 * values.len() as u32;
        let root = SVGBackend::with_string(&mut svg, (760, height)).into_drawing_area();
        let fail = |e: String| LabError::Invalid(format!("drawing {title}: {e}"));
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        let max = values
            .iter()
            .filter_map(|(_, v)| *v)
            .max()
            .unwrap_or(1)
            .max(1) as f64
            * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{title} ({unit})"), ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(25)
            .y_label_area_size(170)
            .build_cartesian_2d(0f64..max, (0..values.len()).into_segmented())
            .map_err(|e| fail(e.to_string()))?;
        let labels: Vec<String> = values.iter().map(|(n, _)| n.clone()).collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(values.len())
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(|e| fail(e.to_string()))?;
        chart
            .draw_series(values.iter().enumerate().filter_map(|(i, (_, v))| {
                let v = (*v)? as f64;
                Some(Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(i)),
                        (v, SegmentValue::Exact(i + 1)),
                    ],
                    BLUE.mix(0.6).filled(),
                ))
            }))
            .map_err(|e| fail(e.to_string()))?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    Ok(svg)
}

fn html(s: &Summary) -> Result<String> {
    let detection: Vec<(String, Option<u64>)> = s
        .runs
        .iter()
        .map(|r| (r.scenario.clone(), r.detection_latency_ms))
        .collect();
    let recovery: Vec<(String, Option<u64>)> = s
        .runs
        .iter()
        .map(|r| (r.scenario.clone(), r.recovery_ms))
        .collect();
    let escape = |c: &str| c.replace('&', "&amp;").replace('<', "&lt;");
    let table: String = s
        .runs
        .iter()
        .map(|r| {
            let row: String = cells(r)
                .iter()
                .map(|c| format!("<td>{}</td>", escape(c)))
                .collect();
            format!("<tr>{row}</tr>")
        })
        .collect();
    let header: String = COLUMNS.iter().map(|c| format!("<th>{c}</th>")).collect();
    let t = &s.totals;
    Ok(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Vigil fault lab — {id}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}</style></head><body>\
         <h1>Vigil fault lab</h1><p>run {id}: {runs} scenarios, {det} detected; classification {ca:.0}%, localization {la:.0}%, remediation {ra:.0}%; \
         detection p50 {d50} ms, p99 {d99} ms; recovery p50 {r50} ms, p99 {r99} ms.</p>\
         <table><tr>{header}</tr>{table}</table>\
         <h2>Detection latency</h2>{c1}<h2>Recovery time</h2>{c2}</body></html>",
        id = s.run_id,
        runs = t.runs,
        det = t.detected,
        ca = 100.0 * t.classification_accuracy,
        la = 100.0 * t.localization_accuracy,
        ra = 100.0 * t.remediation_accuracy,
        d50 = opt(t.detection_p50_ms),
        d99 = opt(t.detection_p99_ms),
        r50 = opt(t.recovery_p50_ms),
        r99 = opt(t.recovery_p99_ms),
        c1 = bars("Fault start → incident", "ms", &detection)?,
        c2 = bars("Teardown → healthy end to end", "ms", &recovery)?,
    ))
}

/// Writes summary.json, summary.md and report.html into `out`.
pub fn write(out: &Path, s: &Summary) -> Result<()> {
    let put = |name: &str, text: &str| {
        std::fs::write(out.join(name), text).map_err(LabError::io(format!(
            "writing {}",
            out.join(name).display()
        )))
    };
    put(
        "summary.json",
        &serde_json::to_string_pretty(s).map_err(|e| LabError::Invalid(e.to_string()))?,
    )?;
    put("summary.md", &markdown(s))?;
    put("report.html", &html(s)?)
}
