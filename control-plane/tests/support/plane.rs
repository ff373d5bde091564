//! A real control plane on loopback ports whose store already holds one OOM kill's incident
//! (id 1, ingested as the agent's stream would bring it), diagnosed before `start` returns.

use std::{sync::Arc, time::Duration};

use serde_json::Value;

use control_plane::{
    adapters::sqlite::SqliteStore,
    app::{self, Bound},
    config::ControlPlaneConfig,
    domain::{
        clock::{Clock, SystemClock},
        ingest::Batch,
        synthetic::oom_kill,
    },
};

pub const APP: &str = "cgroup/app";

pub struct Plane {
    pub http: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), app::AppError>>,
    _dir: tempfile::TempDir,
}

impl Plane {
    pub async fn start() -> Self {
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
                    events: vec![oom_kill(1, now - 1_000_000_000, APP)],
                    stats: None,
                })
                .expect("ingest");
            assert_eq!(report.incidents_opened.len(), 1);
        }
        let mut config = ControlPlaneConfig {
            grpc_listen: "127.0.0.1:0".parse().expect("addr"),
            http_listen: "127.0.0.1:0".parse().expect("addr"),
            store_path,
            ..Default::default()
        };
        config.detection.enabled = false;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound_rx) = tokio::sync::oneshot::channel::<Bound>();
        let task = tokio::spawn(app::run(
            config,
            async {
                let _ = stopped.await;
            },
            move |b| {
                let _ = bound_tx.send(b);
            },
        ));
        let bound = tokio::time::timeout(Duration::from_secs(10), bound_rx)
            .await
            .expect("the control plane binds within 10 s")
            .expect("bound");
        let plane = Self {
            http: bound.http,
            stop: Some(stop),
            task,
            _dir: dir,
        };
        // The diagnosis tick runs within a few seconds of start.
        let url = format!("{}/api/v1/incidents/1", plane.base());
        for _ in 0..100 {
            let detail: Value = reqwest::get(&url)
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
        panic!("incident 1 was not diagnosed within 10 s");
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.http)
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("stops within 10 s")
            .expect("join")
            .expect("clean stop");
    }
}
