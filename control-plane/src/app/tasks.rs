//! Background work: periodic jobs run on blocking threads until shutdown, then drained with a
//! deadline so a stuck job cannot hold the process.

use std::{future::Future, time::Duration};

use tokio::{sync::watch, task::JoinHandle, time::MissedTickBehavior};
use tracing::{error, warn};

use vigil_config_file::error_chain as chain;

/// The periodic jobs of one control plane, all stopped by the same signal.
pub struct Tasks {
    stop: watch::Receiver<bool>,
    running: Vec<(&'static str, JoinHandle<()>)>,
}

impl Tasks {
    pub fn new(stop: watch::Receiver<bool>) -> Self {
        Self {
            stop,
            running: Vec::new(),
        }
    }

    /// Runs `job` on a blocking thread every `period` (the first run after one period) until
    /// shutdown. A failed run is logged with its causes and the next tick tries again; a
    /// run that overruns its period delays the next rather than piling up.
    pub fn periodic<E>(
        &mut self,
        name: &'static str,
        period: Duration,
        job: impl Fn() -> Result<(), E> + Send + Sync + 'static,
    ) where
        E: std::error::Error + Send + 'static,
    {
        let job = std::sync::Arc::new(job);
        let mut stop = self.stop.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let job = job.clone();
                match tokio::task::spawn_blocking(move || job()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        error!(task = name, error = %chain(&e), "periodic task failed; retrying next period")
                    }
                    Err(e) => error!(task = name, error = %e, "periodic task panicked"),
                }
            }
        });
        self.running.push((name, task));
    }

    /// Waits for every job to finish its current run, until `deadline`; what is still
    /// running then is aborted (and named in the log).
    pub async fn drain(self, deadline: tokio::time::Instant) {
        for (name, mut task) in self.running {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                warn!(task = name, "still running at the drain deadline; aborted");
                task.abort();
            }
        }
    }
}

/// Runs `work` until `deadline`, logging `what` if it did not finish.
pub async fn before<T>(
    deadline: tokio::time::Instant,
    what: &'static str,
    work: impl Future<Output = T>,
) -> Option<T> {
    let out = tokio::time::timeout_at(deadline, work).await.ok();
    if out.is_none() {
        warn!(what, "did not finish before the drain deadline");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    };

    #[tokio::test]
    async fn periodic_jobs_run_until_stopped_and_failures_do_not_stop_them() {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = Tasks::new(stop_rx);
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        tasks.periodic("test", Duration::from_millis(10), move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            if n.is_multiple_of(2) {
                Err(std::io::Error::other("every other run fails"))
            } else {
                Ok(())
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop_tx.send(true).expect("stop");
        tasks
            .drain(tokio::time::Instant::now() + Duration::from_secs(5))
            .await;
        let after_stop = runs.load(Ordering::SeqCst);
        assert!(
            after_stop >= 4,
            "failures must not stop the job: {after_stop} runs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            after_stop,
            "no run after the drain"
        );
    }
}
