//! A real control plane on loopback ports whose store already holds OOM kills' incidents
//! (ids from 1, ingested as the agent's stream would bring them), diagnosed before `start`
//! returns.

use std::{sync::Arc, time::Duration};

use serde_json::Value;

use super::running::Running;

use control_plane::{
    adapters::sqlite::SqliteStore,
    config::ControlPlaneConfig,
    domain::{
        clock::{Clock, SystemClock},
        ingest::Batch,
        synthetic::oom_kill,
    },
};

pub const APP: &str = "cgroup/app";

pub struct Plane {
    running: Running,
    dir: tempfile::TempDir,
}

impl Plane {
    /// One OOM kill, of `APP`: incident 1.
    pub async fn start() -> Self {
        Self::start_with(&[APP], |_| {}).await
    }

    /// One OOM kill per workload (incidents 1, 2, … in that order), the config as `configure`
    /// leaves it.
    pub async fn start_with(
        workloads: &[&str],
        configure: impl FnOnce(&mut ControlPlaneConfig),
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store_path = dir.path().join("vigil.db");
        {
            let store = Arc::new(SqliteStore::open(&store_path).expect("store"));
            let clock = Arc::new(SystemClock);
            let ingest = super::ingest::ingest(&store, store.clone(), clock.clone());
            let now = clock.now_unix_ns();
            let report = ingest
                .ingest(&Batch {
                    node: "n1".into(),
                    events: workloads
                        .iter()
                        .enumerate()
                        .map(|(i, w)| oom_kill(i as u64 + 1, now - 1_000_000_000, w))
                        .collect(),
                    stats: None,
                })
                .expect("ingest");
            assert_eq!(report.incidents_opened.len(), workloads.len());
        }
        let mut config = ControlPlaneConfig {
            grpc_listen: "127.0.0.1:0".parse().expect("addr"),
            http_listen: "127.0.0.1:0".parse().expect("addr"),
            store_path,
            ..Default::default()
        };
        config.detection.enabled = false;
        configure(&mut config);
        let plane = Self {
            running: Running::start(config).await,
            dir,
        };
        // The diagnosis tick runs within a few seconds of start.
        let url = format!("{}/api/v1/incidents/{}", plane.base(), workloads.len());
        for _ in 0..100 {
            let detail: Value = plane
                .client()
                .get(&url)
                .send()
                .await
                .expect("GET")
                .json()
                .await
                .expect("JSON");
            if !detail["diagnosis"].is_null() {
                return plane;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the incidents were not diagnosed within 10 s");
    }

    pub fn base(&self) -> String {
        self.running.base()
    }

    /// An HTTP client with the admin token.
    pub fn client(&self) -> reqwest::Client {
        self.running.client()
    }

    /// The admin token.
    pub fn running_token(&self) -> String {
        self.running.admin_token()
    }

    /// The admin token's file.
    pub fn token_file(&self) -> &std::path::Path {
        &self.running.token_file
    }

    /// The directory of the store (and of the audit key).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub async fn stop(self) {
        self.running.stop().await;
    }
}

/// Raising a memory limit waits for an approver, and Slack is told: its webhook and signing
/// secret from the environment variables named, `U_ALICE` its one approver.
pub fn slack_approvals(c: &mut ControlPlaneConfig, hook_env: &str, secret_env: &str) {
    use control_plane::{
        config::{RuntimeKind, SlackConfig},
        domain::remediate::{ActionClass, Phase},
    };
    c.remediation.runtime = RuntimeKind::Local;
    c.remediation
        .phases
        .insert(ActionClass::RaiseMemoryLimit, Phase::Assist);
    c.slack = Some(SlackConfig {
        webhook_url_env: hook_env.to_string(),
        signing_secret_env: Some(secret_env.to_string()),
        approvers: vec!["U_ALICE".into()],
        console_url: Some("https://vigil.example".into()),
        max_age_secs: 300,
    });
}
