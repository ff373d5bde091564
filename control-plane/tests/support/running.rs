//! A control plane run as `vigil-control-plane` runs it (`app::run`), in this test's runtime:
//! started on a config, bound within 10 s, stopped cleanly within 10 s.

use std::time::Duration;

use control_plane::{
    app::{self, Bound},
    config::ControlPlaneConfig,
};

pub struct Running {
    pub bound: Bound,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), app::AppError>>,
}

impl Running {
    pub async fn start(config: ControlPlaneConfig) -> Self {
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
            stop: Some(stop),
            task,
        }
    }

    /// The REST API's base URL.
    pub fn base(&self) -> String {
        format!("http://{}", self.bound.http)
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
