//! Running scenarios against the testbed and scoring what Vigil did.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use super::{
    acting, cases,
    vigil::{service_of, Diagnosed, VigilApi},
    Impact, RunRecord,
};
use crate::{
    error::{LabError, Result},
    scenarios::{self, Params, Scenario},
    state::{now_unix_ms, Records},
    testbed::{
        health::{request, request_url},
        service_ip, Testbed, APP_REPLICAS,
    },
};

/// Latencies and failures of requests made while a fault is in.
#[derive(Default)]
struct Sampler {
    latencies_ms: Vec<f64>,
    failures: u32,
}

impl Sampler {
    fn add(&mut self, result: Option<Duration>) {
        match result {
            Some(d) => self.latencies_ms.push(d.as_secs_f64() * 1e3),
            None => self.failures += 1,
        }
    }

    fn impact(mut self) -> Impact {
        self.latencies_ms.sort_by(f64::total_cmp);
        Impact {
            requests: self.latencies_ms.len() as u32 + self.failures,
            failures: self.failures,
            p50_ms: self.latencies_ms.get(self.latencies_ms.len() / 2).copied(),
            max_ms: self.latencies_ms.last().copied(),
        }
    }
}

/// How long after the fault ends an incident still counts as its detection.
const DETECTION_GRACE: Duration = Duration::from_secs(3);
/// How long the first diagnosis of a claimed incident with none while the fault was live may
/// take to appear.
const DIAGNOSIS_WAIT: Duration = Duration::from_secs(5);
/// How long after its diagnosis remediation may take to decide on an incident (one tick).
const ACTION_WAIT: Duration = Duration::from_secs(3);
/// How long past that a ran action's verification may take to end (the lab's control plane
/// judges an action 8 s after it ran).
const VERIFY_WAIT: Duration = Duration::from_secs(14);
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for Vigil's anomaly incidents and detection's open episodes to resolve
/// before the next fault: correlation folds anomalies into an open episode (an anomaly
/// incident's, or a kernel rule's incident's), so faults too close together would be scored
/// as one.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Runner<'a> {
    pub bed: &'a Testbed,
    pub records: Records,
    pub vigil: Option<VigilApi>,
    pub run_id: String,
    /// `<out>/runs/*.json`, `<out>/cases/*`.
    pub out: PathBuf,
}

impl<'a> Runner<'a> {
    pub fn new(
        bed: &'a Testbed,
        state: &Path,
        vigil: Option<VigilApi>,
        out: &Path,
    ) -> Result<Self> {
        std::fs::create_dir_all(out.join("runs"))
            .map_err(LabError::io(format!("creating {}", out.display())))?;
        Ok(Self {
            bed,
            records: Records::new(state)?,
            vigil,
            run_id: format!("run-{}", now_unix_ms()),
            out: out.to_path_buf(),
        })
    }

    /// Injects, holds for the duration while watching for Vigil's incident, tears down, and
    /// waits until the end-to-end path is healthy again.
    pub fn run(&self, scenario: &dyn Scenario, p: &Params) -> RunRecord {
        let info = scenario.info();
        let injected = now_unix_ms();
        let mut record = RunRecord {
            run_id: self.run_id.clone(),
            scenario: info.name.to_string(),
            class: info.class,
            target: p.target.clone(),
            intensity: p.intensity,
            duration_ms: p.duration.as_millis() as u64,
            injected_unix_ms: injected,
            teardown_unix_ms: 0,
            impact: Impact::default(),
            target_impact: None,
            baseline_ms: self.bed.baseline.as_secs_f64() * 1e3,
            detection: None,
            also: Vec::new(),
            detection_latency_ms: None,
            diagnosed_class: None,
            diagnosis: None,
            classification_correct: false,
            localized: None,
            localization_correct: false,
            expected_action: info.expected_action.to_string(),
            action: None,
            chosen: None,
            remediation_correct: false,
            recovery_ms: None,
            recovered_by_vigil_ms: None,
            error: None,
        };
        let fault = match scenarios::inject(self.bed, &self.records, scenario, p) {
            Ok(f) => f,
            Err(e) => {
                record.error = Some(format!("inject: {e}"));
                return self.finish(record);
            }
        };
        let until = Instant::now() + p.duration;
        let service = p.target.trim_start_matches("vigil-lab-").to_string();
        // The target's own answers: a replica's port, or web's HTTPS (verified against the
        // lab CA, as a real client would).
        let direct = service_ip(&service).ok().and_then(|ip| {
            if APP_REPLICAS.contains(&service.as_str()) {
                Some(format!("http://{ip}:8080/"))
            } else {
                (service == "web").then(|| crate::testbed::health::tls_url(&ip))
            }
        });
        let (mut e2e, mut own) = (Sampler::default(), Sampler::default());
        while Instant::now() < until {
            if record.detection.is_none() {
                record.detection = self
                    .vigil
                    .as_ref()
                    .and_then(|v| v.first_incident_since(injected));
            }
            e2e.add(request(self.bed.client()));
            if let Some(url) = &direct {
                own.add(request_url(self.bed.client(), url));
            }
            std::thread::sleep(Duration::from_millis(150));
        }
        record.impact = e2e.impact();
        record.target_impact = direct.as_ref().map(|_| own.impact());
        // What Vigil concluded while the fault was live: what remediation would act on. After
        // the teardown the window also holds the recovery.
        let live: Vec<(i64, Diagnosed)> = self
            .vigil
            .as_ref()
            .map(|v| {
                v.incidents_between(injected, now_unix_ms())
                    .iter()
                    .filter_map(|d| {
                        v.diagnosis(d.incident_id, Duration::ZERO)
                            .map(|x| (d.incident_id, x))
                    })
                    .collect()
            })
            .unwrap_or_default();
        // Vigil's turn, the fault still in: what it decided and, when its action ran, how
        // long until the target served again.
        let acted = self
            .vigil
            .as_ref()
            .and_then(|v| acting::turn(v, self.bed, injected, direct.as_deref()));
        record.recovered_by_vigil_ms = acted.as_ref().and_then(|a| a.recovered_after_ms);
        record.teardown_unix_ms = now_unix_ms();
        if let Err(e) = fault.teardown(scenario, p) {
            record.error = Some(format!("teardown: {e}"));
        }
        match self.bed.wait_healthy(RECOVERY_TIMEOUT) {
            Ok(took) => record.recovery_ms = Some(took.as_millis() as u64),
            Err(e) => {
                record.error = Some(
                    record
                        .error
                        .take()
                        .map_or(e.to_string(), |x| format!("{x}; {e}")),
                )
            }
        }
        if record.detection.is_none() {
            let grace = Instant::now() + DETECTION_GRACE;
            while record.detection.is_none() && Instant::now() < grace {
                record.detection = self
                    .vigil
                    .as_ref()
                    .and_then(|v| v.first_incident_since(injected));
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        if let Some(d) = &record.detection {
            record.detection_latency_ms = Some(d.opened_unix_ms.saturating_sub(injected));
        }
        // Every incident the fault can claim; the one judged is one diagnosed with confidence
        // (routed to remediation), the most severe first, before any uncertain one; else the
        // first claimed (a supervisor's restart kill is a warning beside the crash loop it
        // starts).
        if let Some(v) = &self.vigil {
            let until = record.teardown_unix_ms + DETECTION_GRACE.as_millis() as u64;
            let mut claimed = v.incidents_between(injected, until.max(now_unix_ms()));
            claimed.sort_by_key(|d| d.opened_unix_ms);
            let mut diagnoses: Vec<Option<Diagnosed>> = claimed
                .iter()
                .map(|d| {
                    live.iter()
                        .find(|(id, _)| *id == d.incident_id)
                        .map(|(_, x)| x.clone())
                        .or_else(|| v.diagnosis(d.incident_id, DIAGNOSIS_WAIT))
                })
                .collect();
            let primary = acting::primary(&claimed, &diagnoses).unwrap_or(0);
            if primary < claimed.len() {
                record.detection = Some(claimed.remove(primary));
                record.diagnosis = diagnoses.remove(primary);
                record.also = claimed;
            }
        }
        if let Some(d) = &record.detection {
            record.diagnosed_class = record.diagnosis.as_ref().and_then(|x| x.class);
            record.classification_correct = record.diagnosed_class == Some(info.class);
            record.localized = service_of(&d.workload_key);
            record.localization_correct = record
                .localized
                .as_deref()
                .is_some_and(|s| scenario.localized_by(p, s));
        }
        if let (Some(v), Some(d)) = (&self.vigil, &record.detection) {
            // Only a diagnosis routed to remediation gets actions proposed.
            let routed = record
                .diagnosis
                .as_ref()
                .is_some_and(|x| x.route == "remediation");
            // What Vigil decided while the fault was in stands, even if a later diagnosis of
            // the incident went to review.
            record.chosen = match &acted {
                Some(a) => Some(a.chosen.clone()),
                None if routed => v.chosen_action(d.incident_id, ACTION_WAIT, VERIFY_WAIT),
                None => None,
            };
            record.action = record.chosen.as_ref().map(|c| c.action.clone());
        }
        record.remediation_correct = record.action.as_deref() == Some(info.expected_action);
        if let Some(v) = &self.vigil {
            let settle = Instant::now() + SETTLE_TIMEOUT;
            while (v.open_anomalies() > 0 || v.open_episodes() > 0) && Instant::now() < settle {
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        // Whatever Vigil changed that outlives the fault (a replica out of web's pool) is
        // put back: every scenario starts from the same testbed.
        if let Err(e) = self.bed.reset_pool() {
            record.error = Some(format!("resetting the testbed: {e}"));
        }
        if let Some(v) = &self.vigil {
            if let Err(e) = cases::write(v, &self.out, &record) {
                tracing::warn!(error = %e, "could not write the replay case");
            }
        }
        self.finish(record)
    }

    fn finish(&self, record: RunRecord) -> RunRecord {
        let path = self
            .out
            .join("runs")
            .join(format!("{}.json", record.scenario));
        match serde_json::to_string_pretty(&record) {
            Ok(text) => {
                if let Err(e) = std::fs::write(&path, text) {
                    tracing::warn!(error = %e, path = %path.display(), "could not write the run record");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not encode the run record"),
        }
        record
    }
}

/// Params from a scenario's defaults, overridden where given.
pub fn params(
    s: &dyn Scenario,
    target: Option<&str>,
    intensity: Option<f64>,
    duration: Option<u64>,
) -> Params {
    let info = s.info();
    Params {
        target: target.unwrap_or(info.default_target).to_string(),
        intensity: intensity.unwrap_or(info.default_intensity),
        duration: duration.map_or(info.default_duration, Duration::from_secs),
    }
}

/// The result of a healthy soak: incidents Vigil opened while nothing was wrong.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Soak {
    pub seconds: u64,
    pub bursts: u32,
    pub false_positive_incidents: Vec<super::Detection>,
    pub actions: u32,
}

/// No fault, bursty load: every incident opened is a false positive.
pub fn soak(bed: &Testbed, vigil: Option<&VigilApi>, seconds: u64) -> Soak {
    let start = now_unix_ms();
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut bursts = 0;
    while Instant::now() < until {
        // A burst: 200 requests as fast as one client goes, then a pause.
        for _ in 0..200 {
            let _ = request(bed.client());
        }
        bursts += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    Soak {
        seconds,
        bursts,
        false_positive_incidents: vigil
            .map(|v| v.incidents_between(start, now_unix_ms()))
            .unwrap_or_default(),
        actions: vigil.map_or(0, |v| v.actions_since(start)),
    }
}
