//! A control plane run as `vigil-control-plane` runs it (`app::run`), in this test's runtime:
//! started on a config, bound within 10 s, stopped cleanly within 10 s. Its first start
//! wrote an admin token; `client()` carries it, as an operator's tools would.

use std::{path::PathBuf, time::Duration};

use control_plane::{
    app::{self, Bound},
    config::ControlPlaneConfig,
};

pub struct Running {
    pub bound: Bound,
    /// The admin token's file, as `[auth]` places it.
    pub token_file: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), app::AppError>>,
}

impl Running {
    pub async fn start(config: ControlPlaneConfig) -> Self {
        let token_file = config.auth.admin_token_path(&config.store_path);
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
        Self {
            bound,
            token_file,
            stop: Some(stop),
            task,
        }
    }

    /// The REST API's base URL.
    pub fn base(&self) -> String {
        format!("http://{}", self.bound.http)
    }

    /// The admin token the control plane wrote on its first start.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(&self.token_file)
            .expect("the control plane wrote its admin token")
            .trim()
            .to_string()
    }

    /// An HTTP client that sends the admin token.
    pub fn client(&self) -> reqwest::Client {
        client_with(&self.admin_token())
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

/// An HTTP client that sends `token` as its bearer token.
pub fn client_with(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

/// Issues a token of `role` with an admin's `client` at `base`; its secret (shown this once).
pub async fn issue_token(client: &reqwest::Client, base: &str, name: &str, role: &str) -> String {
    let body: serde_json::Value = client
        .post(format!("{base}/api/v1/tokens"))
        .json(&serde_json::json!({ "name": name, "role": role }))
        .send()
        .await
        .expect("issue")
        .json()
        .await
        .expect("json");
    body["token"].as_str().expect("the new secret").to_string()
}
