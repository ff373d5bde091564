//! A listener's TLS configuration that follows its files: checked every few seconds, rebuilt
//! when their bytes change. A new set that does not load (a half-written file, a key that does
//! not match) is refused and the running configuration kept, so a rotation in progress never
//! takes the listener down.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use rustls::ServerConfig;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tracing::{info, warn};
use vigil_config_file::error_chain as chain;

use super::files::{Contents, ServerFiles, TlsError};

type Fingerprint = [u8; 32];

fn fingerprint(c: &Contents) -> Fingerprint {
    let mut hash = Sha256::new();
    for part in [Some(&c.cert), Some(&c.key), c.client_ca.as_ref()]
        .into_iter()
        .flatten()
    {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

pub struct ServerTls {
    files: ServerFiles,
    current: RwLock<(Arc<ServerConfig>, Fingerprint)>,
}

impl ServerTls {
    /// Loads the files; fails, naming the file and the setting, when they do not load.
    pub fn load(files: ServerFiles) -> Result<Arc<Self>, TlsError> {
        let contents = files.contents()?;
        let config = files.server_config(&contents)?;
        Ok(Arc::new(Self {
            files,
            current: RwLock::new((config, fingerprint(&contents))),
        }))
    }

    /// The running configuration and its files' fingerprint (a poisoned lock still holds a
    /// whole value: it is only ever replaced in one assignment).
    fn current(&self) -> (Arc<ServerConfig>, Fingerprint) {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        (current.0.clone(), current.1)
    }

    /// The configuration a new connection uses.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current().0
    }

    /// Rebuilds the configuration if the files changed: `Ok(true)` when it did.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let contents = self.files.contents()?;
        let print = fingerprint(&contents);
        if self.current().1 == print {
            return Ok(false);
        }
        let config = self.files.server_config(&contents)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (config, print);
        Ok(true)
    }

    /// Checks the files every `every` until `stop` turns true.
    pub fn watch(self: Arc<Self>, every: Duration, mut stop: watch::Receiver<bool>) {
        tokio::spawn(async move {
            // Report a broken set once, not every tick, until it changes again.
            let mut last_error: Option<String> = None;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let tls = self.clone();
                let result = tokio::task::spawn_blocking(move || tls.reload_if_changed()).await;
                match result {
                    Ok(Ok(true)) => {
                        last_error = None;
                        info!(section = self.files.section, cert = %self.files.cert.display(),
                            "TLS certificates changed on disk: new connections use them");
                    }
                    Ok(Ok(false)) => last_error = None,
                    Ok(Err(e)) => {
                        let error = chain(&e);
                        if last_error.as_ref() != Some(&error) {
                            warn!(section = self.files.section, %error,
                                "the changed TLS files do not load; still serving the previous certificates");
                            last_error = Some(error);
                        }
                    }
                    Err(e) => warn!(error = %e, "the TLS reload task failed"),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::tls::mint::{self, Role};

    #[test]
    fn a_rotation_is_taken_and_a_half_written_one_refused_keeping_the_running_config() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = mint::init(dir.path(), 30).expect("ca");
        let server = mint::issue(dir.path(), Role::Server, "cp", &[], 30).expect("issue");
        let tls = ServerTls::load(ServerFiles {
            section: "tls.grpc",
            cert: server.cert.clone(),
            key: server.key.clone(),
            client_ca: Some(ca.cert.clone()),
            alpn: vec![b"h2".to_vec()],
        })
        .expect("load");
        let first = tls.config();
        assert!(!tls.reload_if_changed().expect("unchanged"));
        assert!(Arc::ptr_eq(&first, &tls.config()));

        // Half written: the certificate cut short.
        let pem = std::fs::read_to_string(&server.cert).expect("read");
        std::fs::write(&server.cert, &pem[..pem.len() / 2]).expect("cut");
        assert!(tls.reload_if_changed().is_err());
        assert!(
            Arc::ptr_eq(&first, &tls.config()),
            "a broken set replaced the running one"
        );

        mint::issue(dir.path(), Role::Server, "cp", &[], 30).expect("reissue");
        assert!(tls.reload_if_changed().expect("rotated"));
        assert!(!Arc::ptr_eq(&first, &tls.config()));
    }
}
