//! Reading what Vigil concluded, from its control plane's REST API.

use std::time::Duration;

use serde_json::Value;

use super::Detection;
use crate::scenarios::FaultClass;

pub struct VigilApi {
    base: String,
    client: reqwest::blocking::Client,
}

impl VigilApi {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(5))
                .no_proxy()
                .build()
                .unwrap_or_else(|_| reqwest::blocking::Client::new()),
        }
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

    /// Incidents on lab workloads opened in [from, to).
    pub fn incidents_between(&self, from_unix_ms: u64, to_unix_ms: u64) -> Vec<Detection> {
        let Some(list) = self.get("/api/v1/incidents?limit=1000") else {
            return Vec::new();
        };
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| {
                // A recurring anomaly reopens its incident: that counts from the reopening.
                let opened_ns = i["attributes"]["episode_started_unix_ns"]
                    .as_i64()
                    .or_else(|| i["opened_unix_ns"].as_i64())?;
                let opened_ms = (opened_ns / 1_000_000) as u64;
                let key = i["workload_key"].as_str()?.to_string();
                let in_lab = key.contains(crate::names::PREFIX);
                (in_lab && (from_unix_ms..to_unix_ms).contains(&opened_ms)).then(|| Detection {
                    incident_id: i["id"].as_i64().unwrap_or(0),
                    kind: i["kind"].as_str().unwrap_or("").to_string(),
                    workload_key: key,
                    title: i["title"].as_str().unwrap_or("").to_string(),
                    opened_unix_ms: opened_ms,
                })
            })
            .collect()
    }
}

/// The fault class an incident kind names (only the kinds Vigil can open today).
pub fn class_of(kind: &str) -> Option<FaultClass> {
    match kind {
        "oom_kill" => Some(FaultClass::Oom),
        "crash_loop" => Some(FaultClass::CrashLoop),
        _ => None,
    }
}

/// `cgroup/vigil-lab-app1` → `app1`.
pub fn service_of(workload_key: &str) -> Option<String> {
    let at = workload_key.find(crate::names::PREFIX)?;
    let rest = &workload_key[at + crate::names::PREFIX.len()..];
    Some(rest.split(['/', '.']).next().unwrap_or(rest).to_string())
}
