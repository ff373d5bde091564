//! Reading what Vigil concluded, from its control plane's REST API.

use std::time::Duration;

use serde_json::Value;

use super::Detection;
use crate::{
    error::{LabError, Result},
    scenarios::FaultClass,
};

pub struct VigilApi {
    base: String,
    client: reqwest::blocking::Client,
}

impl VigilApi {
    /// The API at `base`, read with the token `VIGIL_TOKEN` holds or `token_file` names.
    pub fn new(base: &str, token_file: Option<&std::path::Path>) -> Result<Self> {
        let token = match std::env::var("VIGIL_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
        {
            Some(t) => Some(t),
            None => token_file
                .map(|p| {
                    std::fs::read_to_string(p).map_err(LabError::io(format!(
                        "reading the API token file {}",
                        p.display()
                    )))
                })
                .transpose()?,
        };
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", t.trim()))
                .map_err(|_| {
                    LabError::Invalid(
                        "the API token holds characters an HTTP header cannot carry".into(),
                    )
                })?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(5))
                .no_proxy()
                .default_headers(headers)
                .build()
                .map_err(|e| LabError::Invalid(format!("building the HTTP client: {e}")))?,
        })
    }

    /// Whether the control plane takes this client's token: checked before a run, since every
    /// later read treats a refusal like no answer and would score each fault "not detected".
    pub fn check_access(&self) -> Result<()> {
        let url = format!("{}/api/v1/whoami", self.base);
        let r = self.client.get(&url).send().map_err(|e| {
            LabError::Invalid(format!("cannot reach Vigil's API at {}: {e}", self.base))
        })?;
        let status = r.status();
        if status.is_success() {
            return Ok(());
        }
        let answer = r.text().unwrap_or_default();
        Err(LabError::Invalid(format!(
            "Vigil's API at {} refused the lab ({status}: {}): give vigil-lab a viewer token with --token-file, VIGIL_TOKEN_FILE or VIGIL_TOKEN",
            self.base,
            answer.trim()
        )))
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .ok()?
            .json()
            .ok()
    }

    /// The first incident on a lab workload opened at or after `since_unix_ms`.
    pub fn first_incident_since(&self, since_unix_ms: u64) -> Option<Detection> {
        self.incidents_between(since_unix_ms, u64::MAX)
            .into_iter()
            .min_by_key(|d| d.opened_unix_ms)
    }

    /// Open anomaly incidents touching lab workloads (which correlation would extend
    /// rather than open anew).
    /// Episodes detection still holds open: anomalies of the last fault that joined a kernel
    /// rule's incident open no anomaly incident, yet a new fault's symptoms would join them.
    pub fn open_episodes(&self) -> usize {
        self.get("/api/v1/detection")
            .and_then(|d| d["stats"]["open_episodes"].as_u64())
            .map_or(0, |n| n as usize)
    }

    pub fn open_anomalies(&self) -> usize {
        let Some(list) = self.get("/api/v1/incidents?status=open&kind=service_anomaly&limit=1000")
        else {
            return 0;
        };
        list.as_array()
            .into_iter()
            .flatten()
            .filter(|i| {
                i["attributes"]["entities"]
                    .as_object()
                    .is_some_and(|m| m.keys().any(|e| e.contains(crate::names::PREFIX)))
            })
            .count()
    }

    /// Incidents on lab workloads that a fault in [from, to) can claim: opened in it, or
    /// resolved before it and reopened in it (with evidence from that window). An incident
    /// open all along and merely updated is not claimed: that is how one incident used to
    /// swallow every later fault.
    pub fn incidents_between(&self, from_unix_ms: u64, to_unix_ms: u64) -> Vec<Detection> {
        let Some(list) = self.get("/api/v1/incidents?limit=1000") else {
            return Vec::new();
        };
        let window = from_unix_ms..to_unix_ms;
        let ms = |v: &Value| v.as_i64().map(|ns| (ns / 1_000_000) as u64);
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| {
                let first_opened = ms(&i["opened_unix_ns"])?;
                let episode =
                    ms(&i["attributes"]["episode_started_unix_ns"]).unwrap_or(first_opened);
                let key = i["workload_key"].as_str()?.to_string();
                service_of(&key)?;
                let new = window.contains(&first_opened);
                // A reopening's episode starts after the first opening.
                let reopened = !new && episode > first_opened && window.contains(&episode);
                (new || reopened).then(|| Detection {
                    incident_id: i["id"].as_i64().unwrap_or(0),
                    kind: i["kind"].as_str().unwrap_or("").to_string(),
                    workload_key: key,
                    title: i["title"].as_str().unwrap_or("").to_string(),
                    opened_unix_ms: if new { first_opened } else { episode },
                    new,
                    severity: i["severity"].as_str().unwrap_or("").to_string(),
                })
            })
            .collect()
    }
}

/// What Vigil's diagnosis of one incident concluded.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Diagnosed {
    pub class: Option<FaultClass>,
    pub confidence: f64,
    /// `remediation` or `review`.
    pub route: String,
    /// Every vote every evidence tool cast, `tool: class strength — reason`, so a wrong
    /// class can be traced to the witness that swayed it.
    #[serde(default)]
    pub votes: Vec<String>,
}

fn votes_of(d: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for o in d["evidence"].as_array().into_iter().flatten() {
        for v in o["votes"].as_array().into_iter().flatten() {
            out.push(format!(
                "{}: {} {:.2} — {}",
                o["tool"].as_str().unwrap_or("?"),
                v["class"].as_str().unwrap_or("?"),
                v["strength"].as_f64().unwrap_or(0.0),
                v["reason"].as_str().unwrap_or("")
            ));
        }
    }
    for b in d["breakdown"].as_array().into_iter().flatten() {
        if b["voter"]
            .as_str()
            .is_some_and(|v| v.starts_with("detector"))
            && !b["class"].is_null()
        {
            out.push(format!(
                "{}: {} {:.2} — {}",
                b["voter"].as_str().unwrap_or("detector"),
                b["class"].as_str().unwrap_or("?"),
                b["strength"].as_f64().unwrap_or(0.0),
                b["reason"].as_str().unwrap_or("")
            ));
        }
    }
    out
}

impl VigilApi {
    /// The incident's diagnosis, waiting up to `wait` for the first one.
    pub fn diagnosis(&self, incident_id: i64, wait: Duration) -> Option<Diagnosed> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let d = self
                .get(&format!("/api/v1/incidents/{incident_id}"))
                .and_then(|i| i.get("diagnosis").cloned())
                .filter(|d| !d.is_null());
            if let Some(d) = d {
                return Some(Diagnosed {
                    class: d["class"].as_str().and_then(FaultClass::parse),
                    confidence: d["confidence"].as_f64().unwrap_or(0.0),
                    route: d["route"].as_str().unwrap_or("").to_string(),
                    votes: votes_of(&d),
                });
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// The lab's name for a remediation action of Vigil's (`raise_memory_limit` →
/// `raise-memory-limit`), or Vigil's id where the lab has no name for it.
pub fn lab_action(class: &str) -> String {
    match class {
        "restart_process" => "restart-workload",
        "raise_memory_limit" => "raise-memory-limit",
        "change_cpu_quota" => "raise-cpu-limit",
        "rollback" => "rollback-release",
        "remove_replica" => "reroute-traffic",
        "restart_dns" => "restore-dns-record",
        "reapply_credential" => "rotate-credential",
        "restore_file_mode" => "restore-permissions",
        "rotate_log" => "free-disk-space",
        "renew_certificate" => "renew-certificate",
        "raise_bandwidth_limit" => "raise-bandwidth",
        "add_replica" | "scale" => "scale-up",
        other => other,
    }
    .to_string()
}

/// What remediation chose for an incident: its first proposed action and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Chosen {
    /// In the lab's words (`lab_action`).
    pub action: String,
    /// `observed`, `refused`, `pending_approval`, `verifying`, `recovered`, …
    pub state: String,
    /// Why it ended so (a refusing guardrail, the verification).
    #[serde(default)]
    pub outcome: String,
}

impl VigilApi {
    /// The first action remediation decided for the incident, waiting up to `wait` for one
    /// (it is decided on the tick after the diagnosis), and up to `verify` more for a ran
    /// action's verification to end (with `verify` zero, as soon as it is decided).
    pub fn chosen_action(
        &self,
        incident_id: i64,
        wait: Duration,
        verify: Duration,
    ) -> Option<Chosen> {
        use std::time::Instant;
        let deadline = Instant::now() + wait;
        let verified_by = deadline + verify;
        loop {
            let first = self
                .get(&format!("/api/v1/actions?incident={incident_id}"))
                .and_then(|l| l.as_array().and_then(|a| a.first().cloned()));
            let now = Instant::now();
            match first {
                // With no verification wait, the decision itself is the answer.
                Some(a) if verify.is_zero() || a["state"] != "verifying" || now >= verified_by => {
                    return Some(Chosen::of(&a))
                }
                None if now >= deadline => return None,
                _ => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }
}

impl Chosen {
    /// From an action record of the REST API.
    pub fn of(a: &Value) -> Self {
        Self {
            action: lab_action(a["request"]["class"].as_str().unwrap_or("?")),
            state: a["state"].as_str().unwrap_or("?").to_string(),
            outcome: a["outcome"].as_str().unwrap_or("").to_string(),
        }
    }
}

impl VigilApi {
    /// Action records remediation decided at or after `from_unix_ms`, oldest first.
    pub fn actions_decided_since(&self, from_unix_ms: u64) -> Vec<Value> {
        let from_ns = i64::try_from(from_unix_ms).unwrap_or(i64::MAX / 1_000_000) * 1_000_000;
        let mut list: Vec<Value> = self
            .get("/api/v1/actions")
            .and_then(|l| l.as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a["decided_unix_ns"].as_i64().is_some_and(|t| t >= from_ns))
            .collect();
        list.sort_by_key(|a| a["decided_unix_ns"].as_i64());
        list
    }

    /// How many actions remediation decided at or after `from_unix_ms`.
    pub fn actions_since(&self, from_unix_ms: u64) -> u32 {
        self.actions_decided_since(from_unix_ms).len() as u32
    }
}

/// `cgroup/vigil-lab-app1` → `app1`; a replica's data volume,
/// `filesystem/<state>/testbed/app1-data`, → `app1` too (a full disk is its service's).
pub fn service_of(workload_key: &str) -> Option<String> {
    if let Some(rest) = workload_key
        .strip_prefix("filesystem/")
        .and_then(|path| path.rsplit_once("/testbed/"))
        .and_then(|(_, volume)| volume.strip_suffix("-data"))
    {
        return (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string());
    }
    let at = workload_key.find(crate::names::PREFIX)?;
    let rest = &workload_key[at + crate::names::PREFIX.len()..];
    Some(rest.split(['/', '.']).next().unwrap_or(rest).to_string())
}

#[cfg(test)]
mod tests {
    use super::service_of;

    #[test]
    fn incidents_are_claimed_by_the_lab_service_they_concern() {
        assert_eq!(service_of("cgroup/vigil-lab-app1").as_deref(), Some("app1"));
        assert_eq!(
            service_of("filesystem//var/lib/vigil-lab/testbed/app2-data").as_deref(),
            Some("app2"),
            "a replica's data volume is the replica's"
        );
        assert_eq!(service_of("filesystem//var/lib/postgresql"), None);
        assert_eq!(service_of("filesystem//x/testbed/a/b-data"), None);
        assert_eq!(service_of("cgroup/system.slice/cron.service"), None);
    }
}
