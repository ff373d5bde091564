//! Web's load-balancer pool: which app replicas nginx sends requests to. The pool changes
//! only once nginx has taken the new config; a config nginx refuses is written back.

use crate::{
    error::{LabError, Result},
    names::PREFIX,
    testbed::{nginx_conf, service_ip, Testbed, TlsServer, APP_REPLICAS},
};

impl Testbed {
    /// Rewrites web's config with `members` as its upstreams and reloads it.
    pub fn write_pool(&self, members: &[String]) -> Result<()> {
        let upstreams = members
            .iter()
            .map(|a| service_ip(a).map(|ip| format!("{ip}:8080")))
            .collect::<Result<Vec<_>>>()?;
        let p = &self.pool;
        let text = nginx_conf(
            &p.dir,
            &p.listen,
            &upstreams,
            Some(&TlsServer {
                listen: &p.tls_listen,
                cert: &self.files.tls.cert,
                key: &self.files.tls.key,
            }),
        );
        let before = std::fs::read_to_string(&p.conf)
            .map_err(LabError::io(format!("reading {}", p.conf.display())))?;
        std::fs::write(&p.conf, text)
            .map_err(LabError::io(format!("writing {}", p.conf.display())))?;
        self.reload_web().inspect_err(|_| {
            // Not left on disk for the next reload to pick up.
            let _ = std::fs::write(&p.conf, &before);
        })
    }

    /// Puts every app replica back in web's pool and running: the baseline a scenario
    /// starts from, whatever Vigil left changed after the last one.
    pub fn reset_pool(&self) -> Result<()> {
        for app in APP_REPLICAS {
            self.supervisor
                .set_desired(&format!("{PREFIX}{app}"), true)?;
        }
        let mut members = self.pool.members.lock().unwrap_or_else(|p| p.into_inner());
        if members.len() != APP_REPLICAS.len() {
            *members = APP_REPLICAS.iter().map(|a| a.to_string()).collect();
            self.write_pool(&members)?;
        }
        Ok(())
    }
}
