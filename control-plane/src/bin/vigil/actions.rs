//! `vigil actions`, `vigil approve`, `vigil deny`: remediation's proposals and an approver's
//! word on them; `vigil actions --record`: each action class's verified record.

use anyhow::Context as _;
use serde_json::{json, Value};

use super::Api;

fn line(a: &Value) -> String {
    format!(
        "{:>5}  #{:<5} {:<20} {:<28} {:<16} {}",
        a["id"],
        a["request"]["incident"],
        a["request"]["class"].as_str().unwrap_or("?"),
        a["request"]["target"].as_str().unwrap_or("?"),
        a["state"].as_str().unwrap_or("?"),
        a["outcome"].as_str().unwrap_or("")
    )
}

pub async fn list(api: &Api, incident: Option<i64>, json_out: bool) -> anyhow::Result<()> {
    let q: Vec<(&str, String)> = incident
        .map(|i| ("incident", i.to_string()))
        .into_iter()
        .collect();
    let list = api.get("/api/v1/actions", &q).await?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    let items = list.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("no actions");
    }
    for a in &items {
        println!("{}", line(a));
    }
    Ok(())
}

/// `vigil actions --record`: one line per action class.
pub async fn record(api: &Api, json_out: bool) -> anyhow::Result<()> {
    let list = api.get("/api/v1/actions/record", &[]).await?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!(
        "{:<20} {:<11} {:>7} {:>5} {:>9} {:>9} {:>11} {:>6} {:>8}",
        "class",
        "phase",
        "decided",
        "ran",
        "recovered",
        "escalated",
        "rolled back",
        "failed",
        "success"
    );
    for c in list.as_array().into_iter().flatten() {
        let n = |k: &str| c[k].as_u64().unwrap_or(0);
        let success = c["success_rate"]
            .as_f64()
            .map_or("–".to_string(), |r| format!("{:.0} %", 100.0 * r));
        println!(
            "{:<20} {:<11} {:>7} {:>5} {:>9} {:>9} {:>11} {:>6} {:>8}",
            c["class"].as_str().unwrap_or("?"),
            c["phase"].as_str().unwrap_or("?"),
            n("decided"),
            n("ran"),
            n("recovered"),
            n("escalated"),
            n("rolled_back"),
            n("failed"),
            success
        );
    }
    Ok(())
}

pub async fn judge(
    api: &Api,
    (incident, action): (i64, i64),
    reason: Option<String>,
    approve: bool,
    json_out: bool,
) -> anyhow::Result<()> {
    let verb = if approve { "approve" } else { "deny" };
    let a = api
        .post(
            &format!("/api/v1/incidents/{incident}/actions/{action}/{verb}"),
            &json!({ "reason": reason }),
        )
        .await
        .with_context(|| format!("{verb} action {action} of incident {incident}"))?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&a)?);
    } else {
        println!("{}", line(&a));
    }
    Ok(())
}
