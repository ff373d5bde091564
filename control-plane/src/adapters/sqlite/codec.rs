//! How the SQLite store writes domain values it never filters on: incident attributes and
//! detection baselines, as JSON. Decoding is by the row's own kind, and a value that does not
//! decode is an error for the caller to surface, never a default.

use serde::{de::DeserializeOwned, Deserialize};

use super::errors::{corrupt, json_err};
use crate::domain::{
    detection::baseline::EntityBaseline,
    entity::Subject,
    incident::{Attributes, Details, IncidentKind, Stage},
    store::StoreError,
};

/// An incident's attributes as stored: the details' fields and `stages`, in one object.
#[derive(Deserialize)]
struct Stored<T> {
    #[serde(flatten)]
    details: T,
    #[serde(default)]
    stages: Vec<Stage>,
}

fn stored<T: DeserializeOwned>(
    text: &str,
    details: fn(T) -> Details,
) -> Result<Attributes, serde_json::Error> {
    let s: Stored<T> = serde_json::from_str(text)?;
    Ok(Attributes {
        details: details(s.details),
        stages: s.stages,
    })
}

pub fn encode_attributes(attributes: &Attributes) -> Result<String, StoreError> {
    serde_json::to_string(attributes).map_err(json_err("encoding incident attributes"))
}

/// Reads attributes written by `encode_attributes` for an incident of `kind`.
pub fn decode_attributes(kind: IncidentKind, text: &str) -> Result<Attributes, serde_json::Error> {
    match kind {
        IncidentKind::OomKill => stored(text, Details::OomKill),
        IncidentKind::CrashLoop => stored(text, Details::CrashLoop),
        IncidentKind::ServiceAnomaly => stored(text, Details::ServiceAnomaly),
        IncidentKind::Alert => stored(text, Details::Alert),
        IncidentKind::MemoryPressure => stored(text, Details::MemoryPressure),
        IncidentKind::CpuThrottling => stored(text, Details::CpuThrottling),
        IncidentKind::ProcessKilled => stored(text, Details::ProcessKilled),
        IncidentKind::CertificateExpiry => stored(text, Details::CertificateExpiry),
        IncidentKind::ExecFailure => stored(text, Details::ExecFailure),
        IncidentKind::DiskPressure => stored(text, Details::DiskPressure),
    }
}

/// Detection baselines keyed by their subject, state as JSON.
pub struct BaselineCodec;

impl BaselineCodec {
    pub fn encode(subject: &Subject, b: &EntityBaseline) -> Result<(String, String), StoreError> {
        let state = serde_json::to_string(b).map_err(json_err("encoding a detection baseline"))?;
        Ok((subject.to_string(), state))
    }

    pub fn decode(key: &str, state: &str) -> Result<(Subject, EntityBaseline), StoreError> {
        let b: EntityBaseline =
            serde_json::from_str(state).map_err(|e| corrupt("baseline", key, e))?;
        let subject = Subject::parse(b.class, key).ok_or_else(|| {
            corrupt(
                "baseline",
                key,
                format!("the key is not a {} id", b.class.as_str()),
            )
        })?;
        Ok((subject, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        incident::{details::CrashLoopDetails, IncidentKind},
        synthetic::{kernel_event, workload},
    };

    #[test]
    fn attributes_round_trip_by_kind_in_the_shape_the_api_shows() {
        let exit = kernel_event(
            1,
            0,
            "cgroup/app",
            crate::domain::event::EventKind::ProcessExit {
                exit_code: Some(3),
                signal: None,
                lifetime_ms: Some(40),
                killed_by: None,
            },
        );
        let a = Attributes {
            details: Details::CrashLoop(CrashLoopDetails {
                restarts_in_window: 3,
                window_secs: 60,
                last_exit: exit.kind.clone(),
                last_pid: 9,
                comm: "app".into(),
                workload: workload("cgroup/app"),
                first_exit_unix_ns: Some(-20),
            }),
            stages: vec![Stage::new("detect", 1, 2).with("rule", "crash_loop")],
        };
        let text = encode_attributes(&a).expect("encode");
        let json = serde_json::to_value(&a).expect("json");
        assert_eq!(json["restarts_in_window"], 3);
        assert_eq!(json["stages"][0]["attributes"]["rule"], "crash_loop");
        let back = decode_attributes(IncidentKind::CrashLoop, &text).expect("decode");
        assert_eq!(back, a);
        assert!(
            decode_attributes(IncidentKind::OomKill, &text).is_err(),
            "a crash loop's attributes are not an OOM kill's"
        );
    }
}
