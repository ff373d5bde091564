//! The signals that stop the agent, installed before it starts.
//!
//! A handler that cannot be installed is a start-up error. It must never look like a
//! shutdown request: a future that resolved on a failed install would make the agent exit at
//! once, silently.

use std::task::Poll;

use tokio::signal::unix::{signal, Signal, SignalKind};

#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    #[error(
        "cannot install the {signal} handler, so the agent could not drain its buffers when \
         stopped: the process may not handle {signal} (is it blocked or ignored by the \
         launcher?)"
    )]
    Install {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Installed handlers for the signals that stop the agent.
#[derive(Debug)]
pub struct Shutdown {
    signals: Vec<(&'static str, Signal)>,
}

impl Shutdown {
    /// SIGTERM (Kubernetes, systemd) and SIGINT (Ctrl-C). Needs a tokio runtime.
    pub fn install() -> Result<Self, ShutdownError> {
        Self::for_signals(&[
            ("SIGTERM", SignalKind::terminate()),
            ("SIGINT", SignalKind::interrupt()),
        ])
    }

    /// Handlers for `kinds`; the first that cannot be installed is the error.
    pub fn for_signals(kinds: &[(&'static str, SignalKind)]) -> Result<Self, ShutdownError> {
        let signals = kinds
            .iter()
            .map(|&(name, kind)| {
                signal(kind)
                    .map(|s| (name, s))
                    .map_err(|source| ShutdownError::Install {
                        signal: name,
                        source,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { signals })
    }

    /// Resolves when one of the signals arrives, with its name.
    pub async fn wait(mut self) -> &'static str {
        std::future::poll_fn(|cx| {
            for (name, s) in &mut self.signals {
                // `Ready(None)` means the signal driver is gone (the runtime is shutting
                // down): not a request to stop, so only `Some` counts.
                if let Poll::Ready(Some(())) = s.poll_recv(cx) {
                    return Poll::Ready(*name);
                }
            }
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_handler_that_cannot_be_installed_is_an_error_not_a_shutdown() {
        // The kernel never lets a process handle SIGKILL; tokio refuses it up front.
        let result = Shutdown::for_signals(&[
            ("SIGUSR1", SignalKind::user_defined1()),
            ("SIGKILL", SignalKind::from_raw(libc::SIGKILL)),
        ]);
        match result {
            Err(ShutdownError::Install { signal, .. }) => assert_eq!(signal, "SIGKILL"),
            Ok(_) => panic!("installing a SIGKILL handler must fail"),
        }
    }

    #[tokio::test]
    async fn waits_for_a_signal_and_names_it() {
        let shutdown = Shutdown::for_signals(&[("SIGUSR2", SignalKind::user_defined2())])
            .expect("install a SIGUSR2 handler");
        let mut wait = Box::pin(shutdown.wait());
        // Nothing was sent: the agent keeps running.
        assert!(tokio::time::timeout(Duration::from_millis(100), &mut wait)
            .await
            .is_err());
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGUSR2).expect("raise SIGUSR2");
        let name = tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .expect("the signal ends the wait");
        assert_eq!(name, "SIGUSR2");
    }
}
