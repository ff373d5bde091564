//! A TLS fault: the certificate web serves lapses, so every client that verifies it fails
//! the handshake.

use std::time::Duration;

use super::{FaultClass, FaultCtx, Info, Params, Scenario};
use crate::{
    error::{LabError, Result},
    state::{now_unix_ms, Undo},
    testbed::Testbed,
};

pub struct ExpiredCertificate;

impl Scenario for ExpiredCertificate {
    fn info(&self) -> Info {
        Info {
            name: "expired-certificate",
            class: FaultClass::CertificateExpiry,
            about: "web's HTTPS certificate is replaced by one past its end: clients fail the handshake",
            targets: &["web"],
            default_target: "web",
            intensity: "days since the certificate's end",
            default_intensity: 1.0,
            default_duration: Duration::from_secs(8),
            expected_action: "renew-certificate",
        }
    }

    fn inject(&self, ctx: &mut FaultCtx<'_>, p: &Params) -> Result<()> {
        let tls = &ctx.bed.files.tls;
        let original = tls.served()?;
        // Undone newest first: the certificate is written back, then nginx reloads it — in a
        // teardown and in a replay after a crash alike.
        ctx.will_undo(Undo::Reload {
            pid_file: ctx.bed.files.nginx_pid.clone(),
            comm: "nginx".into(),
        })?;
        ctx.will_undo(Undo::WriteFile {
            path: tls.cert.clone(),
            value: original,
        })?;
        let now = (now_unix_ms() / 1000) as i64;
        let ended = now - (p.intensity.max(0.0) * 86_400.0) as i64 - 1;
        let pem = tls.issue(ended - 90 * 86_400, ended)?;
        std::fs::write(&tls.cert, pem).map_err(LabError::io("writing the expired certificate"))?;
        ctx.bed.reload_web()
    }

    /// The undo steps reloaded nginx; wait for its new workers as the injection did.
    fn restore(&self, _bed: &Testbed, _p: &Params) -> Result<()> {
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    }
}
